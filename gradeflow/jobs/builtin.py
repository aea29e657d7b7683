"""Job types the engine itself uses: a no-op and a sleeper (benchmarks, smoke tests)."""

from __future__ import annotations

import time

from gradeflow.jobs.registry import JobContext, JobType, register


def noop(ctx: JobContext) -> None:
    """Does nothing: measures the engine's own cost per job."""


def sleep(ctx: JobContext) -> None:
    """Sleeps ``payload["seconds"]``: a job that is still running when its worker is killed."""
    time.sleep(float(ctx.payload.get("seconds", 1.0)))


NOOP = register(JobType(name="noop", handler=noop, queue="cpu"))
SLEEP = register(JobType(name="bench.sleep", handler=sleep, queue="cpu"))
