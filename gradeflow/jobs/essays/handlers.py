"""The two essay jobs: grade with the LLM (or offline when none is configured), and
grade offline after the LLM job died. Both end in one upsert of the essay's score."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from pydantic import ValidationError

from gradeflow.db.jobs import autocommit_cursor
from gradeflow.db.scores import NewEssayScore, answered_question, upsert_essay_score
from gradeflow.jobs.answers import EssayAnswer, InvalidAnswer, parse_answer
from gradeflow.jobs.errors import PermanentError
from gradeflow.jobs.essays import fallback, grade, injection
from gradeflow.jobs.essays.cost import cost_of
from gradeflow.jobs.essays.grade import (
    CriterionScore,
    ModelAnswer,
    SchemaViolation,
    criterion_scores,
    points,
)
from gradeflow.jobs.essays.llm import LlmAnswer, chat, client_for, llm_configured
from gradeflow.jobs.essays.prompt import (
    PROMPT_VERSION,
    build_messages,
    new_delimiter,
    response_format,
)
from gradeflow.jobs.registry import JobContext
from gradeflow.jobs.rubrics import EssayRubric, parse_rubric
from gradeflow.metrics import record_llm_usage
from gradeflow.settings import Settings, get_settings

log = structlog.get_logger(__name__)

#: A schema-breaking answer on this attempt or a later one is permanent: the model
#: keeps answering the wrong shape, and the offline scorer takes over.
SCHEMA_ATTEMPTS = 3


@dataclass(frozen=True)
class Essay:
    """One answered essay question, as the scorers need it."""

    assessment_id: uuid.UUID
    snapshot_id: uuid.UUID
    question: str
    rubric: EssayRubric
    text: str
    weight: Decimal


def score_essay(ctx: JobContext) -> None:
    """Grade the essay with the LLM, or with the offline scorer when no LLM is configured."""
    settings = get_settings()
    essay = load_essay(ctx)
    if llm_configured(settings):
        save(ctx, grade_with_llm(essay, settings, ctx.attempt, ctx.limited_call))
    else:
        save(ctx, grade_offline(essay, reason="no LLM is configured"))


def score_essay_offline(ctx: JobContext) -> None:
    """Grade the essay offline: its LLM job ended without a score."""
    save(ctx, grade_offline(load_essay(ctx), reason="the LLM grading job ended dead"))


def load_essay(ctx: JobContext) -> Essay:
    try:
        assessment_id = uuid.UUID(str(ctx.payload["assessment_id"]))
        snapshot_id = uuid.UUID(str(ctx.payload["snapshot_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentError(f"bad essay job payload {ctx.payload!r}") from exc
    # One statement on a bare driver cursor (autocommit): one round trip, not three.
    with autocommit_cursor(ctx.engine) as cursor:
        question = answered_question(cursor, assessment_id, snapshot_id)
    if question is None or question.question_type != "essay":
        raise PermanentError(f"no answered essay question {snapshot_id} in {assessment_id}")
    try:
        rubric = parse_rubric("essay", question.rubric)
        answer = parse_answer(rubric, None, question.answer)
    except (ValidationError, InvalidAnswer) as exc:
        raise PermanentError(f"essay {snapshot_id} cannot be graded: {exc}") from exc
    assert isinstance(rubric, EssayRubric) and isinstance(answer, EssayAnswer)
    return Essay(assessment_id, snapshot_id, question.prompt, rubric, answer.text, question.weight)


def save(ctx: JobContext, score: NewEssayScore) -> None:
    """Upsert the score in the transaction that completes the job (and, through the
    pipeline's finish hook, reads it), not in a transaction of its own."""
    ctx.write_result(lambda conn: upsert_essay_score(conn, score))
    log.info(
        "essay graded",
        model=score.model,
        score=str(score.score),
        injection_suspected=score.response_payload["injection"]["suspected"],
    )


# -- with the LLM -------------------------------------------------------------------


def grade_with_llm(
    essay: Essay,
    settings: Settings,
    attempt: int,
    limited_call: Callable[[], AbstractContextManager[None]],
) -> NewEssayScore:
    flags = injection.detect(essay.text)
    sent = injection.visible_text(essay.text)
    messages = build_messages(essay.question, essay.rubric, sent, new_delimiter(sent))
    client = client_for(settings)
    with limited_call():  # the provider's limits cover the call alone
        reply = chat(client, settings.llm_model, messages, response_format(essay.rubric))
    answer = reply.answer()
    cost = cost_of(
        answer.model or settings.llm_model,
        answer.usage,
        messages,
        answer.content,
        settings.llm_prices,
    )
    record_llm_usage(settings.llm_model, cost.prompt_tokens, cost.completion_tokens, cost.usd)
    parsed = checked_answer(answer, essay.rubric, attempt)
    scores = criterion_scores(essay.rubric, parsed.criteria)
    payload = {
        "grader": "llm",
        **totals(scores),
        "injection": {
            "suspected": bool(flags) or parsed.injection_suspected,
            "flags": [flag.as_json() for flag in flags],
            "model_suspected": parsed.injection_suspected,
            "invisible_removed": len(essay.text) - len(sent),
        },
        "raw_answer": answer.content,
        "finish_reason": answer.finish_reason,
        "request_id": answer.request_id,
        "response_model": answer.model,
        "cost": cost.as_json(),
        "attempt": attempt,
    }
    return NewEssayScore(
        assessment_id=essay.assessment_id,
        snapshot_id=essay.snapshot_id,
        score=points(scores, essay.weight),
        model=settings.llm_model,
        prompt_version=PROMPT_VERSION,
        latency_ms=answer.latency_ms,
        cost_cents=cost.cents,
        response_payload=payload,
    )


def checked_answer(answer: LlmAnswer, rubric: EssayRubric, attempt: int) -> ModelAnswer:
    """The answer's scores; a schema-breaking answer is retried, then given up on."""
    try:
        if answer.refusal:
            # Not the refusal's text: it may quote the essay, and errors reach the logs.
            raise SchemaViolation(f"the model refused ({len(answer.refusal)} characters)")
        if answer.finish_reason == "length":
            raise SchemaViolation("the answer was cut off (finish_reason length)")
        return grade.parse_answer(answer.content, rubric)
    except SchemaViolation as exc:
        if attempt >= SCHEMA_ATTEMPTS:
            raise PermanentError(f"schema violated on attempt {attempt}: {exc}") from exc
        raise


def totals(scores: list[CriterionScore]) -> dict[str, Any]:
    return {
        "criteria": [s.as_json() for s in scores],
        "earned": sum(s.score for s in scores),
        "possible": sum(s.maximum for s in scores),
    }


# -- offline --------------------------------------------------------------------------


def grade_offline(essay: Essay, reason: str) -> NewEssayScore:
    started = time.monotonic()
    flags = injection.detect(essay.text)
    scores, coverage = fallback.grade_offline(essay.rubric, injection.visible_text(essay.text))
    payload = {
        "grader": "fallback",
        "fallback": True,
        "label": fallback.LABEL,
        "reason": reason,
        **totals(scores),
        "coverage": coverage,
        "injection": {"suspected": bool(flags), "flags": [flag.as_json() for flag in flags]},
    }
    return NewEssayScore(
        assessment_id=essay.assessment_id,
        snapshot_id=essay.snapshot_id,
        score=points(scores, essay.weight),
        model=fallback.FALLBACK_MODEL,
        prompt_version=fallback.FALLBACK_VERSION,
        latency_ms=int((time.monotonic() - started) * 1000),
        cost_cents=Decimal("0.00"),
        response_payload=payload,
    )
