"""The per-minute limit is an exact sliding log on Redis, not one-second buckets, and a
start counts until a full window after its call ended."""

from __future__ import annotations

from contextlib import ExitStack

import redis

from gradeflow.jobs.registry import JobContext, JobType
from gradeflow.settings import Settings
from gradeflow.workers.limits import WINDOW_MILLISECONDS, Gate


def nothing(ctx: JobContext) -> None:
    """Never runs: only the limit is exercised."""


def server_now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_admits_exactly_the_limit_and_says_when_a_slot_frees(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    gate = Gate(client, Settings())
    kind = JobType("test.sliding", nothing, per_minute=5)
    with ExitStack() as calls:
        answers = [calls.enter_context(gate.counted_start(kind)) for _ in range(12)]
    assert answers[:5] == [None] * 5
    assert all(
        wait is not None and 0 < wait <= WINDOW_MILLISECONDS / 1000 + 0.1 for wait in answers[5:]
    )
    assert client.zcard("gradeflow:starts:test.sliding") == 5


def test_a_start_leaves_the_window_a_minute_after_its_call_ended(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    gate = Gate(client, Settings())
    kind = JobType("test.sliding2", nothing, per_minute=2)
    key = "gradeflow:starts:test.sliding2"
    now_ms = server_now_ms(client)
    # Two calls: one ended just over a minute ago (gone), one 59 s ago (still counts).
    client.zadd(key, {"old": now_ms - WINDOW_MILLISECONDS - 5, "recent": now_ms - 59_000})
    with gate.counted_start(kind) as admitted, gate.counted_start(kind) as wait:
        assert admitted is None
        assert wait is not None and wait < 2.0  # "recent" leaves within about a second
    assert b"old" not in client.zrange(key, 0, -1)


def test_a_call_in_flight_counts_until_a_window_after_it_ends(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    gate = Gate(client, Settings())
    kind = JobType("test.sliding3", nothing, per_minute=1)
    key = "gradeflow:starts:test.sliding3"
    with gate.counted_start(kind) as admitted:
        assert admitted is None
        [(member, score)] = client.zrange(key, 0, -1, withscores=True)
        assert score > server_now_ms(client)  # in flight: it cannot leave the window yet
        with gate.counted_start(kind) as wait:
            # However long ago the call began, it leaves a full window after it ends.
            assert wait is not None and wait >= WINDOW_MILLISECONDS / 1000 - 0.1
    [(ended, score)] = client.zrange(key, 0, -1, withscores=True)
    assert ended == member and abs(score - server_now_ms(client)) < 1_000
    client.zadd(key, {member: server_now_ms(client) - WINDOW_MILLISECONDS - 5})
    with gate.counted_start(kind) as admitted_again:
        assert admitted_again is None
