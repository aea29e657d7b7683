"""Global limits, snoozes and fair dispatch, with real worker processes and the scheduler."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import Engine, text

import tests.support.jobs  # noqa: F401  (registers the test job types in this process too)
from gradeflow.jobs.registry import NewJob
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.enqueue import enqueue
from tests.support.jobs import TEST_TABLES_DDL
from tests.support.processes import running, scheduler_argv, wait_for, worker_argv

#: The dispatch window of every process here (the default of the settings, made explicit).
WINDOW = 500


@pytest.fixture
def env(gradeflow_env: dict[str, str]) -> dict[str, str]:
    return {**gradeflow_env, "GRADEFLOW_DISPATCH_WINDOW": str(WINDOW)}


@pytest.fixture
def broker(redis_url: str) -> Iterator[dramatiq.Broker]:
    broker = build_broker(Settings(redis_url=redis_url))
    yield broker
    broker.close()


@pytest.fixture
def prepared(engine: Engine) -> Engine:
    with engine.begin() as conn:
        for ddl in TEST_TABLES_DDL:
            conn.execute(text(ddl))
    return engine


def scalar(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def statuses(engine: Engine, job_type: str) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, count(*) FROM async_jobs WHERE job_type = :t GROUP BY 1"),
            {"t": job_type},
        )
        return {status: count for status, count in rows}


def warm_up(engine: Engine, broker: dramatiq.Broker, log: Path) -> None:
    """Wait until the worker runs jobs, so timings below measure the engine, not the boot."""
    [job_id] = enqueue(engine, broker, [NewJob("test.effect")], window=WINDOW)
    assert wait_for(
        lambda: (
            scalar(engine, "SELECT count(*) FROM test_job_effects WHERE job_id = :id", id=job_id)
            == 1
        ),
        timeout=60,
    ), log.read_text()


def run_to_success(
    engine: Engine,
    broker: dramatiq.Broker,
    env: dict[str, str],
    log: Path,
    jobs: list[NewJob],
    threads: int,
) -> list[uuid.UUID]:
    """Run ``jobs`` (all of one type) on a worker of ``threads`` threads and the
    scheduler until every one succeeded; their ids."""
    kind = jobs[0].job_type
    with running(worker_argv(threads=threads), env, log), running(scheduler_argv(), env, log):
        warm_up(engine, broker, log)
        job_ids = enqueue(engine, broker, jobs, WINDOW)
        assert wait_for(lambda: statuses(engine, kind) == {"succeeded": len(jobs)}, timeout=30), (
            statuses(engine, kind),
            log.read_text(),
        )
    return job_ids


def max_starts_in_window(starts: list[datetime], window: timedelta) -> int:
    """The most starts any half-open window of length ``window`` holds."""
    ordered = sorted(starts)
    best, first = 0, 0
    for last, start in enumerate(ordered):
        while ordered[first] <= start - window:
            first += 1
        best = max(best, last - first + 1)
    return best


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant (an end before a start at a tie)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def test_helpers_measure_what_they_claim() -> None:
    t = datetime(2020, 1, 1)
    s = timedelta(seconds=1)
    assert max_starts_in_window([t, t + 30 * s, t + 59 * s, t + 60 * s], 60 * s) == 3
    assert max_overlap([(t, t + 2 * s), (t + s, t + 3 * s), (t + 2 * s, t + 4 * s)]) == 2
    assert max_overlap([(t, t + s), (t + s, t + 2 * s)]) == 1


def test_per_minute_limit_holds_and_waiting_spends_no_attempt(
    prepared: Engine, broker: dramatiq.Broker, env: dict[str, str], tmp_path: Path
) -> None:
    engine = prepared
    log = tmp_path / "procs.log"
    with running(worker_argv(threads=8), env, log), running(scheduler_argv(), env, log):
        warm_up(engine, broker, log)
        started = time.monotonic()
        job_ids = enqueue(engine, broker, [NewJob("test.limited") for _ in range(45)], WINDOW)
        assert len(job_ids) == 45
        assert wait_for(
            lambda: statuses(engine, "test.limited").get("succeeded") == 30, timeout=15
        ), (statuses(engine, "test.limited"), log.read_text())
        # Keep watching for the rest of ~10 s: the other 15 must keep waiting.
        time.sleep(max(0.0, 10 - (time.monotonic() - started)))

        with engine.connect() as conn:
            runs = conn.execute(
                text(
                    "SELECT r.job_id, r.attempt, r.ran_at FROM test_job_runs r"
                    " JOIN async_jobs j ON j.id = r.job_id WHERE j.job_type = 'test.limited'"
                )
            ).all()
            waiting = conn.execute(
                text(
                    "SELECT attempts, started_at, next_run_at - queued_at, error_payload"
                    " FROM async_jobs WHERE job_type = 'test.limited' AND status = 'queued'"
                )
            ).all()
        assert statuses(engine, "test.limited") == {"succeeded": 30, "queued": 15}

    assert len(runs) == 30
    assert len({job_id for job_id, _, _ in runs}) == 30
    assert {attempt for _, attempt, _ in runs} == {1}
    assert max_starts_in_window([ran_at for *_, ran_at in runs], timedelta(seconds=60)) <= 30
    assert len(waiting) == 15
    for attempts, started_at, postponed_by, error_payload in waiting:
        assert attempts == 0  # waiting for the limit spent no attempt
        assert started_at is not None  # claimed, then snoozed by the per-minute limit
        assert error_payload is None
        # ... until the oldest start leaves the 60-s window, not in a busy loop.
        assert postponed_by > timedelta(seconds=3), postponed_by


def test_a_rate_at_call_type_counts_calls_not_starts(
    prepared: Engine, broker: dramatiq.Broker, env: dict[str, str], tmp_path: Path
) -> None:
    engine = prepared
    log = tmp_path / "procs.log"
    jobs = [NewJob("test.rate_at_call", {"sleep": 0.2}) for _ in range(8)]
    with running(worker_argv(threads=8), env, log), running(scheduler_argv(), env, log):
        warm_up(engine, broker, log)
        enqueue(engine, broker, jobs, WINDOW)
        assert wait_for(
            lambda: statuses(engine, "test.rate_at_call").get("succeeded") == 5, timeout=15
        ), (statuses(engine, "test.rate_at_call"), log.read_text())
        time.sleep(2)
        with engine.connect() as conn:
            calls = conn.execute(
                text(
                    "SELECT count(*) FROM test_job_effects JOIN async_jobs j ON j.id = job_id"
                    " WHERE j.job_type = 'test.rate_at_call'"
                )
            ).scalar_one()
            waiting = conn.execute(
                text(
                    "SELECT attempts FROM async_jobs"
                    " WHERE job_type = 'test.rate_at_call' AND status = 'queued'"
                )
            ).scalars()
            # Every job started (its work ran), but only five made their call; the other
            # three were snoozed at the call, without spending an attempt.
            started = conn.execute(
                text(
                    "SELECT count(DISTINCT job_id) FROM test_job_runs JOIN async_jobs j"
                    " ON j.id = job_id WHERE j.job_type = 'test.rate_at_call'"
                )
            ).scalar_one()
    assert calls == 5
    assert list(waiting) == [0, 0, 0]
    assert started == 8


def test_concurrency_limit_holds_across_eight_threads(
    prepared: Engine, broker: dramatiq.Broker, env: dict[str, str], tmp_path: Path
) -> None:
    engine = prepared
    log = tmp_path / "procs.log"
    jobs = [NewJob("test.concurrent", {"sleep": 0.5}) for _ in range(10)]
    job_ids = run_to_success(engine, broker, env, log, jobs, threads=8)

    with engine.connect() as conn:
        intervals = conn.execute(
            text(
                "SELECT r.ran_at, e.written_at FROM test_job_runs r"
                " JOIN test_job_effects e USING (job_id) WHERE r.job_id = ANY(:ids)"
            ),
            {"ids": job_ids},
        ).all()
        attempts = conn.execute(
            text("SELECT attempts FROM async_jobs WHERE id = ANY(:ids)"), {"ids": job_ids}
        ).scalars()
        assert list(attempts) == [1] * len(jobs)
    assert len(intervals) == len(jobs)  # one run each
    assert all(end - start >= timedelta(seconds=0.5) for start, end in intervals)
    overlap = max_overlap([(start, end) for start, end in intervals])
    assert overlap <= 2, intervals
    assert overlap == 2, "two slots, eight threads, ten jobs: the slots should be shared"


def test_a_limits_at_call_type_holds_its_slot_for_the_call_alone(
    prepared: Engine, broker: dramatiq.Broker, env: dict[str, str], tmp_path: Path
) -> None:
    engine = prepared
    log = tmp_path / "procs.log"
    jobs = [NewJob("test.slot_at_call", {"sleep": 0.4, "call": 0.3}) for _ in range(8)]
    job_ids = run_to_success(engine, broker, env, log, jobs, threads=8)

    with engine.connect() as conn:
        calls = conn.execute(
            text("SELECT started_at, ended_at FROM test_job_calls WHERE job_id = ANY(:ids)"),
            {"ids": job_ids},
        ).all()
        runs = conn.execute(
            text(
                "SELECT r.ran_at, e.written_at FROM test_job_runs r"
                " JOIN test_job_effects e USING (job_id) WHERE r.job_id = ANY(:ids)"
            ),
            {"ids": job_ids},
        ).all()
        attempts = conn.execute(
            text("SELECT attempts FROM async_jobs WHERE id = ANY(:ids)"), {"ids": job_ids}
        ).scalars()
        assert list(attempts) == [1] * len(jobs)  # waited for a slot, never snoozed
    assert len(calls) == len(runs) == len(jobs)
    assert max_overlap([(start, end) for start, end in calls]) == 2, calls
    # The work before the call ran on all eight threads at once: no slot was held for it.
    assert max_overlap([(start, end) for start, end in runs]) > 2, runs


def test_a_limits_at_call_type_computes_in_turns_and_gives_its_turn_up_for_the_call(
    prepared: Engine, broker: dramatiq.Broker, env: dict[str, str], tmp_path: Path
) -> None:
    engine = prepared
    log = tmp_path / "procs.log"
    one_turn = {**env, "GRADEFLOW_WORKER_COMPUTE_TURNS": "1"}
    jobs = [NewJob("test.slot_at_call", {"sleep": 0.3, "call": 0.8}) for _ in range(6)]
    job_ids = run_to_success(engine, broker, one_turn, log, jobs, threads=6)

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT r.ran_at, c.started_at, c.ended_at FROM test_job_runs r"
                " JOIN test_job_calls c USING (job_id) WHERE r.job_id = ANY(:ids)"
            ),
            {"ids": job_ids},
        ).all()
    assert len(rows) == len(jobs)
    # One turn: the work before the calls (0.3 s from ``ran_at``) ran one attempt at a time
    # (six threads would run all six at once)...
    work = timedelta(seconds=0.3)
    assert max_overlap([(ran, ran + work) for ran, _, _ in rows]) == 1, rows
    # ...while the calls overlapped (two slots): the turn is given up for the call.
    assert max_overlap([(started, ended) for _, started, ended in rows]) == 2, rows


def test_snooze_runs_again_without_spending_an_attempt(
    prepared: Engine, broker: dramatiq.Broker, env: dict[str, str], tmp_path: Path
) -> None:
    engine = prepared
    log = tmp_path / "procs.log"
    with running(worker_argv(), env, log), running(scheduler_argv(), env, log):
        [job_id] = enqueue(engine, broker, [NewJob("test.snooze_once")], WINDOW)
        assert wait_for(
            lambda: statuses(engine, "test.snooze_once") == {"succeeded": 1}, timeout=60
        ), (statuses(engine, "test.snooze_once"), log.read_text())
    with engine.connect() as conn:
        attempts, error_payload = conn.execute(
            text("SELECT attempts, error_payload FROM async_jobs WHERE id = :id"), {"id": job_id}
        ).one()
        runs = conn.execute(
            text("SELECT attempt, ran_at FROM test_job_runs WHERE job_id = :id ORDER BY ran_at"),
            {"id": job_id},
        ).all()
    assert attempts == 1
    assert error_payload is None  # a snooze is not an error
    assert [attempt for attempt, _ in runs] == [1, 1]  # both runs were "attempt 1"
    assert runs[1].ran_at - runs[0].ran_at >= timedelta(seconds=0.5)  # the snooze was honoured


def make_client(engine: Engine, name: str) -> uuid.UUID:
    key_hash = hashlib.sha256(f"{name}-{uuid.uuid4()}".encode()).hexdigest()
    with engine.begin() as conn:
        client_id = conn.execute(
            text(
                "INSERT INTO api_clients (name, role, key_hash, key_prefix)"
                " VALUES (:name, 'submitter', :hash, :prefix) RETURNING id"
            ),
            {"name": name, "hash": key_hash, "prefix": key_hash[:8]},
        ).scalar_one()
    return uuid.UUID(str(client_id))


def test_a_burst_of_one_client_does_not_starve_another(
    prepared: Engine,
    broker: dramatiq.Broker,
    env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = prepared
    log = tmp_path / "procs.log"
    client_a, client_b = make_client(engine, "burst"), make_client(engine, "quiet")
    with (
        running(worker_argv(processes=1, threads=8), env, log),
        running(scheduler_argv(), env, log),
    ):
        warm_up(engine, broker, log)
        burst = enqueue(
            engine, broker, [NewJob("test.effect", client_id=client_a) for _ in range(5000)], WINDOW
        )
        [quiet] = enqueue(engine, broker, [NewJob("test.effect", client_id=client_b)], WINDOW)
        assert len(burst) == 5000
        assert wait_for(
            lambda: statuses(engine, "test.effect").get("succeeded") == 5002, timeout=120
        ), (statuses(engine, "test.effect"), log.read_text()[-5000:])

    with engine.connect() as conn:
        b_started, b_delay = conn.execute(
            text(
                "SELECT started_at, extract(epoch FROM started_at - queued_at)"
                " FROM async_jobs WHERE id = :id"
            ),
            {"id": quiet},
        ).one()
        a_after_b = scalar(
            engine,
            "SELECT count(*) FROM async_jobs WHERE client_id = :a AND started_at > :b",
            a=client_a,
            b=b_started,
        )
        a_first, a_last = conn.execute(
            text("SELECT min(started_at), max(started_at) FROM async_jobs WHERE client_id = :a"),
            {"a": client_a},
        ).one()
        attempts = dict(
            conn.execute(
                text("SELECT attempts, count(*) FROM async_jobs WHERE client_id = :a GROUP BY 1"),
                {"a": client_a},
            ).all()
        )
    assert attempts == {1: 5000}
    assert a_after_b >= 0.8 * len(burst), (a_after_b, b_delay)
    with capsys.disabled():
        print(
            f"\nfairness: B's job waited {float(b_delay):.3f} s (queued -> claimed) behind"
            f" A's 5,000-job burst; {a_after_b} of A's jobs started after it;"
            f" A's burst drained in {(a_last - a_first).total_seconds():.1f} s"
        )
