"""The recommendation stage end to end: real worker and scheduler processes, real
pgvector retrieval over a hash-embedded catalog, the fake LLM through the real SDK.

Each test submits an assessment for a role targeting sql, statistics and python,
answered so that sql is the largest gap, statistics is not measured at all and
python is met; the catalog holds credentials for each skill and some unrelated ones.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from gradeflow.db.catalog import (
    NewCredential,
    NewQuestion,
    insert_credentials,
    insert_question,
    insert_role,
)
from gradeflow.db.embeddings import CREDENTIAL, Artifact, CredentialForEmbedding, upsert_artifacts
from gradeflow.db.engine import transaction
from gradeflow.db.recommendations import (
    BuiltRecommendation,
    NewItem,
    create_pending_recommendation,
    insert_feedback,
    save_ready_recommendation,
)
from gradeflow.db.webhooks import insert_endpoint
from gradeflow.jobs.embeddings.hashing import HashEmbedder
from gradeflow.jobs.embeddings.texts import credential_text
from gradeflow.jobs.recommendations.build import CANDIDATES
from tests.fakes.openai_server import FakeOpenAI, fake_openai
from tests.integration.api_helpers import add_client
from tests.support.assessments import Submitted, submit
from tests.support.processes import (
    REPO_ROOT,
    gradeflow_argv,
    running,
    scheduler_argv,
    wait_for,
    worker_argv,
)

WORKER = worker_argv(("cpu", "llm"), threads=4)
CHOICES = [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}]
CATALOG = [
    ("SQL Fundamentals", "Write queries, joins and aggregates.", ["sql"]),
    ("Advanced SQL Performance", "Indexes, query plans and tuning.", ["sql", "databases"]),
    ("Statistics for Analysts", "Distributions, inference and testing.", ["statistics"]),
    ("Applied Statistics with SQL", "Statistics computed in the database.", ["statistics", "sql"]),
    ("Python Basics", "Variables, functions and modules.", ["python"]),
    ("Watercolor Painting", "Brushes, pigments and washes.", ["watercolor"]),
    ("Beekeeping 101", "Hives, bees and honey.", ["beekeeping"]),
    ("Public Speaking", "Confidence on stage.", ["speaking"]),
    ("Pastry Arts", "Laminated doughs and creams.", ["baking"]),
    ("Sailing Certificate", "Knots, wind and navigation.", ["sailing"]),
    ("Guitar for Beginners", "Chords and strumming.", ["guitar"]),
    ("Retired SQL Course", "No longer offered.", ["sql"]),
]
RETIRED = "Retired SQL Course"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as server:
        yield server


def load_catalog(engine: Engine) -> None:
    """Credentials with their hash vectors, as ``embed_credential`` jobs would leave them."""
    hashing = HashEmbedder()
    with transaction(engine) as session:
        rows = insert_credentials(
            session,
            [
                NewCredential(title, about, skills, "acme", None, active=title != RETIRED)
                for title, about, skills in CATALOG
            ],
        )
        texts = [
            credential_text(CredentialForEmbedding(r.id, r.title, r.description, r.skills or []))
            for r in rows
        ]
        vectors = hashing.embed(texts)
        upsert_artifacts(
            session.connection(),
            [
                Artifact(CREDENTIAL, r.id, hashing.name, hashing.model, v)
                for r, v in zip(rows, vectors, strict=True)
            ],
        )


def submit_assessment(engine: Engine, redis_url: str) -> Submitted:
    client_id = add_client(engine, "submitter").client_id
    with transaction(engine) as session:
        role = insert_role(
            session,
            name="Data analyst",
            description=None,
            skills_profile={"sql": 80, "statistics": 60, "python": 40},
            active=True,
        )
        sql = insert_question(
            session,
            NewQuestion(role.id, "multiple_choice", "Which joins?", CHOICES,
                        {"correct": ["a"], "skills": ["sql"]}, Decimal(1), "1"),
        )  # fmt: skip
        python = insert_question(
            session,
            NewQuestion(role.id, "multiple_choice", "Which loops?", CHOICES,
                        {"correct": ["a"], "skills": ["python"]}, Decimal(1), "1"),
        )  # fmt: skip
        insert_endpoint(
            session.connection(),
            client_id,
            "http://127.0.0.1:9/hooks",
            ["recommendation.ready", "assessment.completed"],
            "whsec_" + "A" * 32,
        )
        role_id = role.id
    # sql wrong (0 of 80: gap 80), python right (100 of 40), statistics unmeasured (gap 60).
    return submit(engine, redis_url, client_id, role_id, [(sql, "b"), (python, "a")])


def run_pipeline(engine: Engine, env: dict[str, str], redis_url: str, tmp_path: Path) -> Submitted:
    load_catalog(engine)
    submitted = submit_assessment(engine, redis_url)
    log = tmp_path / "worker.log"
    with running(WORKER, env, log), running(scheduler_argv(), env, tmp_path / "scheduler.log"):
        assert wait_for(lambda: status_of(engine, submitted) != "awaiting_async", timeout=90), (
            log.read_text()
        )
    return submitted


def status_of(engine: Engine, submitted: Submitted) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT status FROM assessments WHERE id = :id"),
                {"id": submitted.assessment_id},
            ).scalar_one()
        )


def recommendation(engine: Engine, submitted: Submitted) -> dict[str, Any]:
    with engine.connect() as conn:
        head = conn.execute(
            text("SELECT * FROM recommendations WHERE assessment_id = :id"),
            {"id": submitted.assessment_id},
        ).one()
        items = conn.execute(
            text(
                "SELECT i.*, c.skills FROM recommendation_items i"
                " JOIN credential_catalog c ON c.id = i.credential_id"
                " WHERE recommendation_id = :id ORDER BY position"
            ),
            {"id": head.id},
        ).all()
        traces = conn.execute(
            text("SELECT * FROM rag_traces WHERE recommendation_id = :id ORDER BY similarity DESC"),
            {"id": head.id},
        ).all()
        events = conn.execute(
            text(
                "SELECT event_type, payload FROM webhook_events WHERE assessment_id = :id"
                " ORDER BY created_at"
            ),
            {"id": submitted.assessment_id},
        ).all()
    return {
        "head": head._mapping,
        "items": [row._mapping for row in items],
        "traces": [row._mapping for row in traces],
        "events": [(row.event_type, row.payload) for row in events],
    }


def llm_env(env: dict[str, str], server: FakeOpenAI) -> dict[str, str]:
    return {
        **env,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "GRADEFLOW_LLM_MODEL": "fake-ranker",
        "GRADEFLOW_LLM_TIMEOUT_SECONDS": "2",
        "GRADEFLOW_RETRY_BASE_SECONDS": "0.2",
    }


def test_without_an_llm_the_gaps_retrieve_ranked_traced_credentials(
    engine: Engine, gradeflow_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    submitted = run_pipeline(engine, gradeflow_env, redis_url, tmp_path)

    assert status_of(engine, submitted) == "completed"
    found = recommendation(engine, submitted)
    head, items, traces = found["head"], found["items"], found["traces"]
    assert (head["status"], head["degraded"]) == ("ready", True)
    assert head["metrics"]["ranker"] == "deterministic"
    assert head["metrics"]["degraded_reasons"] == ["no LLM is configured"]
    assert head["metrics"]["query"].startswith("Learn sql, statistics.")
    assert "sql (80 below target)" in head["summary"]
    # Top-k over the active catalog only: the retired course is never retrieved.
    assert len(traces) == CANDIDATES
    trace_ids = {t["id"] for t in traces}
    assert all(t["source_uri"].startswith("urn:gradeflow:credential:") for t in traces)
    assert all(t["embedding_artifact_id"] is not None for t in traces)
    assert RETIRED not in {t["snippet"].splitlines()[0] for t in traces}
    # The credentials that close both gaps first; each item rests on its own trace.
    assert [i["position"] for i in items] == list(range(1, len(items) + 1))
    assert items[0]["title"] == "Applied Statistics with SQL"
    assert {"sql", "statistics"} >= set(items[1]["skills"]) & {"sql", "statistics"} != set()
    assert all(set(i["source_trace_ids"]) <= trace_ids for i in items)
    assert all(Decimal(0) <= i["confidence"] <= Decimal(1) for i in items)
    assert [i["confidence"] for i in items] == sorted(
        (i["confidence"] for i in items), reverse=True
    )
    assert "you scored 0; the role targets 80" in items[0]["rationale"]
    # Events: recommendation.ready first, then the completed assessment carrying it.
    assert [kind for kind, _ in found["events"]] == ["recommendation.ready", "assessment.completed"]
    ready, completed = (json.loads(p) if isinstance(p, str) else p for _, p in found["events"])
    assert ready["data"]["status"] == "ready"
    assert completed["data"]["recommendations"] == ready["data"]
    assert [i["title"] for i in ready["data"]["items"]] == [i["title"] for i in items]


def test_the_model_reranks_and_explains_citing_only_retrieved_traces(
    engine: Engine,
    gradeflow_env: dict[str, str],
    redis_url: str,
    tmp_path: Path,
    server: FakeOpenAI,
) -> None:
    submitted = run_pipeline(engine, llm_env(gradeflow_env, server), redis_url, tmp_path)

    found = recommendation(engine, submitted)
    head, items, traces = found["head"], found["items"], found["traces"]
    assert (head["status"], head["degraded"]) == ("ready", False)
    assert head["metrics"]["ranker"] == "llm"
    assert head["metrics"]["llm"]["model"] == "fake-ranker"
    [request] = [
        r for r in server.chat_requests()
        if r.body["response_format"]["json_schema"]["name"] == "credential_ranking"
    ]  # fmt: skip
    labels = request.body["response_format"]["json_schema"]["schema"]["properties"]["ranking"][
        "items"
    ]["properties"]["candidate"]["enum"]
    assert labels == [f"T{n}" for n in range(1, CANDIDATES + 1)]
    # The fake ranks candidates in the order offered (by similarity): T1 first.
    assert items[0]["title"] == traces[0]["snippet"].splitlines()[0]
    assert all(i["rationale"].startswith("fake rationale: T") for i in items)
    assert all(set(i["source_trace_ids"]) <= {t["id"] for t in traces} for i in items)
    assert len(items) == 5


def test_a_failing_model_falls_back_to_the_deterministic_ranking(
    engine: Engine,
    gradeflow_env: dict[str, str],
    redis_url: str,
    tmp_path: Path,
    server: FakeOpenAI,
) -> None:
    server.script({"kind": "status", "status": 500}, {"kind": "malformed"}, match="Candidates:")

    submitted = run_pipeline(engine, llm_env(gradeflow_env, server), redis_url, tmp_path)

    head = recommendation(engine, submitted)["head"]
    assert (head["status"], head["degraded"]) == ("ready", True)
    assert head["metrics"]["ranker"] == "deterministic"
    assert "the model failed 2 times" in head["metrics"]["degraded_reasons"][0]
    assert status_of(engine, submitted) == "completed"


def test_a_dead_recommendation_job_fails_the_recommendation_not_the_assessment(
    engine: Engine,
    gradeflow_env: dict[str, str],
    redis_url: str,
    tmp_path: Path,
    server: FakeOpenAI,
) -> None:
    server.script({"kind": "status", "status": 503}, match="Candidates:")
    env = {**llm_env(gradeflow_env, server), "GRADEFLOW_DEFAULT_MAX_ATTEMPTS": "1"}

    submitted = run_pipeline(engine, env, redis_url, tmp_path)

    assert status_of(engine, submitted) == "completed"
    found = recommendation(engine, submitted)
    assert found["head"]["status"] == "failed"
    assert "ended dead" in found["head"]["metrics"]["error"]
    assert found["items"] == [] and found["traces"] == []
    [(kind, payload)] = found["events"]
    assert kind == "assessment.completed"
    data = json.loads(payload) if isinstance(payload, str) else payload
    assert data["data"]["recommendations"]["status"] == "failed"


def test_the_report_shows_mean_relevance_and_acceptance_by_credential(
    engine: Engine, gradeflow_env: dict[str, str], redis_url: str
) -> None:
    load_catalog(engine)
    titles = ["SQL Fundamentals", "Python Basics"]
    with engine.connect() as conn:
        ids = dict(
            conn.execute(
                text("SELECT title, id FROM credential_catalog WHERE title = ANY(:t)"),
                {"t": titles},
            ).all()
        )
    feedback = [(5, "accepted"), (3, "rejected"), (4, "accepted")]
    for relevance, acceptance in feedback:
        submitted = submit_assessment(engine, redis_url)
        with transaction(engine) as session:
            create_pending_recommendation(session.connection(), submitted.assessment_id)
            built = BuiltRecommendation(
                summary="s",
                degraded=True,
                traces=[],
                items=[
                    NewItem(ids[t], t, Decimal("0.5"), "r", [], position)
                    for position, t in enumerate(titles[: 1 + (relevance == 5)], start=1)
                ],
            )
            recommendation_id = save_ready_recommendation(
                session.connection(), submitted.assessment_id, built
            )
            assert recommendation_id is not None
            insert_feedback(
                session,
                recommendation_id=recommendation_id,
                user_id=None,
                submitted_by_role="student",
                relevance_score=relevance,
                acceptance_status=acceptance,
                comments=None,
            )

    done = subprocess.run(
        gradeflow_argv("recommendations", "report", "--json"),
        env=gradeflow_env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )

    assert done.returncode == 0, done.stderr
    report = {row["title"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert report["SQL Fundamentals"]["recommended"] == 3
    assert report["SQL Fundamentals"]["mean_relevance"] == 4.0
    assert report["SQL Fundamentals"]["acceptance_rate"] == pytest.approx(2 / 3)
    # Offered once, on the recommendation rated 5 and accepted.
    assert (report["Python Basics"]["recommended"], report["Python Basics"]["mean_relevance"]) == (
        1,
        5.0,
    )
    assert list(report) == ["SQL Fundamentals", "Python Basics"]
