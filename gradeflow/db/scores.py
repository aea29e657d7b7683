"""Reads and writes of scores: what a scorer needs, and its result as an upsert.

Every write is keyed on ``(assessment_id, question_snapshot_id)``: a scoring
job that runs twice writes once, the later run's values winning.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects.postgresql import insert

from gradeflow.db.jobs import DriverCursor
from gradeflow.db.schema import AssessmentQuestionSnapshot, AssessmentResponse, RuleScore


@dataclass(frozen=True)
class AnsweredQuestion:
    """A snapshot of a question as it was asked, and the answer given to it."""

    assessment_id: uuid.UUID
    snapshot_id: uuid.UUID
    question_id: uuid.UUID
    question_type: str
    prompt: str
    rubric: dict[str, Any]
    #: The question's choices (``[{"id", "text"}]``), or None.
    choices: list[dict[str, Any]] | None
    weight: Decimal
    version: str
    answer: Any


def answered_questions(
    conn: Connection,
    assessment_id: uuid.UUID,
    *,
    question_types: Sequence[str] | None = None,
    snapshot_ids: Sequence[uuid.UUID] | None = None,
) -> list[AnsweredQuestion]:
    """The answered questions of an assessment (of these types / snapshots), in question order."""
    snap = AssessmentQuestionSnapshot.__table__.c
    resp = AssessmentResponse.__table__.c
    query = (
        select(*snap, resp.answer)
        .join_from(
            AssessmentQuestionSnapshot.__table__,
            AssessmentResponse.__table__,
            (resp.question_snapshot_id == snap.id) & (resp.assessment_id == snap.assessment_id),
        )
        .where(snap.assessment_id == assessment_id)
        .order_by(snap.question_id)
    )
    if question_types is not None:
        query = query.where(snap.question_type.in_(question_types))
    if snapshot_ids is not None:
        query = query.where(snap.id.in_(snapshot_ids))
    return [
        AnsweredQuestion(
            assessment_id=assessment_id,
            snapshot_id=row.id,
            question_id=row.question_id,
            question_type=row.question_type,
            prompt=row.prompt,
            rubric=row.rubric,
            choices=row.choices,
            weight=row.weight if row.weight is not None else Decimal(1),
            version=row.version,
            answer=row.answer,
        )
        for row in conn.execute(query)
    ]


_ANSWERED_QUESTION = (
    "SELECT s.id, s.question_id, s.question_type, s.prompt, s.rubric, s.choices, s.weight,"
    " s.version, r.answer"
    " FROM assessment_question_snapshots s JOIN assessment_responses r"
    "   ON r.question_snapshot_id = s.id AND r.assessment_id = s.assessment_id"
    " WHERE s.assessment_id = %(assessment_id)s AND s.id = %(snapshot_id)s"
)


def answered_question(
    cursor: DriverCursor, assessment_id: uuid.UUID, snapshot_id: uuid.UUID
) -> AnsweredQuestion | None:
    """One answered question, on a bare driver cursor: each essay job reads its own."""
    cursor.execute(_ANSWERED_QUESTION, {"assessment_id": assessment_id, "snapshot_id": snapshot_id})
    row = cursor.fetchone()
    if row is None:
        return None
    snapshot, question, kind, prompt, rubric, choices, weight, version, answer = row
    weight = weight if weight is not None else Decimal(1)
    return AnsweredQuestion(
        assessment_id, snapshot, question, kind, prompt, rubric, choices, weight, version, answer
    )


@dataclass(frozen=True)
class NewRuleScore:
    assessment_id: uuid.UUID
    snapshot_id: uuid.UUID
    #: Points earned: the fraction of the question earned times its weight.
    score: Decimal
    explanation: str
    rules_applied: dict[str, Any]


def upsert_rule_scores(conn: Connection, scores: Sequence[NewRuleScore]) -> None:
    if not scores:
        return
    statement = insert(RuleScore).values(
        [
            {
                "assessment_id": s.assessment_id,
                "question_snapshot_id": s.snapshot_id,
                "score": s.score,
                "explanation": s.explanation,
                "rules_applied": s.rules_applied,
            }
            for s in scores
        ]
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["assessment_id", "question_snapshot_id"],
            set_={
                "score": statement.excluded.score,
                "explanation": statement.excluded.explanation,
                "rules_applied": statement.excluded.rules_applied,
            },
        )
    )


@dataclass(frozen=True)
class NewEssayScore:
    assessment_id: uuid.UUID
    snapshot_id: uuid.UUID
    #: Points earned: the fraction of the rubric's maximum times the question's weight.
    score: Decimal
    #: The model (``fallback:…`` for the offline scorer).
    model: str
    prompt_version: str
    latency_ms: int | None
    cost_cents: Decimal | None
    #: Criteria scores, rationales, injection flags, the raw answer, finish reason, request id.
    response_payload: dict[str, Any]


# Built once: every essay job runs it, and building the ORM insert each time cost
# more CPU than PostgreSQL spends on the upsert.
_UPSERT_ESSAY_SCORE = text(
    "INSERT INTO essay_scores (assessment_id, question_snapshot_id, score, model,"
    " prompt_version, latency_ms, cost_cents, response_payload)"
    " VALUES (:assessment_id, :snapshot_id, :score, :model, :prompt_version, :latency_ms,"
    " :cost_cents, CAST(:response_payload AS jsonb))"
    " ON CONFLICT (assessment_id, question_snapshot_id) DO UPDATE SET"
    " score = excluded.score, model = excluded.model,"
    " prompt_version = excluded.prompt_version, latency_ms = excluded.latency_ms,"
    " cost_cents = excluded.cost_cents, response_payload = excluded.response_payload"
)


def upsert_essay_score(conn: Connection, score: NewEssayScore) -> None:
    conn.execute(
        _UPSERT_ESSAY_SCORE,
        {
            "assessment_id": score.assessment_id,
            "snapshot_id": score.snapshot_id,
            "score": score.score,
            "model": score.model,
            "prompt_version": score.prompt_version,
            "latency_ms": score.latency_ms,
            "cost_cents": score.cost_cents,
            "response_payload": json.dumps(score.response_payload),
        },
    )
