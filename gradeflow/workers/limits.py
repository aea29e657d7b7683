"""Global limits per job type, shared by every worker process through Redis.

- Concurrency: Dramatiq's ``ConcurrentRateLimiter``, taken before the claim
  and held while the attempt runs.
- Starts per minute: an exact sliding log (a Redis sorted set of start times,
  trimmed and counted in one Lua script on the server's clock), taken after a
  successful claim, so a duplicate message never uses up a slot. Dramatiq's
  ``WindowRateLimiter`` counts one-second buckets and can admit up to twice
  the limit in a 60-second span that straddles a bucket edge; a provider's
  limit must never be exceeded.

A job that finds no room spends no attempt: before the claim it is
postponed; after the claim it is snoozed (the attempt refunded).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from dramatiq.rate_limits import ConcurrentRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from gradeflow.jobs.registry import JobType
from gradeflow.settings import Settings

#: How long a job waits before trying again when its type is at its concurrency limit.
CONCURRENCY_RETRY_SECONDS = 0.2
WINDOW_MILLISECONDS = 60_000

#: KEYS[1] the log; ARGV limit, window (ms), member. Returns -1 when a start is
#: admitted (and logged), else the milliseconds until the oldest start leaves the window.
SLIDING_LOG = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


@dataclass(frozen=True)
class Limits:
    concurrency: int | None
    per_minute: int | None
    #: The Redis keys' suffix: job types sharing it share the limits.
    scope: str


def limits_for(job_type: JobType, settings: Settings) -> Limits:
    """A job type's own limits, or the ``llm`` queue's for the job types on it.

    Every job type on the ``llm`` queue calls the same model provider, whose limits
    count requests from all of them: they share one budget (from settings, unless
    the job type sets its own, which then is its alone).
    """
    if job_type.queue == "llm" and job_type.concurrency is None and job_type.per_minute is None:
        return Limits(settings.llm_concurrency, settings.llm_requests_per_minute, "queue:llm")
    return Limits(job_type.concurrency, job_type.per_minute, job_type.name)


class Gate:
    """Admits attempts of a job type under its limits, or says how long to wait."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.backend = RedisBackend(client=client)
        self.settings = settings
        self._sliding_log = client.register_script(SLIDING_LOG)

    @contextmanager
    def running_slot(self, job_type: JobType) -> Iterator[float | None]:
        """Yield ``None`` with a concurrency slot held for the block, else seconds to wait."""
        limits = limits_for(job_type, self.settings)
        limit = limits.concurrency
        if not limit:
            yield None
            return
        limiter = ConcurrentRateLimiter(
            self.backend,
            f"gradeflow:concurrency:{limits.scope}",
            limit=limit,
            ttl=int((job_type.time_limit_seconds + 60) * 1000),
        )
        with limiter.acquire(raise_on_failure=False) as acquired:
            yield None if acquired else jittered(CONCURRENCY_RETRY_SECONDS)

    def take_start(self, job_type: JobType) -> float | None:
        """Record one start under the per-minute limit: ``None`` if admitted, else seconds
        until a slot frees up."""
        limits = limits_for(job_type, self.settings)
        limit = limits.per_minute
        if not limit:
            return None
        wait_ms = int(
            self._sliding_log(
                keys=[f"gradeflow:starts:{limits.scope}"],
                args=[limit, WINDOW_MILLISECONDS, uuid.uuid4().hex],
            )
        )
        return None if wait_ms < 0 else wait_ms / 1000 + jittered(0.05)


def jittered(seconds: float) -> float:
    """``seconds`` ± 50 %, so postponed jobs do not all come back at once."""
    return seconds * random.uniform(0.5, 1.5)
