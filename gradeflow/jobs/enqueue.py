"""Turning new jobs into rows: queue from the job type, message now or via the dispatcher."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from sqlalchemy import Connection

from gradeflow.db.jobs import Inserted, JobToInsert, insert_jobs
from gradeflow.jobs.registry import NewJob, queue_of


def insert_new_jobs(conn: Connection, jobs: Sequence[NewJob], window: int) -> Inserted:
    """Insert ``jobs`` in the caller's transaction; send ``.messages`` after commit.

    Per (queue, client), messages go out at once only while fewer than
    ``window`` are in flight; the rest wait for the dispatcher, which tops
    every client up fairly. A single job of a quiet client is always sent at once.
    """
    return insert_jobs(conn, [job_row(job, send_now=True) for job in jobs], window)


def job_row(job: NewJob, *, send_now: bool) -> JobToInsert:
    """The row of ``job``, on its type's queue."""
    return JobToInsert(
        job_type=job.job_type,
        queue_name=queue_of(job.job_type),
        payload=job.payload,
        assessment_id=job.assessment_id,
        client_id=job.client_id,
        dedup_key=job.dedup_key,
        max_attempts=job.max_attempts,
        send_now=send_now,
    )


#: How long intake trusts that a client's window it found full is still full.
FULL_WINDOW_RECHECK_SECONDS = 1.0


class FullWindows:
    """The (client, queue) dispatch windows this process last found full.

    While a window is known to be full, new jobs on it are left to the dispatcher
    without counting the window again: during a burst, each submission would
    otherwise count ``window`` in-flight messages per queue only to learn what
    the previous one learned. A window is counted again ``recheck_seconds`` after
    it was found full; the dispatcher sends what waits meanwhile, so nothing is
    held back longer than its own round.
    """

    def __init__(
        self,
        recheck_seconds: float = FULL_WINDOW_RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        self._full_until: dict[tuple[uuid.UUID | None, str], float] = {}

    def send_now(self, client_id: uuid.UUID | None, queue: str) -> bool:
        """Whether a new job of ``client_id`` on ``queue`` may try for a message at once."""
        until = self._full_until.get((client_id, queue))
        return until is None or self._clock() >= until

    def found_full(self, client_id: uuid.UUID | None, queues: set[str]) -> None:
        """Remember that ``client_id``'s windows on ``queues`` were just found full."""
        until = self._clock() + self._recheck_seconds
        for queue in queues:
            self._full_until[(client_id, queue)] = until
