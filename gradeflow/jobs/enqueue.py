"""Turning new jobs into rows: queue from the job type, message now or via the dispatcher."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Connection

from gradeflow.db.jobs import Inserted, JobToInsert, insert_jobs, outstanding_messages
from gradeflow.jobs.registry import NewJob, queue_of


def insert_new_jobs(conn: Connection, jobs: Sequence[NewJob], window: int) -> Inserted:
    """Insert ``jobs`` in the caller's transaction; send ``.messages`` after commit.

    Per (queue, client), messages go out at once only while fewer than
    ``window`` are in flight; the rest wait for the dispatcher, which tops
    every client up fairly. A single job of a quiet client is always sent at once.
    """
    budgets: dict[tuple[str, uuid.UUID | None], int] = {}
    clients_counted: set[uuid.UUID | None] = set()
    rows: list[JobToInsert] = []
    queues = sorted({queue_of(job.job_type) for job in jobs})
    for job in jobs:
        if job.client_id not in clients_counted:
            counts = outstanding_messages(conn, job.client_id, queues, window)
            for queue_name, count in counts.items():
                budgets[(queue_name, job.client_id)] = window - count
            clients_counted.add(job.client_id)
        queue = queue_of(job.job_type)
        budget = budgets.get((queue, job.client_id), window)
        budgets[(queue, job.client_id)] = budget - 1
        rows.append(job_row(job, send_now=budget > 0))
    return insert_jobs(conn, rows)


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
