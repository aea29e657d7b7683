"""The per-minute limit is an exact sliding log on Redis, not one-second buckets."""

from __future__ import annotations

import redis

from gradeflow.jobs.registry import JobContext, JobType
from gradeflow.settings import Settings
from gradeflow.workers.limits import WINDOW_MILLISECONDS, Gate


def nothing(ctx: JobContext) -> None:
    """Never runs: only the limit is exercised."""


def test_admits_exactly_the_limit_and_says_when_a_slot_frees(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    gate = Gate(client, Settings())
    kind = JobType("test.sliding", nothing, per_minute=5)
    answers = [gate.take_start(kind) for _ in range(12)]
    assert answers[:5] == [None] * 5
    assert all(
        wait is not None and 0 < wait <= WINDOW_MILLISECONDS / 1000 + 0.1 for wait in answers[5:]
    )
    assert client.zcard("gradeflow:starts:test.sliding") == 5


def test_a_start_leaves_the_window_after_sixty_seconds(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    gate = Gate(client, Settings())
    kind = JobType("test.sliding2", nothing, per_minute=2)
    key = "gradeflow:starts:test.sliding2"
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    # Two starts: one just over a minute ago (gone), one 59 s ago (still counts).
    client.zadd(key, {"old": now_ms - WINDOW_MILLISECONDS - 5, "recent": now_ms - 59_000})
    assert gate.take_start(kind) is None
    wait = gate.take_start(kind)
    assert wait is not None and wait < 2.0  # "recent" leaves within about a second
    assert set(client.zrange(key, 0, -1)) - {b"recent"} != set()
    assert b"old" not in client.zrange(key, 0, -1)
