"""Global limits per job type, shared by every worker process through Redis.

- Concurrency: a semaphore in Redis (a sorted set of holders, each with its
  expiry), taken before the claim and held while the attempt runs. Taking and
  giving back a slot are one atomic script each: Dramatiq's
  ``ConcurrentRateLimiter`` does WATCH/GET/MULTI/EXEC and starts over whenever
  another worker touched the counter, which with a hundred holders costs more
  CPU than the jobs. A holder that dies leaves its slot until it expires.
  Job types with ``limits_at_call`` hold a slot only around their provider call
  and, finding none free, wait a little for one to be given back (each give-back
  wakes one waiter) before snoozing.
- Starts per minute: an exact sliding log (a Redis sorted set of starts, trimmed
  and counted in one Lua script on the server's clock), taken after a successful
  claim, so a duplicate message never uses up a slot. A start counts while its
  call runs and for a full window after the call ends, so a request the provider
  received late still counts in the provider's own window. Dramatiq's
  ``WindowRateLimiter`` counts one-second buckets and can admit up to twice
  the limit in a 60-second span that straddles a bucket edge; a provider's
  limit must never be exceeded.

A job that finds no room spends no attempt: before the claim it is
postponed; after the claim it is snoozed (the attempt refunded).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from gradeflow.jobs.registry import JobType
from gradeflow.settings import Settings

#: How long a job waits before trying again when its type is at its concurrency limit.
CONCURRENCY_RETRY_SECONDS = 0.2
WINDOW_MILLISECONDS = 60_000

#: KEYS[1] the log; ARGV limit, window (ms), member, hold (ms). Returns -1 when a start is
#: admitted (and logged, in flight: it counts until its end is stamped, ``hold`` at most),
#: else the milliseconds until the oldest start can leave the window (a start still in
#: flight leaves it a full window after it ends, so: a window from now at the soonest).
SLIDING_LOG = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local hold = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + hold, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window + hold)
  return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.min(tonumber(oldest[2]), now) + window - now)
"""

#: KEYS[1] the log; ARGV member. The call ended: from now on, its start leaves the
#: window a full window later (the provider saw the request at the latest now).
STAMP_END = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
return 0
"""


#: KEYS[1] the holders; ARGV limit, ttl (ms), holder. Returns 1 when the holder got a
#: slot (holders past their expiry are dropped first), else 0.
SEMAPHORE_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
return 0
"""


#: KEYS[1] the holders, KEYS[2] the list of give-backs; ARGV holder, limit. Frees the
#: holder's slot and wakes one waiter, if any (the list never grows past the limit).
SEMAPHORE_GIVE_BACK = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[2], 1)
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
  redis.call('PEXPIRE', KEYS[2], 60000)
end
return 0
"""
#: How long a call waits for a slot to be given back before its job is snoozed.
SLOT_WAIT_SECONDS = 5.0
#: How often a waiting call looks again without a wake-up (a holder that died
#: gives nothing back; its slot expires).
SLOT_RECHECK_SECONDS = 0.5


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
        self.client = client
        self.settings = settings
        self._sliding_log = client.register_script(SLIDING_LOG)
        self._stamp_end = client.register_script(STAMP_END)
        self._take_slot = client.register_script(SEMAPHORE_TAKE)
        self._give_back = client.register_script(SEMAPHORE_GIVE_BACK)

    @contextmanager
    def running_slot(self, job_type: JobType, wait_seconds: float = 0.0) -> Iterator[float | None]:
        """Yield ``None`` with a concurrency slot held for the block, else seconds to wait.

        With ``wait_seconds``, a slot given back meanwhile is taken. A slot lasts the
        job type's time limit and a minute more at most, so one whose holder died
        comes back on its own.
        """
        limits = limits_for(job_type, self.settings)
        if not limits.concurrency:
            yield None
            return
        key = f"gradeflow:slots:{limits.scope}"
        given_back = f"gradeflow:slots-given-back:{limits.scope}"
        holder = uuid.uuid4().hex
        args: list[int | str] = [
            limits.concurrency,
            int((job_type.time_limit_seconds + 60) * 1000),
            holder,
        ]
        deadline = time.monotonic() + wait_seconds
        while not self._take_slot(keys=[key], args=args):
            left = deadline - time.monotonic()
            if left <= 0:
                yield jittered(CONCURRENCY_RETRY_SECONDS)
                return
            self.client.blpop([given_back], timeout=min(left, SLOT_RECHECK_SECONDS))
        try:
            yield None
        finally:
            self._give_back(keys=[key, given_back], args=[holder, limits.concurrency])

    @contextmanager
    def counted_start(self, job_type: JobType) -> Iterator[float | None]:
        """Yield ``None`` with one start counted under the per-minute limit, else seconds
        until one can be.

        The start counts while the block runs and for a full window after it ends, not
        after it began: a provider counts a request when it arrives, which on a busy
        machine can be well after the start was logged, and a window measured from the
        log would let the next minute's first requests land in this minute's count.
        """
        limits = limits_for(job_type, self.settings)
        limit = limits.per_minute
        if not limit:
            yield None
            return
        key = f"gradeflow:starts:{limits.scope}"
        member = uuid.uuid4().hex
        hold_ms = int((job_type.time_limit_seconds + 60) * 1000)
        wait_ms = int(
            self._sliding_log(keys=[key], args=[limit, WINDOW_MILLISECONDS, member, hold_ms])
        )
        if wait_ms >= 0:
            yield wait_ms / 1000 + jittered(0.05)
            return
        try:
            yield None
        finally:
            self._stamp_end(keys=[key], args=[member])


def jittered(seconds: float) -> float:
    """``seconds`` ± 50 %, so postponed jobs do not all come back at once."""
    return seconds * random.uniform(0.5, 1.5)
