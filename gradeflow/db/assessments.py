"""Assessments: the intake's one write, and the pipeline's reads and guarded transitions.

Intake reads and writes run on a bare driver cursor inside the API's transaction
and never commit (:func:`insert_assessment` runs the same statement in an ORM
session, for tests and benchmarks). Pipeline functions take a Core connection
inside the transaction that finishes a job.
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

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from gradeflow.db.jobs import DriverCursor, JobToInsert, Message, capped_outstanding

# -- intake --------------------------------------------------------------------------


@dataclass(frozen=True)
class AskedQuestion:
    """A question as intake checks an answer against it (its row is never edited)."""

    id: uuid.UUID
    question_type: str
    rubric: dict[str, Any]
    choices: list[dict[str, Any]] | None
    weight: Decimal
    version: str


_ACTIVE_QUESTIONS = (
    "SELECT q.id, q.question_type, q.rubric, q.choices, q.weight, q.version"
    " FROM questions q JOIN role_catalog r ON r.id = q.role_id"
    " WHERE q.id = ANY(%(ids)s) AND q.role_id = %(role_id)s AND q.active AND r.active"
)


def active_questions(
    cursor: DriverCursor, role_id: uuid.UUID, question_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, AskedQuestion]:
    """Those of ``question_ids`` that are active questions of the role, if the role
    itself is active, by id."""
    cursor.execute(_ACTIVE_QUESTIONS, {"ids": list(question_ids), "role_id": role_id})
    return {row[0]: AskedQuestion(*row) for row in cursor.fetchall()}


def role_is_active(cursor: DriverCursor, role_id: uuid.UUID) -> bool:
    cursor.execute("SELECT 1 FROM role_catalog WHERE id = %(id)s AND active", {"id": role_id})
    return cursor.fetchone() is not None


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
class PlannedIds:
    """The ids a new assessment is written under, drawn before the write so that
    its jobs (which name them) go in the same statement."""

    assessment_id: uuid.UUID
    #: Each answered question's snapshot id.
    snapshot_ids: dict[uuid.UUID, uuid.UUID]


def plan_ids(new: NewAssessment) -> PlannedIds:
    return PlannedIds(uuid.uuid4(), {question_id: uuid.uuid4() for question_id, _ in new.answers})


@dataclass(frozen=True)
class InsertedAssessment:
    id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    #: Each answered question's snapshot id.
    snapshot_ids: dict[uuid.UUID, uuid.UUID]


@dataclass(frozen=True)
class Submitted:
    """What the intake's statement wrote, and the messages to send after commit."""

    assessment: InsertedAssessment
    messages: list[Message]
    #: Queues on which a job meant to be sent at once was left to the dispatcher:
    #: the client's window there is full.
    full_queues: set[str]


class NotWritten(Exception):
    """The submission was not written: a question it answers or its role is no longer
    active, or its client's key was revoked (since intake last read them)."""


# Parent and child rows in sibling CTEs: the foreign keys are checked at the end of
# the statement, when every row exists. One round trip for the whole submission,
# its jobs included: each job gets a message at once while its queue's window has
# room for this client (what ``jobs.enqueue.insert_new_jobs`` decides; the count is
# the same capped one), else the dispatcher sends it. Every CTE sees the table as it
# was before the statement, so the count never includes the jobs being inserted.
_INSERT_SUBMISSION = (
    # Nothing is written unless every answered question is still an active question
    # of the role, itself still active, and the client's key is not revoked (intake
    # checked them earlier, maybe much earlier): each insert below hangs on the user's.
    "WITH still_active AS ("
    "  SELECT count(*) = cardinality(CAST(%(question_ids)s AS uuid[]))"
    "   AND EXISTS (SELECT 1 FROM api_clients c"
    "     WHERE c.id = %(client_id)s AND c.revoked_at IS NULL) AS ok"
    "  FROM questions q JOIN role_catalog r ON r.id = q.role_id"
    "  WHERE q.id = ANY(CAST(%(question_ids)s AS uuid[])) AND q.role_id = %(role_id)s"
    "   AND q.active AND r.active),"
    " u AS ("
    "  INSERT INTO users (client_id, external_id, email, role)"
    "  SELECT %(client_id)s, %(external_id)s, %(email)s, 'student'"
    "  FROM still_active WHERE ok"
    "  ON CONFLICT (client_id, external_id)"
    "  DO UPDATE SET email = excluded.email, updated_at = now()"
    "  RETURNING id),"
    " a AS ("
    "  INSERT INTO assessments (id, client_id, user_id, role_id, status, metadata)"
    "  SELECT %(id)s, %(client_id)s, u.id, %(role_id)s, 'awaiting_async',"
    "   CAST(%(metadata)s AS jsonb)"
    "  FROM u RETURNING user_id, created_at),"
    " s AS ("
    # A snapshot copies the question row as it is now (rows are never edited).
    "  INSERT INTO assessment_question_snapshots (id, assessment_id, question_id, prompt,"
    "   rubric, question_type, choices, weight, version)"
    "  SELECT x.snapshot_id, %(id)s, q.id, q.prompt, q.rubric, q.question_type, q.choices,"
    "   q.weight, q.version"
    "  FROM unnest(CAST(%(snapshot_ids)s AS uuid[]), CAST(%(question_ids)s AS uuid[]))"
    "   AS x(snapshot_id, question_id) JOIN questions q ON q.id = x.question_id"
    "  CROSS JOIN a),"
    " r AS ("
    "  INSERT INTO assessment_responses (assessment_id, question_snapshot_id, answer)"
    "  SELECT %(id)s, x.snapshot_id, x.answer"
    "  FROM unnest(CAST(%(snapshot_ids)s AS uuid[]), CAST(%(answers)s AS jsonb[]))"
    "   AS x(snapshot_id, answer) CROSS JOIN a),"
    " new_jobs AS ("
    "  SELECT * FROM jsonb_to_recordset(CAST(%(jobs)s AS jsonb)) AS x(job_type text,"
    "   queue_name text, payload jsonb, dedup_key text, max_attempts int, send_now boolean,"
    "   place int)),"
    # MATERIALIZED: one count per queue, not one per job; only queues with a job to
    # send now are counted.
    " room AS MATERIALIZED ("
    "  SELECT q.queue_name, %(window)s - "
    + capped_outstanding("q.queue_name", "client_id = %(client_id)s", "%(window)s")
    + " AS room FROM (SELECT DISTINCT queue_name FROM new_jobs WHERE send_now) AS q),"
    " j AS ("
    "  INSERT INTO async_jobs (job_type, queue_name, status, payload, assessment_id,"
    "   client_id, dedup_key, max_attempts, next_run_at, sent_at)"
    "  SELECT n.job_type, n.queue_name, 'queued', n.payload, %(id)s, %(client_id)s,"
    "   n.dedup_key, n.max_attempts, now(),"
    "   CASE WHEN n.send_now AND n.place <= room.room THEN now() END"
    "  FROM new_jobs n LEFT JOIN room USING (queue_name) CROSS JOIN a"
    "  ON CONFLICT (job_type, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING"
    "  RETURNING id, job_type, queue_name, sent_at IS NOT NULL AS sent)"
    " SELECT a.user_id, a.created_at, j.id, j.job_type, j.queue_name, j.sent"
    " FROM a LEFT JOIN j ON true"
)


def insert_submission(
    cursor: DriverCursor,
    new: NewAssessment,
    ids: PlannedIds,
    jobs: Sequence[JobToInsert],
    window: int,
) -> Submitted:
    """Upsert the client's user (by external id; its email follows the latest
    submission), then write an ``awaiting_async`` assessment, a snapshot of each
    answered question, the answers and ``jobs``, in one statement.

    ``jobs`` (all of ``new.client_id``, naming ``ids``) with ``send_now`` get a
    message at once while fewer than ``window`` of the client's are in flight on
    their queue. Raises ``psycopg.IntegrityError`` when another user of the same
    client already has the email, and :class:`NotWritten` (having written
    nothing) when an answered question or the role is no longer active, or the
    client's key was revoked.
    """
    cursor.execute(_INSERT_SUBMISSION, _submission_params(new, ids, jobs, window))
    return _submitted(ids, jobs, cursor.fetchall())


def insert_assessment(session: Session, new: NewAssessment) -> InsertedAssessment:
    """:func:`insert_submission` without jobs, in the caller's ORM session (tests and
    benchmarks). Raises ``sqlalchemy.exc.IntegrityError`` on a taken email."""
    ids = plan_ids(new)
    result = session.connection().exec_driver_sql(
        _INSERT_SUBMISSION, _submission_params(new, ids, (), 0)
    )
    return _submitted(ids, (), [tuple(row) for row in result]).assessment


def _submission_params(
    new: NewAssessment, ids: PlannedIds, jobs: Sequence[JobToInsert], window: int
) -> dict[str, Any]:
    return {
        "id": ids.assessment_id,
        "client_id": new.client_id,
        "external_id": new.external_id,
        "email": new.email,
        "role_id": new.role_id,
        "metadata": None if new.metadata is None else json.dumps(new.metadata),
        "snapshot_ids": list(ids.snapshot_ids.values()),
        "question_ids": list(ids.snapshot_ids),
        "answers": [json.dumps(answer) for _, answer in new.answers],
        "jobs": json.dumps(_job_records(jobs)),
        "window": window,
    }


def _job_records(jobs: Sequence[JobToInsert]) -> list[dict[str, Any]]:
    """The jobs as the statement reads them, each with its place (from 1) among the
    jobs of its queue: the window's room is spent in the order given."""
    taken: Counter[str] = Counter()
    records = []
    for job in jobs:
        taken[job.queue_name] += 1
        records.append(
            {
                "job_type": job.job_type,
                "queue_name": job.queue_name,
                "payload": job.payload,
                "dedup_key": job.dedup_key,
                "max_attempts": job.max_attempts,
                "send_now": job.send_now,
                "place": taken[job.queue_name],
            }
        )
    return records


def _submitted(
    ids: PlannedIds, jobs: Sequence[JobToInsert], rows: Sequence[tuple[Any, ...]]
) -> Submitted:
    if not rows:
        raise NotWritten()
    user_id, created_at = rows[0][0], rows[0][1]
    inserted_jobs = [(Message(row[2], row[3], row[4]), row[5]) for row in rows if row[2]]
    to_send_now = {job.queue_name for job in jobs if job.send_now}
    return Submitted(
        InsertedAssessment(ids.assessment_id, user_id, created_at, ids.snapshot_ids),
        messages=[message for message, sent in inserted_jobs if sent],
        full_queues={m.queue_name for m, sent in inserted_jobs if not sent} & to_send_now,
    )


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


# The pipeline's statements are plain SQL built once: every job that finishes runs
# them, and SQLAlchemy spends more CPU building, compiling and mapping the results
# of ORM-attribute selects than PostgreSQL spends answering them.
_LOCK_ASSESSMENT = text(
    # NO KEY UPDATE, not UPDATE: finishers still queue behind one another, but a
    # transaction that wrote a row referencing the assessment (an essay score, in the
    # transaction completing its job; the foreign key takes KEY SHARE) is not blocked.
    "SELECT status, client_id FROM assessments WHERE id = :id FOR NO KEY UPDATE"
)
_PROGRESS = text(
    "SELECT (SELECT COALESCE(json_agg(json_build_array(job_type, status, n)), '[]')"
    "   FROM (SELECT job_type, status, count(*) AS n FROM async_jobs"
    "     WHERE assessment_id = :id GROUP BY job_type, status) AS counted),"
    " ARRAY(SELECT s.id FROM assessment_question_snapshots s"
    "   LEFT JOIN essay_scores e"
    "     ON e.question_snapshot_id = s.id AND e.assessment_id = s.assessment_id"
    "   WHERE s.assessment_id = :id AND s.question_type = 'essay' AND e.id IS NULL"
    "   ORDER BY s.id)"
)


def lock_progress(conn: Connection, assessment_id: uuid.UUID) -> Progress | None:
    """Lock the assessment's row and read its progress (None: no such assessment).

    Every job that finishes takes this lock before reading, so of two jobs
    finishing at once the second reads after the first committed, and exactly
    one of them sees the stage complete. (The read is a statement of its own,
    after the lock: its snapshot is taken once the lock is held.)
    """
    row = conn.execute(_LOCK_ASSESSMENT, {"id": assessment_id}).one_or_none()
    if row is None:
        return None
    counts, unscored = conn.execute(_PROGRESS, {"id": assessment_id}).one()
    jobs = Counter({(job_type, status): n for job_type, status, n in counts})
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


_FINISH_ASSESSMENT = text(
    "UPDATE assessments SET status = :status, degraded = :degraded,"
    " total_score = :total_score, skill_scores = CAST(:skill_scores AS jsonb),"
    " completed_at = now(), updated_at = now()"
    " WHERE id = :id AND status = 'awaiting_async'"
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
        _FINISH_ASSESSMENT,
        {
            "id": assessment_id,
            "status": status,
            "degraded": degraded,
            "total_score": total_score,
            "skill_scores": json.dumps(skill_scores),
        },
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


_ASSESSMENT_RECORD = (
    "SELECT a.id, a.client_id, a.status, a.degraded, a.role_id, a.metadata, a.total_score,"
    " a.skill_scores, a.created_at, a.completed_at, u.id AS user_id, u.external_id, u.email"
    " FROM assessments a JOIN users u ON u.id = a.user_id WHERE a.id = :id"
)
_ANY_CLIENTS = text(_ASSESSMENT_RECORD)
_ONE_CLIENTS = text(_ASSESSMENT_RECORD + " AND a.client_id = :client_id")


def assessment_record(
    db: Session | Connection, assessment_id: uuid.UUID, *, client_id: uuid.UUID | None = None
) -> AssessmentRecord | None:
    """The assessment and its user; with ``client_id``, only if that client submitted it
    (None otherwise: a 404, whether it does not exist or is someone else's)."""
    if client_id is None:
        row = db.execute(_ANY_CLIENTS, {"id": assessment_id}).one_or_none()
    else:
        row = db.execute(_ONE_CLIENTS, {"id": assessment_id, "client_id": client_id}).one_or_none()
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


_QUESTION_RESULTS = text(
    "SELECT s.id, s.question_id, s.question_type, s.version, s.weight, s.rubric,"
    " COALESCE(r.score, e.score) AS score, r.explanation, r.rules_applied, e.model,"
    " e.response_payload"
    " FROM assessment_question_snapshots s"
    " LEFT JOIN rule_scores r"
    "   ON r.question_snapshot_id = s.id AND r.assessment_id = s.assessment_id"
    " LEFT JOIN essay_scores e"
    "   ON e.question_snapshot_id = s.id AND e.assessment_id = s.assessment_id"
    " WHERE s.assessment_id = :id ORDER BY s.question_id"
)


def question_results(db: Session | Connection, assessment_id: uuid.UUID) -> list[QuestionResult]:
    """Each question of the assessment with its score, if it has one yet."""
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
        for row in db.execute(_QUESTION_RESULTS, {"id": assessment_id})
    ]
