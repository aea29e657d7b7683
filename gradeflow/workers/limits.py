"""Global limits per job type, checked before a job is claimed, so waiting spends no attempt.

Concurrency uses Dramatiq's ``ConcurrentRateLimiter`` and requests per minute
its sliding ``WindowRateLimiter``, both on Redis so every worker process
shares them. A job that finds no room is postponed in Postgres (still
``queued``, attempts untouched) and dispatched again when due.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from dramatiq.rate_limits import ConcurrentRateLimiter, WindowRateLimiter
from dramatiq.rate_limits.backend import RateLimiterBackend

from gradeflow.jobs.registry import JobType
from gradeflow.settings import Settings

#: How long a job waits before trying again when its type is at its concurrency limit.
CONCURRENCY_RETRY_SECONDS = 0.2
#: The per-minute window is kept in one-second buckets: a slot frees up within a second.
WINDOW_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Limits:
    concurrency: int | None
    per_minute: int | None


def limits_for(job_type: JobType, settings: Settings) -> Limits:
    """A job type's own limits; the ``llm`` queue's come from settings unless it sets them."""
    if job_type.queue == "llm":
        return Limits(
            job_type.concurrency or settings.llm_concurrency,
            job_type.per_minute or settings.llm_requests_per_minute,
        )
    return Limits(job_type.concurrency, job_type.per_minute)


class Gate:
    """Admits an attempt of a job type, or says how long to wait."""

    def __init__(self, backend: RateLimiterBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings

    @contextmanager
    def admit(self, job_type: JobType) -> Iterator[float | None]:
        """Yield ``None`` when admitted (the slot is held for the block), else seconds to wait."""
        limits = limits_for(job_type, self.settings)
        with ExitStack() as held:
            if limits.concurrency:
                limiter = ConcurrentRateLimiter(
                    self.backend,
                    f"gradeflow:concurrency:{job_type.name}",
                    limit=limits.concurrency,
                    ttl=int((job_type.time_limit_seconds + 60) * 1000),
                )
                if not held.enter_context(limiter.acquire(raise_on_failure=False)):
                    yield jittered(CONCURRENCY_RETRY_SECONDS)
                    return
            if limits.per_minute:
                window = WindowRateLimiter(
                    self.backend,
                    f"gradeflow:rpm:{job_type.name}",
                    limit=limits.per_minute,
                    window=60,
                )
                if not held.enter_context(window.acquire(raise_on_failure=False)):
                    yield jittered(WINDOW_RETRY_SECONDS)
                    return
            yield None


def jittered(seconds: float) -> float:
    """``seconds`` ± 50 %, so postponed jobs do not all come back at once."""
    return seconds * random.uniform(0.5, 1.5)
