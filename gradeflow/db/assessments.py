"""Assessments: the intake's one write, and the pipeline's reads and guarded transitions.

Intake writes run in the caller's ORM session and never commit. Pipeline
functions take a Core connection inside the transaction that finishes a job.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.orm import Session

from gradeflow.db.schema import (
    Assessment,
    AssessmentQuestionSnapshot,
    AsyncJob,
    EssayScore,
    Question,
    RoleCatalog,
    RuleScore,
    User,
)

# -- intake --------------------------------------------------------------------------


def active_role(session: Session, role_id: uuid.UUID) -> RoleCatalog | None:
    return session.scalar(
        select(RoleCatalog).where(RoleCatalog.id == role_id, RoleCatalog.active.is_(True))
    )


def active_questions(
    session: Session, role_id: uuid.UUID, question_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Question]:
    """Those of ``question_ids`` that are active questions of the role, if the role
    itself is active, by id."""
    rows = session.scalars(
        select(Question)
        .join(RoleCatalog, RoleCatalog.id == Question.role_id)
        .where(
            Question.id.in_(question_ids),
            Question.role_id == role_id,
            Question.active.is_(True),
            RoleCatalog.active.is_(True),
        )
    )
    return {q.id: q for q in rows}


@dataclass(frozen=True)
class NewAssessment:
    client_id: uuid.UUID
    external_id: str
    email: str
    role_id: uuid.UUID
    metadata: dict[str, Any] | None
    #: (question id, answer) in the order given.
    answers: Sequence[tuple[uuid.UUID, Any]]


@dataclass(frozen=True)
class InsertedAssessment:
    id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    #: Each answered question's snapshot id.
    snapshot_ids: dict[uuid.UUID, uuid.UUID]


# Parent and child rows in sibling CTEs: the foreign keys are checked at the end of
# the statement, when every row exists. One round trip for the whole submission.
_INSERT_ASSESSMENT = text(
    "WITH u AS ("
    "  INSERT INTO users (client_id, external_id, email, role)"
    "  VALUES (:client_id, :external_id, :email, 'student')"
    "  ON CONFLICT (client_id, external_id)"
    "  DO UPDATE SET email = excluded.email, updated_at = now()"
    "  RETURNING id),"
    " a AS ("
    "  INSERT INTO assessments (id, client_id, user_id, role_id, status, metadata)"
    "  SELECT :id, :client_id, u.id, :role_id, 'awaiting_async', CAST(:metadata AS jsonb)"
    "  FROM u RETURNING user_id, created_at),"
    " s AS ("
    # A snapshot copies the question row as it is now (rows are never edited).
    "  INSERT INTO assessment_question_snapshots (id, assessment_id, question_id, prompt,"
    "   rubric, question_type, choices, weight, version)"
    "  SELECT x.snapshot_id, :id, q.id, q.prompt, q.rubric, q.question_type, q.choices,"
    "   q.weight, q.version"
    "  FROM unnest(CAST(:snapshot_ids AS uuid[]), CAST(:question_ids AS uuid[]))"
    "   AS x(snapshot_id, question_id) JOIN questions q ON q.id = x.question_id),"
    " r AS ("
    "  INSERT INTO assessment_responses (assessment_id, question_snapshot_id, answer)"
    "  SELECT :id, x.snapshot_id, x.answer"
    "  FROM unnest(CAST(:snapshot_ids AS uuid[]), CAST(:answers AS jsonb[]))"
    "   AS x(snapshot_id, answer))"
    " SELECT user_id, created_at FROM a"
)


def insert_assessment(session: Session, new: NewAssessment) -> InsertedAssessment:
    """Upsert the client's user (by external id; its email follows the latest
    submission), then write an ``awaiting_async`` assessment, a snapshot of each
    answered question and the answers, in one statement.

    Raises ``sqlalchemy.exc.IntegrityError`` when another user of the same client
    already has the email.
    """
    assessment_id = uuid.uuid4()
    snapshot_ids = {question_id: uuid.uuid4() for question_id, _ in new.answers}
    row = session.execute(
        _INSERT_ASSESSMENT,
        {
            "id": assessment_id,
            "client_id": new.client_id,
            "external_id": new.external_id,
            "email": new.email,
            "role_id": new.role_id,
            "metadata": None if new.metadata is None else json.dumps(new.metadata),
            "snapshot_ids": list(snapshot_ids.values()),
            "question_ids": list(snapshot_ids),
            "answers": [json.dumps(answer) for _, answer in new.answers],
        },
    ).one()
    return InsertedAssessment(assessment_id, row.user_id, row.created_at, snapshot_ids)


# -- the pipeline ---------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Where an assessment's pipeline stands, read under a lock on its row."""

    status: str
    client_id: uuid.UUID | None
    #: How many of its jobs are in each (job_type, status).
    jobs: Counter[tuple[str, str]]
    #: Essay snapshots that have no essay score yet.
    unscored_essays: list[uuid.UUID]


def lock_progress(conn: Connection, assessment_id: uuid.UUID) -> Progress | None:
    """Lock the assessment's row and read its progress (None: no such assessment).

    Every job that finishes takes this lock before reading, so of two jobs
    finishing at once the second reads after the first committed, and exactly
    one of them sees the stage complete.
    """
    row = conn.execute(
        select(Assessment.status, Assessment.client_id)
        .where(Assessment.id == assessment_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        return None
    jobs = Counter(
        {
            (job_type, job_status): count
            for job_type, job_status, count in conn.execute(
                select(AsyncJob.job_type, AsyncJob.status, func.count())
                .where(AsyncJob.assessment_id == assessment_id)
                .group_by(AsyncJob.job_type, AsyncJob.status)
            )
        }
    )
    snap = AssessmentQuestionSnapshot
    unscored = conn.execute(
        select(snap.id)
        .outerjoin(
            EssayScore,
            (EssayScore.question_snapshot_id == snap.id)
            & (EssayScore.assessment_id == snap.assessment_id),
        )
        .where(
            snap.assessment_id == assessment_id,
            snap.question_type == "essay",
            EssayScore.id.is_(None),
        )
        .order_by(snap.id)
    ).scalars()
    return Progress(
        status=row.status, client_id=row.client_id, jobs=jobs, unscored_essays=list(unscored)
    )


def stalled_assessments(conn: Connection, older_than_seconds: float, limit: int) -> list[uuid.UUID]:
    """Assessments still ``awaiting_async`` with no job left to run: a job of theirs
    finished without its finish hook (an operator cancelled it, or the rescuer gave
    up on it), so nobody advanced them."""
    return list(
        conn.execute(
            text(
                "SELECT a.id FROM assessments a WHERE a.status = 'awaiting_async'"
                " AND a.updated_at < now() - make_interval(secs => :age)"
                " AND NOT EXISTS (SELECT 1 FROM async_jobs j WHERE j.assessment_id = a.id"
                "   AND j.status IN ('queued', 'running'))"
                " ORDER BY a.updated_at LIMIT :limit"
            ),
            {"age": older_than_seconds, "limit": limit},
        ).scalars()
    )


def finish_assessment(
    conn: Connection,
    assessment_id: uuid.UUID,
    *,
    status: str,
    degraded: bool,
    total_score: Decimal | None,
    skill_scores: dict[str, Any],
) -> bool:
    """awaiting_async → completed | failed, with its result; False when it had left already."""
    result = conn.execute(
        update(Assessment)
        .where(Assessment.id == assessment_id, Assessment.status == "awaiting_async")
        .values(
            status=status,
            degraded=degraded,
            total_score=total_score,
            skill_scores=skill_scores,
            completed_at=func.now(),
            updated_at=func.now(),
        )
    )
    return result.rowcount == 1


# -- reads of the API ------------------------------------------------------------------


@dataclass(frozen=True)
class AssessmentRecord:
    """An assessment and its user, as its submitter sees them."""

    id: uuid.UUID
    client_id: uuid.UUID | None
    status: str
    degraded: bool
    role_id: uuid.UUID | None
    metadata: dict[str, Any] | None
    total_score: Decimal | None
    skill_scores: dict[str, Any] | None
    created_at: datetime
    completed_at: datetime | None
    user_id: uuid.UUID
    external_id: str | None
    email: str


def assessment_record(
    db: Session | Connection, assessment_id: uuid.UUID, *, client_id: uuid.UUID | None = None
) -> AssessmentRecord | None:
    """The assessment and its user; with ``client_id``, only if that client submitted it
    (None otherwise: a 404, whether it does not exist or is someone else's)."""
    a = Assessment
    query = (
        select(
            a.id,
            a.client_id,
            a.status,
            a.degraded,
            a.role_id,
            a.metadata_.label("metadata"),
            a.total_score,
            a.skill_scores,
            a.created_at,
            a.completed_at,
            User.id.label("user_id"),
            User.external_id,
            User.email,
        )
        .join(User, User.id == a.user_id)
        .where(a.id == assessment_id)
    )
    if client_id is not None:
        query = query.where(a.client_id == client_id)
    row = db.execute(query).one_or_none()
    if row is None:
        return None
    return AssessmentRecord(**row._asdict())


@dataclass(frozen=True)
class QuestionResult:
    snapshot_id: uuid.UUID
    question_id: uuid.UUID
    question_type: str
    version: str
    weight: Decimal
    rubric: dict[str, Any]
    #: Points earned (None: not scored yet).
    score: Decimal | None
    explanation: str | None
    rules_applied: dict[str, Any] | None
    #: The essay's grader (``fallback:…`` for the offline scorer); None for rule scores.
    model: str | None
    #: The essay grader's record (criteria, flags); None for rule-scored questions.
    essay_payload: dict[str, Any] | None


def question_results(db: Session | Connection, assessment_id: uuid.UUID) -> list[QuestionResult]:
    """Each question of the assessment with its score, if it has one yet."""
    snap = AssessmentQuestionSnapshot
    rows = db.execute(
        select(
            snap.id,
            snap.question_id,
            snap.question_type,
            snap.version,
            snap.weight,
            snap.rubric,
            func.coalesce(RuleScore.score, EssayScore.score).label("score"),
            RuleScore.explanation,
            RuleScore.rules_applied,
            EssayScore.model,
            EssayScore.response_payload,
        )
        .outerjoin(
            RuleScore,
            (RuleScore.question_snapshot_id == snap.id)
            & (RuleScore.assessment_id == snap.assessment_id),
        )
        .outerjoin(
            EssayScore,
            (EssayScore.question_snapshot_id == snap.id)
            & (EssayScore.assessment_id == snap.assessment_id),
        )
        .where(snap.assessment_id == assessment_id)
        .order_by(snap.question_id)
    )
    return [
        QuestionResult(
            snapshot_id=row.id,
            question_id=row.question_id,
            question_type=row.question_type,
            version=row.version,
            weight=row.weight if row.weight is not None else Decimal(1),
            rubric=row.rubric,
            score=row.score,
            explanation=row.explanation,
            rules_applied=row.rules_applied,
            model=row.model,
            essay_payload=row.response_payload,
        )
        for row in rows
    ]
