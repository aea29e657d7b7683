"""The raw-Dramatiq side of ``gradeflow bench jobs``: a no-op actor and nothing else.

``python -m dramatiq gradeflow.ops.bench_raw_actor:setup`` loads it in real
Dramatiq worker processes. The broker has gradeflow's middleware (so both
sides pay for the same Dramatiq machinery) but no job engine: no rows, no
leases, no claim or finish transactions. The actor only counts itself in
Redis and stamps the first and the last message, so the benchmark can time
the drain from the first message processed to the last.
"""

from __future__ import annotations

import os
import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from gradeflow.workers.broker import DEFAULT_MIDDLEWARE

#: Environment variable carrying the Redis URL (a logical db of the benchmark's own).
REDIS_URL_ENV = "GRADEFLOW_BENCH_REDIS_URL"
QUEUE = "bench"
ACTOR = "bench_noop"
COUNT_KEY = "gradeflow:bench:raw:count"
FIRST_KEY = "gradeflow:bench:raw:first"
LAST_KEY = "gradeflow:bench:raw:last"

_client: redis.Redis | None = None


def build_raw_broker(url: str) -> dramatiq.Broker:
    """A Redis broker with gradeflow's middleware and the no-op actor declared."""
    broker = RedisBroker(url=url, middleware=[m() for m in DEFAULT_MIDDLEWARE] + [CurrentMessage()])
    broker.declare_queue(QUEUE)
    dramatiq.actor(actor_name=ACTOR, queue_name=QUEUE, max_retries=0, broker=broker)(bench_noop)
    return broker


def setup() -> None:
    """Entry point for the ``dramatiq`` CLI: make the broker Dramatiq's global one."""
    dramatiq.set_broker(build_raw_broker(os.environ[REDIS_URL_ENV]))


def bench_noop(total: int) -> None:
    """Does nothing but count itself (one Redis round trip; two for the first and last)."""
    global _client
    started = time.time()
    if _client is None:
        _client = redis.Redis.from_url(os.environ[REDIS_URL_ENV])
    done = int(_client.incr(COUNT_KEY))
    if done == 1:
        _client.set(FIRST_KEY, repr(started))
    if done == total:
        _client.set(LAST_KEY, repr(time.time()))
