"""The pipeline sweeper on a real PostgreSQL and Redis: assessments whose jobs ended
without advancing them (cancelled by an operator, dead without a hook) move on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
from dramatiq import Broker
from sqlalchemy import Engine, text

from gradeflow.db.catalog import NewQuestion, insert_question, insert_role
from gradeflow.db.engine import transaction
from gradeflow.db.jobs import cancel_job
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.maintenance import PipelineSweeper
from tests.integration.api_helpers import add_client
from tests.support.assessments import Submitted, submit

MC_RUBRIC = {"correct": ["a"], "multi_select": False, "skills": ["sql"]}
ESSAY_RUBRIC = {
    "criteria": [
        {
            "name": "accuracy",
            "description": "Is it right?",
            "levels": [{"score": 0, "descriptor": "wrong"}, {"score": 2, "descriptor": "right"}],
        }
    ]
}


@pytest.fixture
def broker(redis_url: str) -> Iterator[Broker]:
    broker = build_broker(Settings(redis_url=redis_url, _env_file=None))
    yield broker
    broker.close()


def submit_one(engine: Engine, redis_url: str, question_type: str, answer: Any) -> Submitted:
    client = add_client(engine, "submitter")
    with transaction(engine) as session:
        role = insert_role(session, name="r", description=None, skills_profile={}, active=True)
        choices = [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}]
        question = insert_question(
            session,
            NewQuestion(
                role_id=role.id,
                question_type=question_type,
                prompt="?",
                choices=choices if question_type == "multiple_choice" else None,
                rubric=MC_RUBRIC if question_type == "multiple_choice" else ESSAY_RUBRIC,
                weight=Decimal(1),
                version="1",
            ),
        )
    return submit(engine, redis_url, client.client_id, role.id, [(question, answer)])


def jobs_of(engine: Engine, assessment_id: uuid.UUID) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, job_type, status, payload FROM async_jobs"
                " WHERE assessment_id = :a ORDER BY queued_at, job_type"
            ),
            {"a": assessment_id},
        )
        return [dict(r._mapping) for r in rows]


def assessment(engine: Engine, assessment_id: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT status, completed_at, degraded FROM assessments WHERE id = :a"),
            {"a": assessment_id},
        ).one()
        return dict(row._mapping)


def sweeper(engine: Engine, broker: Broker) -> PipelineSweeper:
    return PipelineSweeper(engine, broker, window=500, grace_seconds=0)


def test_a_cancelled_rule_job_fails_its_assessment(
    engine: Engine, redis_url: str, broker: Broker
) -> None:
    submitted = submit_one(engine, redis_url, "multiple_choice", "a")
    (job,) = jobs_of(engine, submitted.assessment_id)
    with engine.begin() as conn:
        assert cancel_job(conn, job["id"])

    swept = sweeper(engine, broker).run_once()

    assert swept == 1
    after = assessment(engine, submitted.assessment_id)
    assert after["status"] == "failed"
    assert after["completed_at"] is not None
    assert sweeper(engine, broker).run_once() == 0


def test_a_dead_essay_job_gets_the_offline_scorer_once(
    engine: Engine, redis_url: str, broker: Broker
) -> None:
    submitted = submit_one(engine, redis_url, "essay", "An index is a sorted structure.")
    (job,) = jobs_of(engine, submitted.assessment_id)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE async_jobs SET status = 'dead', completed_at = now() WHERE id = :id"),
            {"id": job["id"]},
        )
    queue = redis.Redis.from_url(redis_url)
    before = queue.llen("dramatiq:cpu")

    assert sweeper(engine, broker).run_once() == 1
    assert sweeper(engine, broker).run_once() == 0  # the offline job is queued now

    jobs = jobs_of(engine, submitted.assessment_id)
    assert [(j["job_type"], j["status"]) for j in jobs] == [
        ("score_essay", "dead"),
        ("score_essay_offline", "queued"),
    ]
    assert jobs[1]["payload"]["snapshot_id"] == str(submitted.snapshots[0])
    assert assessment(engine, submitted.assessment_id)["status"] == "awaiting_async"
    assert queue.llen("dramatiq:cpu") == before + 1
    queue.close()


def test_assessments_with_jobs_still_to_run_are_not_touched(
    engine: Engine, redis_url: str, broker: Broker
) -> None:
    submitted = submit_one(engine, redis_url, "multiple_choice", "a")

    assert sweeper(engine, broker).run_once() == 0
    assert assessment(engine, submitted.assessment_id)["status"] == "awaiting_async"
