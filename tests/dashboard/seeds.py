"""Rows seeded directly in the state and age a test needs: jobs (dead with real-looking
errors, queued, succeeded) and the ``metric_snapshots`` the charts draw.

A dead job of type ``test.effect`` is what an operator meets after an outage that is
over: retried, it runs and succeeds (tests/support/jobs.py has no job that fails first
and then recovers).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from gradeflow.db.engine import transaction
from gradeflow.db.schema import MetricSnapshot
from gradeflow.jobs.retry import describe_error

FINISHED = ("succeeded", "dead", "cancelled")


def failures(
    count: int, message: str = "upstream answered 503", now: datetime | None = None
) -> list[dict[str, object]]:
    """``count`` failures recorded the way the execute loop records them, a minute apart,
    the last a minute before ``now``."""
    now = now or datetime.now(UTC)
    found: list[dict[str, object]] = []
    for attempt in range(1, count + 1):
        try:
            raise ConnectionError(f"{message} (attempt {attempt})")
        except ConnectionError as exc:
            at = now - timedelta(minutes=count - attempt + 1)
            found.append(describe_error(exc, attempt, at))
    return found


@dataclass(frozen=True)
class SeedJob:
    job_type: str = "test.effect"
    status: str = "dead"
    queue_name: str = "cpu"
    attempts: int = 0
    errors: Sequence[dict[str, object]] = ()
    payload: dict[str, Any] = field(default_factory=dict)
    client_id: uuid.UUID | None = None
    assessment_id: uuid.UUID | None = None
    #: How long ago it was queued (and, when finished, completed).
    age: timedelta = timedelta(minutes=10)


def insert_job(engine: Engine, job: SeedJob) -> uuid.UUID:
    """One ``async_jobs`` row as ``job`` describes, sent long ago (the dispatcher leaves it)."""
    finished = job.status in FINISHED
    running = job.status == "running"
    with engine.begin() as conn:
        job_id: uuid.UUID = conn.execute(
            text(
                "INSERT INTO async_jobs (job_type, queue_name, status, attempts, payload,"
                " error_payload, client_id, assessment_id, queued_at, next_run_at, sent_at,"
                " started_at, completed_at, locked_by, locked_until)"
                " VALUES (:job_type, :queue, :status, :attempts, CAST(:payload AS jsonb),"
                " CAST(:errors AS jsonb), :client, :assessment, now() - :age, now() - :age,"
                " now() - :age, CASE WHEN :started THEN now() - :age / 2 END,"
                " CASE WHEN :finished THEN now() - :age / 4 END,"
                " CASE WHEN :running THEN 'seeded:1:x' END,"
                " CASE WHEN :running THEN now() + interval '1 hour' END)"
                " RETURNING id"
            ),
            {
                "job_type": job.job_type,
                "queue": job.queue_name,
                "status": job.status,
                "attempts": job.attempts or len(job.errors),
                "payload": json.dumps(job.payload),
                "errors": json.dumps({"errors": list(job.errors)}) if job.errors else None,
                "client": job.client_id,
                "assessment": job.assessment_id,
                "age": job.age,
                "started": job.status != "queued",
                "finished": finished,
                "running": running,
            },
        ).scalar_one()
    return job_id


def dead_job(engine: Engine, **overrides: Any) -> uuid.UUID:
    """A ``test.effect`` job that died after three failed attempts."""
    return insert_job(engine, SeedJob(errors=failures(3), **overrides))


def job_status(engine: Engine, job_id: uuid.UUID) -> str:
    with engine.connect() as conn:
        status: str = conn.execute(
            text("SELECT status FROM async_jobs WHERE id = :id"), {"id": job_id}
        ).scalar_one()
    return status


@dataclass(frozen=True)
class Snapshot:
    metric_type: str
    value: float
    context: dict[str, str]
    minutes_ago: int


def insert_snapshots(engine: Engine, snapshots: Sequence[Snapshot]) -> None:
    """``metric_snapshots`` rows, as the ``snapshot_metrics`` job writes them each minute."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with transaction(engine) as session:
        session.add_all(
            MetricSnapshot(
                metric_type=s.metric_type,
                value=s.value,
                context=s.context,
                captured_at=now - timedelta(minutes=s.minutes_ago),
            )
            for s in snapshots
        )
