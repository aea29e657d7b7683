"""The ``score_rules`` job run by a real worker against a real Postgres and Redis.

An assessment is written the way intake writes it (snapshots, answers and its
scoring jobs in one transaction); the worker scores it and the pipeline
finalizes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gradeflow.db.catalog import NewQuestion, insert_question, insert_role
from gradeflow.db.engine import transaction
from gradeflow.db.schema import Question
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.pipeline import SCORE_RULES
from gradeflow.jobs.registry import JobContext, NewJob
from gradeflow.jobs.rules import score_rules
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.messages import send_messages
from tests.integration.api_helpers import add_client
from tests.support.assessments import Submitted
from tests.support.assessments import submit as submit_assessment
from tests.support.processes import running, wait_for, worker_argv

WINDOW = 100
CHOICES = [{"id": c, "text": f"choice {c}"} for c in "abcde"]


@dataclass(frozen=True)
class Asked:
    question_type: str
    rubric: dict[str, Any]
    choices: list[dict[str, Any]] | None
    weight: str
    answer: Any


#: Points: 1.50, 1.00 ((2 - 0.5) / 3 x 2), 0.90 (level 90), 1.33 (level 66.67 x 2).
SQL_SINGLE = Asked("multiple_choice", {"correct": ["a"], "skills": ["sql"]}, CHOICES, "1.5", "a")
SQL_STATS_MULTI = Asked(
    "multiple_choice",
    {"correct": ["a", "b", "c"], "multi_select": True, "negative_marking": 0.5,
     "skills": ["sql", "statistics"]},
    CHOICES, "2", ["a", "b", "d"],
)  # fmt: skip
SQL_PROFILE = Asked(
    "profile",
    {"skill": "sql", "mapping": {"none": 0, "daily": 90}},
    [{"id": "none", "text": "Never"}, {"id": "daily", "text": "Daily"}],
    "1",
    "daily",
)
STATS_SCALE = Asked(
    "profile", {"skill": "statistics", "scale": {"min": 1, "max": 10}}, None, "2", 7
)
RULE_QUESTIONS = (SQL_SINGLE, SQL_STATS_MULTI, SQL_PROFILE, STATS_SCALE)


def submit(engine: Engine, redis_url: str, asked: tuple[Asked, ...]) -> Submitted:
    """Write an assessment and its scoring jobs in one transaction, as intake does;
    send the jobs' messages after commit."""
    client = add_client(engine, "submitter")
    with transaction(engine) as session:
        role = insert_role(
            session, name="Analyst", description=None,
            skills_profile={"sql": 80, "statistics": 60}, active=True,
        )  # fmt: skip
        questions = [new_question(session, role.id, n, a) for n, a in enumerate(asked)]
    answers = [(q, a.answer) for q, a in zip(questions, asked, strict=True)]
    return submit_assessment(engine, redis_url, client.client_id, role.id, answers)


def new_question(session: Session, role_id: uuid.UUID, number: int, asked: Asked) -> Question:
    return insert_question(
        session,
        NewQuestion(
            role_id=role_id,
            question_type=asked.question_type,
            prompt=f"Question {number}",
            choices=asked.choices,
            rubric=asked.rubric,
            weight=Decimal(asked.weight),
            version="1",
        ),
    )


def enqueue_again(engine: Engine, redis_url: str, submitted: Submitted, key: str) -> None:
    """Another ``score_rules`` job for the same assessment (its own dedup key)."""
    job = NewJob(
        SCORE_RULES,
        payload={"assessment_id": str(submitted.assessment_id)},
        assessment_id=submitted.assessment_id,
        client_id=submitted.client_id,
        dedup_key=f"{submitted.assessment_id}:{key}",
    )
    with engine.begin() as conn:
        inserted = insert_new_jobs(conn, [job], WINDOW)
    send_messages(build_broker(Settings(redis_url=redis_url)), inserted.messages)


#: Rule scoring runs on ``cpu``; the recommendation stage that completes the assessment
#: on ``llm``.
PIPELINE_WORKER = worker_argv(("cpu", "llm"))


def assessment(engine: Engine, assessment_id: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT status, total_score, skill_scores, completed_at, degraded"
                " FROM assessments WHERE id = :id"
            ),
            {"id": assessment_id},
        ).one()
    return dict(row._mapping)


def status_of(engine: Engine, assessment_id: uuid.UUID) -> str:
    return str(assessment(engine, assessment_id)["status"])


def rule_scores(engine: Engine, assessment_id: uuid.UUID) -> dict[uuid.UUID, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, question_snapshot_id, score, explanation, rules_applied"
                " FROM rule_scores WHERE assessment_id = :id"
            ),
            {"id": assessment_id},
        )
        return {row.question_snapshot_id: dict(row._mapping) for row in rows}


def job_statuses(engine: Engine, assessment_id: uuid.UUID) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT status FROM async_jobs WHERE assessment_id = :id"
                    " AND job_type = 'score_rules' ORDER BY status"
                ),
                {"id": assessment_id},
            ).scalars()
        )


def test_a_worker_scores_every_rule_question_and_completes_the_assessment(
    engine: Engine, gradeflow_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    submitted = submit(engine, redis_url, RULE_QUESTIONS)
    log = tmp_path / "worker.log"

    with running(PIPELINE_WORKER, gradeflow_env, log):
        assert wait_for(lambda: status_of(engine, submitted.assessment_id) != "awaiting_async",
                        timeout=60), log.read_text()  # fmt: skip

    scores = rule_scores(engine, submitted.assessment_id)
    single, multi, profile, scale = (scores[s] for s in submitted.snapshots)
    assert [s["score"] for s in (single, multi, profile, scale)] == [
        Decimal("1.50"), Decimal("1.00"), Decimal("0.90"), Decimal("1.33"),
    ]  # fmt: skip
    assert single["explanation"] == "Chose a, the correct choice: 1.50 of 1.50 points."
    assert "2 of 3 correct choices selected, 1 wrong choice (-0.5 each)" in multi["explanation"]
    assert multi["rules_applied"]["rule"] == "multiple_choice.partial_credit"
    assert multi["rules_applied"]["wrong"] == ["d"]
    assert (profile["rules_applied"]["rule"], profile["rules_applied"]["level"]) == (
        "profile.mapping", 90.0,
    )  # fmt: skip
    assert scale["rules_applied"] == {
        "rule": "profile.scale", "skill": "statistics", "level": 66.67, "answer": 7.0,
        "weight": 2.0, "points": 1.33,
    }  # fmt: skip

    result = assessment(engine, submitted.assessment_id)
    assert result["status"] == "completed"
    assert result["completed_at"] is not None
    assert result["degraded"] is False
    # Total: multiple choice only, (1.50 + 1.00) / (1.5 + 2) = 71.43 %.
    assert result["total_score"] == Decimal("71.43")
    # sql: (100 % x 1.5 + 50 % x 2 + 90 % x 1) / 4.5 = 75.56;
    # statistics: (50 % x 2 + 66.5 % x 2) / 4 = 58.25.
    assert result["skill_scores"] == {"sql": 75.56, "statistics": 58.25}
    assert job_statuses(engine, submitted.assessment_id) == ["succeeded"]


def test_scoring_again_rewrites_the_same_rows(
    engine: Engine, gradeflow_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    submitted = submit(engine, redis_url, RULE_QUESTIONS)
    log = tmp_path / "worker.log"

    with running(PIPELINE_WORKER, gradeflow_env, log):
        assert wait_for(lambda: status_of(engine, submitted.assessment_id) == "completed",
                        timeout=60), log.read_text()  # fmt: skip
        first_scores = rule_scores(engine, submitted.assessment_id)
        first_result = assessment(engine, submitted.assessment_id)
        enqueue_again(engine, redis_url, submitted, "again")
        assert wait_for(
            lambda: job_statuses(engine, submitted.assessment_id) == ["succeeded", "succeeded"],
            timeout=60,
        ), log.read_text()

    assert rule_scores(engine, submitted.assessment_id) == first_scores
    assert assessment(engine, submitted.assessment_id) == first_result


def test_the_handler_run_twice_in_process_upserts(engine: Engine, redis_url: str) -> None:
    submitted = submit(engine, redis_url, (SQL_SINGLE, STATS_SCALE))
    context = JobContext(
        job_id=uuid.uuid4(), job_type=SCORE_RULES, attempt=1,
        payload={"assessment_id": str(submitted.assessment_id)},
        assessment_id=submitted.assessment_id, client_id=submitted.client_id, engine=engine,
    )  # fmt: skip

    score_rules(context)
    first = rule_scores(engine, submitted.assessment_id)
    score_rules(context)

    assert len(first) == 2
    assert rule_scores(engine, submitted.assessment_id) == first


def test_an_unscorable_rubric_kills_the_job_and_fails_the_assessment(
    engine: Engine, gradeflow_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    # Intake refuses such a rubric; a row written around it must still fail cleanly.
    corrupt = Asked("multiple_choice", {"correct": "a"}, CHOICES, "1", "a")
    submitted = submit(engine, redis_url, (SQL_SINGLE, corrupt))
    log = tmp_path / "worker.log"

    with running(PIPELINE_WORKER, gradeflow_env, log):
        assert wait_for(lambda: status_of(engine, submitted.assessment_id) != "awaiting_async",
                        timeout=60), log.read_text()  # fmt: skip

    result = assessment(engine, submitted.assessment_id)
    assert result["status"] == "failed"
    assert result["completed_at"] is not None
    # All or nothing: the scorable question's score was not written either.
    assert rule_scores(engine, submitted.assessment_id) == {}
    with engine.connect() as conn:
        status, attempts, errors = conn.execute(
            text("SELECT status, attempts, error_payload->'errors' FROM async_jobs"
                 " WHERE assessment_id = :id"),
            {"id": submitted.assessment_id},
        ).one()  # fmt: skip
    assert (status, attempts) == ("dead", 1)
    [error] = errors
    assert error["type"] == "PermanentError"
    assert error["permanent"] is True
    assert f"snapshot {submitted.snapshots[1]}" in error["message"]
    assert "cannot be scored by rules" in error["message"]


def test_two_rule_jobs_finishing_together_complete_the_assessment(
    engine: Engine, gradeflow_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    """Fan-in: each finishing job locks the assessment before counting its jobs, so
    the later of two twins always sees both done (without the lock both could see
    the other still running, and the assessment would wait forever)."""
    submitted = [submit(engine, redis_url, RULE_QUESTIONS) for _ in range(8)]
    for one in submitted:
        enqueue_again(engine, redis_url, one, "twin")
    log = tmp_path / "worker.log"

    with running(worker_argv(("cpu", "llm"), processes=2, threads=4), gradeflow_env, log):
        assert wait_for(
            lambda: all(status_of(engine, s.assessment_id) == "completed" for s in submitted),
            timeout=120,
        ), log.read_text()  # fmt: skip

    # No scheduler runs here, so no sweeper could have rescued a missed fan-in.
    for one in submitted:
        result = assessment(engine, one.assessment_id)
        assert (result["status"], result["total_score"]) == ("completed", Decimal("71.43"))
        assert job_statuses(engine, one.assessment_id) == ["succeeded"] * 2
        assert len(rule_scores(engine, one.assessment_id)) == len(RULE_QUESTIONS)
