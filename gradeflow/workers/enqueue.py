"""Enqueueing from outside a job: insert in one transaction, send after commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import dramatiq
from sqlalchemy import Engine

from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.registry import NewJob
from gradeflow.workers.messages import send_messages


def enqueue(
    engine: Engine, broker: dramatiq.Broker, jobs: Sequence[NewJob], window: int
) -> list[uuid.UUID]:
    """Insert ``jobs`` and send the messages the window allows; return the new jobs' ids.

    Jobs not sent here (beyond the window, or when the broker is down) are
    sent by the scheduler's dispatcher and relay: nothing is lost either way.
    """
    with engine.begin() as conn:
        inserted = insert_new_jobs(conn, jobs, window)
    send_messages(broker, inserted.messages)
    return inserted.job_ids
