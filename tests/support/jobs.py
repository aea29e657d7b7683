"""Job types used only by tests, loaded into real workers via GRADEFLOW_JOB_MODULES.

Each records what happened in ``test_job_runs`` (one row per execution, no
uniqueness) and ``test_job_effects`` (one row per job, upserted), tables the
tests create in their own database with :data:`TEST_TABLES_DDL`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import text

from gradeflow.jobs.errors import PermanentError, Snooze
from gradeflow.jobs.registry import JobContext, JobType, NewJob, register
from gradeflow.jobs.retry import RetryPolicy

TEST_TABLES_DDL = (
    "CREATE TABLE IF NOT EXISTS test_job_runs (job_id uuid NOT NULL, attempt int NOT NULL,"
    " ran_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    "CREATE TABLE IF NOT EXISTS test_job_effects (job_id uuid PRIMARY KEY,"
    " written_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    "CREATE TABLE IF NOT EXISTS test_job_calls (job_id uuid NOT NULL,"
    " started_at timestamptz NOT NULL, ended_at timestamptz NOT NULL)",
)


def record_run(ctx: JobContext) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO test_job_runs (job_id, attempt) VALUES (:id, :attempt)"),
            {"id": ctx.job_id, "attempt": ctx.attempt},
        )


def write_effect(ctx: JobContext) -> None:
    """The job's idempotent effect: one row per job, however often it runs."""
    with ctx.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO test_job_effects (job_id) VALUES (:id) ON CONFLICT DO NOTHING"),
            {"id": ctx.job_id},
        )


def effect(ctx: JobContext) -> None:
    """Sleeps ``payload.sleep`` seconds (default 0), then writes its effect."""
    record_run(ctx)
    time.sleep(float(ctx.payload.get("sleep", 0)))
    write_effect(ctx)


def always_fail(ctx: JobContext) -> None:
    record_run(ctx)
    raise RuntimeError(f"always fails (attempt {ctx.attempt})")


def permanent_fail(ctx: JobContext) -> None:
    record_run(ctx)
    raise PermanentError("bad input: retrying cannot help")


def snooze_once(ctx: JobContext) -> None:
    """Snoozes on its first run (no attempt spent), succeeds on the next."""
    record_run(ctx)
    with ctx.engine.connect() as conn:
        runs = conn.execute(
            text("SELECT count(*) FROM test_job_runs WHERE job_id = :id"), {"id": ctx.job_id}
        ).scalar_one()
    if runs == 1:
        raise Snooze(0.5, "rate limited upstream")
    write_effect(ctx)


FAST_RETRY = RetryPolicy(max_attempts=3, base_seconds=0.2, max_seconds=1.0, jitter=0.1)

register(JobType("test.effect", effect, queue="cpu", retry=FAST_RETRY))
register(JobType("test.always_fail", always_fail, queue="cpu", retry=FAST_RETRY))
register(JobType("test.permanent_fail", permanent_fail, queue="cpu", retry=FAST_RETRY))
register(JobType("test.snooze_once", snooze_once, queue="cpu", retry=FAST_RETRY))
register(JobType("test.limited", effect, queue="cpu", retry=FAST_RETRY, per_minute=30))


def call_under_limits(ctx: JobContext) -> None:
    """Works ``payload.sleep`` seconds, then makes its one limited "call" (lasting
    ``payload.call`` seconds, recorded in ``test_job_calls``), then writes its effect."""
    record_run(ctx)
    time.sleep(float(ctx.payload.get("sleep", 0)))
    with ctx.limited_call():
        started_at = datetime.now(UTC)
        time.sleep(float(ctx.payload.get("call", 0)))
        ended_at = datetime.now(UTC)
    with ctx.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO test_job_calls VALUES (:id, :started_at, :ended_at)"),
            {"id": ctx.job_id, "started_at": started_at, "ended_at": ended_at},
        )
    write_effect(ctx)


register(
    JobType(
        "test.rate_at_call", call_under_limits, queue="cpu", retry=FAST_RETRY, per_minute=5,
        limits_at_call=True,
    )
)  # fmt: skip
register(
    JobType(
        "test.slot_at_call", call_under_limits, queue="cpu", retry=FAST_RETRY, concurrency=2,
        limits_at_call=True,
    )
)  # fmt: skip
register(JobType("test.concurrent", effect, queue="cpu", retry=FAST_RETRY, concurrency=2))


def crash(ctx: JobContext) -> None:
    """A poison pill: records its run, then kills its whole worker process, every time."""
    import os

    record_run(ctx)
    os._exit(1)


register(JobType("test.crash", crash, queue="cpu", retry=FAST_RETRY))


def chain(ctx: JobContext) -> None:
    """Runs once, then enqueues a ``test.effect`` follow-up, written with its completion."""
    record_run(ctx)
    ctx.enqueue(NewJob("test.effect", payload={"parent": str(ctx.job_id)}))


register(JobType("test.chain", chain, queue="cpu", retry=FAST_RETRY))
