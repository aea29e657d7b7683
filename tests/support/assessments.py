"""Submitting an assessment the way intake does, without going through HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gradeflow.db.assessments import NewAssessment, insert_assessment
from gradeflow.db.engine import transaction
from gradeflow.db.schema import Question
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.pipeline import scoring_jobs
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.messages import send_messages


@dataclass(frozen=True)
class Submitted:
    assessment_id: uuid.UUID
    client_id: uuid.UUID
    #: Snapshot ids, in the order the questions were answered.
    snapshots: list[uuid.UUID]


def write_assessment(
    session: Session,
    client_id: uuid.UUID,
    role_id: uuid.UUID,
    answers: Sequence[tuple[Question, Any]],
    window: int = 500,
) -> tuple[Submitted, list[Any]]:
    """The assessment and its scoring jobs in ``session``'s transaction; return it and
    the messages to send after commit."""
    inserted = insert_assessment(
        session,
        NewAssessment(
            client_id=client_id,
            external_id=f"user-{uuid.uuid4().hex[:8]}",
            email=f"{uuid.uuid4().hex[:8]}@example.com",
            role_id=role_id,
            metadata=None,
            answers=[(question.id, answer) for question, answer in answers],
        ),
    )
    kinds = {inserted.snapshot_ids[q.id]: q.question_type for q, _ in answers}
    jobs = scoring_jobs(inserted.id, client_id, kinds)
    messages = insert_new_jobs(session.connection(), jobs, window).messages
    snapshots = [inserted.snapshot_ids[q.id] for q, _ in answers]
    return Submitted(inserted.id, client_id, snapshots), messages


def submit(
    engine: Engine,
    redis_url: str,
    client_id: uuid.UUID,
    role_id: uuid.UUID,
    answers: Sequence[tuple[Question, Any]],
) -> Submitted:
    """Write an assessment and its scoring jobs in one transaction; send the messages."""
    with transaction(engine) as session:
        submitted, messages = write_assessment(session, client_id, role_id, answers)
    broker = build_broker(Settings(redis_url=redis_url, _env_file=None))
    try:
        send_messages(broker, messages)
    finally:
        broker.close()
    return submitted
