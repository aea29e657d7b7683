"""The scheduler process: maintenance services in a loop, under a Postgres advisory lock.

Any number of schedulers may run; the one holding the lock (on a session of
its own) does the work, the others wait to take over. When PostgreSQL goes
away the session — and the lock — go with it, and the loop reconnects.
"""

from __future__ import annotations

import math
import threading
import time

import structlog
from sqlalchemy import Connection, Engine, text

from gradeflow.workers.maintenance import Service

log = structlog.get_logger(__name__)

#: The advisory lock key: "gradeflow" in ASCII, folded into a bigint.
LEADER_LOCK_KEY = 0x6772616465666C6F
#: Pause between rounds while there was work (a backlog drains at full speed).
BUSY_PAUSE_SECONDS = 0.02
#: How often the leader makes sure its lock session (and so its lock) is still alive.
LEADER_CHECK_SECONDS = 1.0


class Scheduler:
    def __init__(
        self, engine: Engine, services: list[Service], *, idle_pause_seconds: float
    ) -> None:
        self.engine = engine
        self.services = services
        self.idle_pause_seconds = idle_pause_seconds
        self.stopping = threading.Event()
        #: When each service last ran (monotonic), by its place in ``services``.
        self.last_runs: dict[int, float] = {}

    def run(self) -> None:
        """Lead when the lock is free; run until :meth:`stop`."""
        while not self.stopping.is_set():
            try:
                with self.engine.connect() as session:
                    if try_lead(session):
                        log.info("scheduler is the leader")
                        self._lead(session)
                        return
            except Exception as exc:
                log.warning("scheduler lost the database; reconnecting", error=str(exc))
            self.stopping.wait(1.0)

    def run_round(self) -> int:
        """One pass over every service that is due (see ``Service.every_seconds``); returns
        the work done (for tests and the loop)."""
        done = 0
        for place, service in enumerate(self.services):
            now = time.monotonic()
            if now - self.last_runs.get(place, -math.inf) < service.every_seconds:
                continue
            self.last_runs[place] = now
            done += service.run_once()
        return done

    def stop(self) -> None:
        self.stopping.set()

    def _lead(self, session: Connection) -> None:
        """Run rounds while leading; a dead lock session (and so a lost lock) ends it."""
        last_check = time.monotonic()
        while not self.stopping.is_set():
            if time.monotonic() - last_check >= LEADER_CHECK_SECONDS:
                session.execute(text("SELECT 1")).scalar_one()
                session.commit()
                last_check = time.monotonic()
            done = self.run_round()
            self.stopping.wait(BUSY_PAUSE_SECONDS if done else self.idle_pause_seconds)


def try_lead(session: Connection) -> bool:
    """Take the leader lock on ``session`` (held until that session ends)."""
    acquired = session.execute(
        text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}
    ).scalar_one()
    session.commit()
    return bool(acquired)
