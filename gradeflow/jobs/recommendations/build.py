"""The ``build_recommendations`` job: an executor of small steps, then one write.

```
load      the role's skill profile, the assessment's scores, its weaker essays
gaps      skill gaps, weakest first, and the query text they make (gaps.py)
retrieve  embed the query; top-k active credentials over pgvector's HNSW index
rank      the model re-ranks and explains (rerank.py), or the deterministic
          ranking and template rationale when there is no model or it fails
write     traces, items and ``ready``, guarded on pending, in the transaction that
          completes the job
```

Its finish hook emits ``recommendation.ready`` (or marks the recommendation
``failed`` when the job died) and then advances the assessment's pipeline, in
the transaction that finishes the job.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import structlog
from sqlalchemy import Connection, Engine

from gradeflow.db.assessments import QuestionResult, question_results
from gradeflow.db.embeddings import (
    CredentialForEmbedding,
    Neighbour,
    nearest_credentials,
)
from gradeflow.db.recommendations import (
    FAILED,
    PENDING,
    BuiltRecommendation,
    CredentialCard,
    NewItem,
    NewTrace,
    credential_cards,
    fail_recommendation,
    recommendation_record,
    recommendation_target,
    save_ready_recommendation,
)
from gradeflow.db.scores import answered_questions
from gradeflow.jobs import states
from gradeflow.jobs.embeddings.hashing import HashEmbedder
from gradeflow.jobs.embeddings.jobs import embed_checked, payload_id
from gradeflow.jobs.embeddings.providers import Embedder, embedder_for
from gradeflow.jobs.embeddings.texts import credential_text, ranked_skills
from gradeflow.jobs.errors import PermanentError
from gradeflow.jobs.essays.cost import cost_of
from gradeflow.jobs.essays.grade import SchemaViolation
from gradeflow.jobs.essays.llm import LlmUnavailable, chat, client_for, llm_configured
from gradeflow.jobs.pipeline import BUILD_RECOMMENDATIONS, advance
from gradeflow.jobs.recommendations import rerank
from gradeflow.jobs.recommendations.gaps import SkillGap, query_text, skill_gaps
from gradeflow.jobs.recommendations.rank import (
    THOUSANDTH,
    Candidate,
    Ranked,
    rank_deterministic,
    summary,
)
from gradeflow.jobs.registry import JobContext, JobType, NewJob, register
from gradeflow.jobs.results import compute_result
from gradeflow.jobs.views import recommendations_view
from gradeflow.jobs.webhooks import emit_event
from gradeflow.metrics import record_llm_usage
from gradeflow.settings import Settings, get_settings

log = structlog.get_logger(__name__)

#: Credentials retrieved (and traced) per recommendation; the ranking keeps the best few.
CANDIDATES = 10
#: The attempt on which a model that keeps failing is given up for the deterministic
#: ranking: recommendations are worth having late, but not worth never having.
RERANK_ATTEMPTS = 2
#: An essay under this share of its weight lends its question's words to the query.
WEAK_ESSAY = Decimal("0.6")
SNIPPET_CHARS = 500


@dataclass(frozen=True)
class Inputs:
    role_name: str
    profile: dict[str, float]
    skill_scores: dict[str, float]
    themes: list[str]


@dataclass(frozen=True)
class Retrieval:
    provider: str
    model: str
    neighbours: list[Neighbour]
    #: Why the ``hash`` vectors were searched instead of the configured provider's.
    fallback_reason: str | None = None


@dataclass(frozen=True)
class Ranking:
    items: list[Ranked]
    ranker: str
    #: Why the deterministic ranking was used; None when the model ranked.
    fallback_reason: str | None
    llm: dict[str, Any] = field(default_factory=dict)


def build_recommendations(ctx: JobContext) -> None:
    """Build the assessment's recommendation (payload ``assessment_id``)."""
    assessment_id = payload_id(ctx, "assessment_id")
    settings = get_settings()
    # Reads only, each statement its own transaction: no BEGIN and ROLLBACK round trips.
    with ctx.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        inputs = load_inputs(conn, assessment_id)
    if inputs is None:
        log.info("recommendation already built or gone")
        return
    gaps = skill_gaps(inputs.profile, inputs.skill_scores)
    query = query_text(gaps, inputs.themes, role_skills=ranked_skills(inputs.profile))
    started = time.monotonic()
    retrieval = retrieve(ctx.engine, query, settings)
    with ctx.engine.connect() as conn:
        candidates = to_candidates(conn, retrieval.neighbours)
    retrieved_ms = round((time.monotonic() - started) * 1000)
    ranking = rank(candidates, gaps, inputs.role_name, settings, ctx.attempt, ctx.limited_call)
    built = assemble(inputs, gaps, query, candidates, retrieval, ranking, retrieved_ms)

    def save(conn: Connection) -> None:
        saved = save_ready_recommendation(conn, assessment_id, built)
        log.info(
            "recommendation built" if saved else "recommendation was built by an earlier attempt",
            items=len(built.items),
            degraded=built.degraded,
            provider=retrieval.provider,
            ranker=ranking.ranker,
        )

    # In the transaction that completes the job and, through its finish hook, announces
    # the recommendation and finishes the assessment: one commit, not two.
    ctx.write_result(save)


# -- load ----------------------------------------------------------------------------------


def load_inputs(conn: Connection, assessment_id: uuid.UUID) -> Inputs | None:
    """What the recommendation rests on; None when there is nothing left to build."""
    target = recommendation_target(conn, assessment_id)
    if target is None or target.status not in (PENDING, FAILED):
        return None
    questions = question_results(conn, assessment_id)
    return Inputs(
        role_name=target.role_name,
        profile=target.skills_profile,
        skill_scores=compute_result(questions).skill_scores,
        themes=weak_essay_prompts(conn, assessment_id, questions),
    )


def weak_essay_prompts(
    conn: Connection, assessment_id: uuid.UUID, questions: Sequence[QuestionResult]
) -> list[str]:
    """The questions of the essays that earned under :data:`WEAK_ESSAY` of their weight."""
    weak = {
        q.snapshot_id
        for q in questions
        if q.question_type == "essay"
        and q.score is not None
        and q.weight > 0
        and q.score / q.weight < WEAK_ESSAY
    }
    if not weak:
        return []
    essays = answered_questions(conn, assessment_id, snapshot_ids=sorted(weak))
    return [e.prompt[:200] for e in essays]


# -- retrieve ------------------------------------------------------------------------------


def retrieve(engine: Engine, query: str, settings: Settings) -> Retrieval:
    """The nearest credentials by the configured provider's vectors, or by ``hash``'s
    when that provider cannot embed the query or has not embedded the catalog."""
    hashing = HashEmbedder()
    configured: Embedder = hashing
    reason = None
    try:
        configured = embedder_for(settings)
    except Exception as exc:  # a misconfigured provider must not cost the recommendation
        reason = f"embeddings provider {settings.embeddings!r} unavailable: {exc}"
    if configured.name != hashing.name:
        try:
            found = search(engine, configured, query)
            if found.neighbours:
                return found
            reason = f"no catalog vectors by {configured.name!r}"
        except Exception as exc:
            reason = f"embedding the query with {configured.name!r} failed: {exc}"
        log.warning("retrieving with hash vectors", reason=reason)
    found = search(engine, hashing, query)
    return Retrieval(found.provider, found.model, found.neighbours, reason)


def search(engine: Engine, embedder: Embedder, query: str) -> Retrieval:
    [vector] = embed_checked(embedder, query)
    with engine.begin() as conn:  # SET LOCAL search options end with this transaction
        neighbours = nearest_credentials(conn, vector, embedder.name, CANDIDATES)
    return Retrieval(embedder.name, embedder.model, neighbours)


def to_candidates(conn: Connection, neighbours: Sequence[Neighbour]) -> list[Candidate]:
    cards = credential_cards(conn, [n.credential_id for n in neighbours])
    return [
        Candidate(f"T{i}", uuid.uuid4(), cards[n.credential_id], n.similarity)
        for i, n in enumerate(neighbours, start=1)
        if n.credential_id in cards
    ]


# -- rank ----------------------------------------------------------------------------------


def rank(
    candidates: Sequence[Candidate],
    gaps: Sequence[SkillGap],
    role_name: str,
    settings: Settings,
    attempt: int,
    limited_call: Callable[[], AbstractContextManager[None]],
) -> Ranking:
    if not candidates:
        return Ranking([], "deterministic", "nothing was retrieved")
    if not llm_configured(settings):
        return deterministic(candidates, gaps, "no LLM is configured")
    try:
        return rank_with_model(candidates, gaps, role_name, settings, limited_call)
    except (LlmUnavailable, SchemaViolation) as exc:
        if attempt < RERANK_ATTEMPTS:
            raise  # worth another attempt: the engine backs off and retries
        return deterministic(candidates, gaps, f"the model failed {attempt} times: {exc}")
    except PermanentError as exc:
        return deterministic(candidates, gaps, f"the model refused the request: {exc}")


def deterministic(
    candidates: Sequence[Candidate], gaps: Sequence[SkillGap], reason: str
) -> Ranking:
    return Ranking(rank_deterministic(candidates, gaps), "deterministic", reason)


def rank_with_model(
    candidates: Sequence[Candidate],
    gaps: Sequence[SkillGap],
    role_name: str,
    settings: Settings,
    limited_call: Callable[[], AbstractContextManager[None]],
) -> Ranking:
    messages = rerank.build_messages(role_name, gaps, candidates)
    client = client_for(settings)
    with limited_call():  # the provider's limits cover the call alone
        reply = chat(client, settings.llm_model, messages, rerank.response_format(candidates))
    answer = reply.answer()
    cost = cost_of(
        answer.model or settings.llm_model,
        answer.usage,
        messages,
        answer.content,
        settings.llm_prices,
    )
    # Counted before the answer is checked: a rejected answer's tokens were paid for too.
    record_llm_usage(settings.llm_model, cost.prompt_tokens, cost.completion_tokens, cost.usd)
    if answer.refusal or answer.finish_reason == "length":
        raise SchemaViolation(f"no usable answer (finish_reason {answer.finish_reason})")
    items = rerank.apply_ranking(rerank.parse_ranking(answer.content), candidates, gaps)
    return Ranking(
        items,
        "llm",
        None,
        {
            "model": settings.llm_model,
            "prompt_version": rerank.RERANK_PROMPT_VERSION,
            "latency_ms": answer.latency_ms,
            "request_id": answer.request_id,
            "cost": cost.as_json(),
        },
    )


# -- write ---------------------------------------------------------------------------------


def assemble(
    inputs: Inputs,
    gaps: Sequence[SkillGap],
    query: str,
    candidates: Sequence[Candidate],
    retrieval: Retrieval,
    ranking: Ranking,
    retrieved_ms: int,
) -> BuiltRecommendation:
    artifacts = {n.credential_id: n.artifact_id for n in retrieval.neighbours}
    return BuiltRecommendation(
        summary=summary(inputs.role_name, gaps, len(ranking.items)),
        degraded=ranking.fallback_reason is not None or retrieval.fallback_reason is not None,
        traces=[
            NewTrace(
                id=c.trace_id,
                source_uri=f"urn:gradeflow:credential:{c.card.id}",
                snippet=snippet(c.card),
                similarity=Decimal(str(c.similarity)).quantize(THOUSANDTH, ROUND_HALF_UP),
                embedding_artifact_id=artifacts.get(c.card.id),
            )
            for c in candidates
        ],
        items=[
            NewItem(
                credential_id=r.candidate.card.id,
                title=r.candidate.card.title,
                confidence=r.confidence,
                rationale=r.rationale,
                source_trace_ids=r.trace_ids,
                position=position,
            )
            for position, r in enumerate(ranking.items, start=1)
        ],
        metrics={
            "query": query,
            "gaps": [{"skill": g.skill, "target": g.target, "score": g.score} for g in gaps],
            "provider": retrieval.provider,
            "embedding_model": retrieval.model,
            "retrieved": len(candidates),
            "retrieval_ms": retrieved_ms,
            "ranker": ranking.ranker,
            "degraded_reasons": [
                r for r in (retrieval.fallback_reason, ranking.fallback_reason) if r
            ],
            "llm": ranking.llm or None,
        },
    )


def snippet(card: CredentialCard) -> str:
    text = credential_text(
        CredentialForEmbedding(card.id, card.title, card.description, card.skills)
    )
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


# -- finish --------------------------------------------------------------------------------


def recommendations_finished(conn: Connection, ctx: JobContext, status: str) -> list[NewJob]:
    """``recommendation.ready`` when built, ``failed`` when the job died; then the
    pipeline's next step (finalising the assessment)."""
    if ctx.assessment_id is None:
        return []
    events: list[NewJob] = []
    if status == states.SUCCEEDED:
        events = announce_recommendation(conn, ctx.assessment_id, ctx.client_id)
    else:
        fail_recommendation(conn, ctx.assessment_id, "the build_recommendations job ended dead")
    return [*events, *advance(conn, ctx, status)]


def announce_recommendation(
    conn: Connection, assessment_id: uuid.UUID, client_id: uuid.UUID | None
) -> list[NewJob]:
    """``recommendation.ready`` to the client's endpoints that subscribed, if it was built."""
    if client_id is None:
        return []
    record = recommendation_record(conn, assessment_id)
    if record is None or record.status != "ready":
        return []
    ready = record

    def data() -> dict[str, Any]:
        return recommendations_view(assessment_id, ready).model_dump(mode="json")

    return emit_event(conn, client_id, "recommendation.ready", data, assessment_id=assessment_id)


BUILD_RECOMMENDATIONS_JOB = register(
    JobType(
        name=BUILD_RECOMMENDATIONS,
        handler=build_recommendations,
        queue="llm",
        limits_at_call=True,
        on_finish=recommendations_finished,
    )
)
