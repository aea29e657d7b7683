"""Faults injected into a running stack, and how long the stack takes to get over each.

Each fault does its damage and returns a :class:`Fault`: when it began, when
it was over (the service back), what work it stranded, and two predicates over
that work: ``taken_back`` (the engine has it in hand again: rescued, re-sent)
and ``recovered`` (it moves again: claimed, delivered). A
:class:`RecoveryMonitor` polls them and stamps the moment each first holds.
Under load the second also counts the queue the work rejoins; the first is
what the engine's settings (lease, relay) bound.

| fault | stranded | taken back when | recovered when |
|---|---|---|---|
| a worker group SIGKILLed | jobs it ran | none runs under it | each over or reclaimed |
| Redis flushed, restarted empty | jobs with a message in it | each sent again | each claimed |
| PostgreSQL restarted | jobs running then | none runs under its owner | each over or reclaimed |
| webhook receivers down | events refused meanwhile | — | each delivered |
| an LLM 429 burst | calls answered 429 | — | a call answered after the last 429 |
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from gradeflow.ops.e2e.services import OwnedPostgres, OwnedRedis
from gradeflow.ops.e2e.stack import E2EStack
from gradeflow.ops.e2e.workload import Tenant

T = TypeVar("T")
MONITOR_POLL_SECONDS = 0.25
API_BACK_TIMEOUT_SECONDS = 60.0
#: What the LLM answers besides a grade or a ranking (the 429 burst is scripted apart).
LLM_ANSWERS = ("grade", "malformed")


@dataclass
class Fault:
    name: str
    #: ``time.time()`` when the fault began and when it was over (the service back).
    began_at: float
    ended_at: float
    #: How much work it stranded (jobs, events or calls), and other facts.
    stranded: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    recovered: Callable[[], bool] = lambda: True
    taken_back: Callable[[], bool] | None = None
    recovered_at: float | None = None
    taken_back_at: float | None = None

    @property
    def outage_s(self) -> float:
        return self.ended_at - self.began_at

    @property
    def recovery_s(self) -> float | None:
        """Seconds from the fault's start until its stranded work was moving again."""
        return self.since_began(self.recovered_at)

    def since_began(self, at: float | None) -> float | None:
        return None if at is None else round(at - self.began_at, 2)

    def poll(self) -> None:
        """Stamp each milestone that holds now (a service that is away: not yet)."""
        with contextlib.suppress(DBAPIError, OSError):
            if self.taken_back is not None and self.taken_back_at is None and self.taken_back():
                self.taken_back_at = time.time()
            if self.recovered_at is None and self.recovered():
                self.recovered_at = time.time()

    def as_json(self, run_start: float) -> dict[str, Any]:
        return {
            "fault": self.name,
            "at_s": round(self.began_at - run_start, 1),
            "outage_s": round(self.outage_s, 2),
            "stranded": self.stranded,
            "taken_back_s": self.since_began(self.taken_back_at),
            "recovery_s": self.recovery_s,
            **self.detail,
        }


def timestamp(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def when_database_answers(read: Callable[[], T]) -> T:
    """``read()``, tried again while PostgreSQL is away (another fault may be restarting
    it) for up to :data:`API_BACK_TIMEOUT_SECONDS`."""
    deadline = time.monotonic() + API_BACK_TIMEOUT_SECONDS
    while True:
        try:
            return read()
        except DBAPIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- the predicates ------------------------------------------------------------------------


def owners_gone(engine: Engine, held: Sequence[tuple[uuid.UUID, str]]) -> Callable[[], bool]:
    """True once none of ``held`` (job, owner) still runs under that owner."""
    ids, owners = [job for job, _ in held], [owner for _, owner in held]

    def gone() -> bool:
        with engine.connect() as conn:
            still = conn.execute(
                text(
                    "SELECT count(*) FROM async_jobs j"
                    " JOIN unnest(CAST(:ids AS uuid[]), CAST(:owners AS text[])) AS h(id, owner)"
                    " ON h.id = j.id WHERE j.status = 'running' AND j.locked_by = h.owner"
                ),
                {"ids": ids, "owners": owners},
            ).scalar_one()
        return not still

    return gone


def moved_on(
    engine: Engine, held: Sequence[tuple[uuid.UUID, str]], since: float
) -> Callable[[], bool]:
    """True once each of ``held`` (job, the owner it had) is over, or was claimed by
    another attempt after ``since`` (a job rescued but not yet claimed is still waiting)."""
    ids, owners = [job for job, _ in held], [owner for _, owner in held]

    def moved() -> bool:
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM async_jobs j"
                    " JOIN unnest(CAST(:ids AS uuid[]), CAST(:owners AS text[])) AS h(id, owner)"
                    " ON h.id = j.id WHERE j.status NOT IN ('succeeded', 'dead', 'cancelled')"
                    " AND NOT (j.started_at > :since AND j.locked_by IS DISTINCT FROM h.owner)"
                ),
                {"ids": ids, "owners": owners, "since": timestamp(since)},
            ).scalar_one()
        return not waiting

    return moved


def sent_since(engine: Engine, ids: Sequence[uuid.UUID], since: float) -> Callable[[], bool]:
    """True once each of ``ids`` had its message sent again, or was claimed, after ``since``."""

    def sent() -> bool:
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM async_jobs WHERE id = ANY(:ids) AND status = 'queued'"
                    " AND (sent_at IS NULL OR sent_at < :since)"
                    " AND (started_at IS NULL OR started_at < :since)"
                ),
                {"ids": list(ids), "since": timestamp(since)},
            ).scalar_one()
        return not waiting

    return sent


def claimed_since(engine: Engine, ids: Sequence[uuid.UUID], since: float) -> Callable[[], bool]:
    """True once none of ``ids`` is still queued without a claim after ``since``."""

    def claimed() -> bool:
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM async_jobs WHERE id = ANY(:ids) AND status = 'queued'"
                    " AND (started_at IS NULL OR started_at < :since)"
                ),
                {"ids": list(ids), "since": timestamp(since)},
            ).scalar_one()
        return not waiting

    return claimed


def running_jobs(engine: Engine) -> list[tuple[uuid.UUID, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, locked_by FROM async_jobs WHERE status = 'running'")
        ).all()
    return [(row[0], row[1]) for row in rows]


def owner_pid(owner: str) -> int | None:
    """The PID in a lease owner ``host:pid:token``."""
    parts = owner.split(":")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


# -- the faults ----------------------------------------------------------------------------


def kill_worker(stack: E2EStack, engine: Engine, queue: str) -> Fault:
    """SIGKILL the queue's worker group; the stack starts it again at once."""
    began = time.time()
    pids = set(stack.kill_worker(queue))
    running = when_database_answers(lambda: running_jobs(engine))
    orphans = [(job, owner) for job, owner in running if owner_pid(owner) in pids]
    return Fault(
        f"worker-{queue} SIGKILLed", began, time.time(), len(orphans), {"queue": queue},
        moved_on(engine, orphans, began), owners_gone(engine, orphans),
    )  # fmt: skip


def outstanding_jobs(engine: Engine) -> list[uuid.UUID]:
    """Queued jobs whose message has been sent (it waits in Redis)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT id FROM async_jobs WHERE status = 'queued'"
                    " AND sent_at IS NOT NULL AND sent_at >= next_run_at"
                )
            ).scalars()
        )


def lose_redis(redis_server: OwnedRedis, engine: Engine, down_seconds: float) -> Fault:
    """FLUSHDB, then kill the server and start it again, empty."""
    stranded = when_database_answers(lambda: outstanding_jobs(engine))
    began = time.time()
    redis_server.flush()
    redis_server.restart(down_seconds)
    return Fault(
        "Redis flushed and restarted", began, time.time(), len(stranded), {},
        claimed_since(engine, stranded, began), sent_since(engine, stranded, began),
    )  # fmt: skip


def restart_postgres(postgres: OwnedPostgres, stack: E2EStack, engine: Engine) -> Fault:
    """Restart PostgreSQL (every connection cut); note when the API is ready again."""
    held = when_database_answers(lambda: running_jobs(engine))
    began = time.time()
    postgres.restart()
    ended = time.time()
    deadline = time.monotonic() + API_BACK_TIMEOUT_SECONDS
    while not stack.api_ready() and time.monotonic() < deadline:
        time.sleep(0.1)
    api_back = round(time.time() - began, 2)
    return Fault(
        "PostgreSQL restarted", began, ended, len(held), {"api_ready_after_s": api_back},
        moved_on(engine, held, began), owners_gone(engine, held),
    )  # fmt: skip


def failed_during(engine: Engine, began: float, ended: float) -> Callable[[], bool]:
    """True once every event an attempt failed for between ``began`` and ``ended`` is
    delivered."""

    def delivered() -> bool:
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(DISTINCT e.id) FROM webhook_events e JOIN webhook_attempts a"
                    " ON a.event_id = e.id WHERE a.created_at BETWEEN :began AND :ended"
                    " AND (a.response_code IS NULL OR a.response_code >= 300)"
                    " AND e.status <> 'delivered'"
                ),
                {"began": timestamp(began), "ended": timestamp(ended)},
            ).scalar_one()
        return not waiting

    return delivered


def refused_deliveries(engine: Engine, began: float, ended: float) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(DISTINCT event_id) FROM webhook_attempts"
                    " WHERE created_at BETWEEN :b AND :e"
                    " AND (response_code IS NULL OR response_code >= 300)"
                ),
                {"b": timestamp(began), "e": timestamp(ended)},
            ).scalar_one()
        )


def receivers_down(tenants: Sequence[Tenant], engine: Engine, seconds: float) -> Fault:
    """Every receiver stops listening for ``seconds``, then comes back on its port."""
    ports = {tenant.name: tenant.receiver.port for tenant in tenants}
    began = time.time()
    for tenant in tenants:
        tenant.receiver.stop()
    time.sleep(seconds)
    for tenant in tenants:
        tenant.receiver.start(port=ports[tenant.name])
    ended = time.time()
    refused = when_database_answers(lambda: refused_deliveries(engine, began, ended))
    return Fault(
        "webhook receivers down", began, ended, refused, {},
        failed_during(engine, began, ended),
    )  # fmt: skip


def rate_limit_burst(stack: E2EStack, size: int, retry_after: float) -> Fault:
    """The next ``size`` LLM calls are answered 429 with ``Retry-After``."""
    began = time.time()
    stack.llm.script(*[{"kind": "rate_limit", "retry_after": retry_after}] * size)

    def answered_since() -> bool:
        stats = stack.llm.stats()
        last_429 = stats["last_at"].get("rate_limit")
        if stats["scripted_left"] or last_429 is None:
            return False
        return any(stats["last_at"].get(kind, 0.0) > last_429 for kind in LLM_ANSWERS)

    return Fault(
        f"LLM 429 burst ({size} calls)", began, began, size, {"retry_after_s": retry_after},
        answered_since,
    )  # fmt: skip


# -- watching them -------------------------------------------------------------------------


class RecoveryMonitor:
    """Polls the faults' milestones until each one recovered."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recovery-monitor", daemon=True)

    def start(self) -> RecoveryMonitor:
        self._thread.start()
        return self

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self.faults if f.recovered_at is None]

    def poll(self) -> None:
        for fault in self.pending():
            fault.poll()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.poll()

    def _run(self) -> None:
        while not self._stopping.wait(MONITOR_POLL_SECONDS):
            self.poll()
