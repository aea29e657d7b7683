"""The heartbeat: one thread per worker process extends the leases of its running jobs.

It does not depend on the jobs' own code: a job stuck in a C call or a long
HTTP request keeps its lease as long as its process is alive, and loses it
(to the rescuer) once the process is gone.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from sqlalchemy import Engine

from gradeflow.db.jobs import extend_leases, release_leases

log = structlog.get_logger(__name__)


class LeaseKeeper:
    """Tracks the jobs this process runs and renews their leases every interval."""

    def __init__(
        self, engine: Engine, worker_id: str, *, lease_seconds: float, interval_seconds: float
    ) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.interval_seconds = interval_seconds
        # A multiset: the same job may run twice here if its lease lapsed and it was
        # claimed again; the lease is kept while any attempt of it runs.
        self._running: Counter[uuid.UUID] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, job_id: uuid.UUID) -> Iterator[None]:
        """Keep ``job_id``'s lease alive for the duration of the block."""
        self._ensure_started()
        with self._lock:
            self._running[job_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[job_id] -= 1
                if self._running[job_id] <= 0:
                    del self._running[job_id]

    def running(self) -> list[uuid.UUID]:
        with self._lock:
            return list(self._running)

    def renew_once(self) -> int:
        """Extend every tracked lease now; return how many were extended."""
        job_ids = self.running()
        if not job_ids:
            return 0
        with self.engine.begin() as conn:
            return extend_leases(conn, self.worker_id, job_ids, self.lease_seconds)

    def release_all(self) -> int:
        """Give every tracked job back to the queue at once (clean shutdown)."""
        job_ids = self.running()
        if not job_ids:
            return 0
        with self.engine.begin() as conn:
            released = release_leases(conn, self.worker_id, job_ids)
        log.info("released leases at shutdown", jobs=released)
        return released

    def stop(self) -> None:
        self._stop.set()

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="gradeflow-heartbeat", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self.renew_once()
            except Exception as exc:  # the next beat tries again; the lease has slack
                log.warning("lease renewal failed", error=str(exc))
