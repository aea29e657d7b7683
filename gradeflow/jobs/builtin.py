"""Job types the engine itself uses: a no-op (benchmarks, smoke tests)."""

from __future__ import annotations

from gradeflow.jobs.registry import JobContext, JobType, register


def noop(ctx: JobContext) -> None:
    """Does nothing: measures the engine's own cost per job."""


NOOP = register(JobType(name="noop", handler=noop, queue="cpu"))
