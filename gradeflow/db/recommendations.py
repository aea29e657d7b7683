"""``recommendations`` and what hangs off them: items, RAG traces, feedback.

The pipeline creates the row ``pending`` when it starts the stage; the
``build_recommendations`` job makes it ``ready`` with its items and traces in one
transaction, or its finish hook makes it ``failed``. Both transitions are guarded
on ``pending``, so a job that runs twice writes once. Writes run in the caller's
transaction and never commit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session

from gradeflow.db.schema import (
    Assessment,
    Recommendation,
    RecommendationFeedback,
    RecommendationItem,
)

PENDING = "pending"
READY = "ready"
FAILED = "failed"

# -- the stage's transitions ---------------------------------------------------------------


# Plain SQL built once: the pipeline runs it for every assessment, and building and
# compiling the ORM insert cost more CPU than PostgreSQL spends on it.
_CREATE_PENDING = text(
    "INSERT INTO recommendations (assessment_id, status) VALUES (:assessment_id, :status)"
    " ON CONFLICT (assessment_id) DO NOTHING"
)


def create_pending_recommendation(conn: Connection, assessment_id: uuid.UUID) -> None:
    """The stage starts: one ``pending`` row per assessment (a second call does nothing)."""
    conn.execute(_CREATE_PENDING, {"assessment_id": assessment_id, "status": PENDING})


@dataclass(frozen=True)
class NewTrace:
    id: uuid.UUID
    source_uri: str
    snippet: str
    similarity: Decimal
    embedding_artifact_id: uuid.UUID | None


@dataclass(frozen=True)
class NewItem:
    credential_id: uuid.UUID
    title: str
    confidence: Decimal
    rationale: str
    source_trace_ids: list[uuid.UUID]
    position: int


@dataclass(frozen=True)
class BuiltRecommendation:
    """Everything the job decided, written at once by :func:`save_ready_recommendation`."""

    summary: str
    degraded: bool
    traces: Sequence[NewTrace]
    items: Sequence[NewItem]
    metrics: dict[str, Any] = field(default_factory=dict)


_MAKE_READY = text(
    "UPDATE recommendations SET status = :ready, summary = :summary, degraded = :degraded,"
    " metrics = CAST(:metrics AS jsonb), generated_at = now()"
    " WHERE assessment_id = :assessment_id AND status = :pending RETURNING id"
)
_INSERT_TRACE = text(
    "INSERT INTO rag_traces (id, recommendation_id, source_uri, snippet, similarity,"
    " embedding_artifact_id) VALUES (:id, :recommendation_id, :source_uri, :snippet,"
    " :similarity, :embedding_artifact_id)"
)
_INSERT_ITEM = text(
    "INSERT INTO recommendation_items (recommendation_id, credential_id, title, confidence,"
    " rationale, source_trace_ids, position) VALUES (:recommendation_id, :credential_id,"
    " :title, :confidence, :rationale, CAST(:source_trace_ids AS uuid[]), :position)"
)


def save_ready_recommendation(
    conn: Connection, assessment_id: uuid.UUID, built: BuiltRecommendation
) -> uuid.UUID | None:
    """pending → ready, with its traces and items; None when it was not pending."""
    recommendation_id: uuid.UUID | None = conn.execute(
        _MAKE_READY,
        {
            "ready": READY,
            "pending": PENDING,
            "assessment_id": assessment_id,
            "summary": built.summary,
            "degraded": built.degraded,
            "metrics": json.dumps(built.metrics),
        },
    ).scalar_one_or_none()
    if recommendation_id is None:
        return None
    if built.traces:
        conn.execute(
            _INSERT_TRACE,
            [
                {
                    "id": t.id,
                    "recommendation_id": recommendation_id,
                    "source_uri": t.source_uri,
                    "snippet": t.snippet,
                    "similarity": t.similarity,
                    "embedding_artifact_id": t.embedding_artifact_id,
                }
                for t in built.traces
            ],
        )
    if built.items:
        conn.execute(
            _INSERT_ITEM,
            [
                {
                    "recommendation_id": recommendation_id,
                    "credential_id": i.credential_id,
                    "title": i.title,
                    "confidence": i.confidence,
                    "rationale": i.rationale,
                    "source_trace_ids": i.source_trace_ids,
                    "position": i.position,
                }
                for i in built.items
            ],
        )
    return recommendation_id


_FAIL = text(
    "UPDATE recommendations SET status = :failed, summary = NULL,"
    " metrics = CAST(:metrics AS jsonb), generated_at = now()"
    " WHERE assessment_id = :assessment_id AND status = :pending"
)


def fail_recommendation(conn: Connection, assessment_id: uuid.UUID, reason: str) -> bool:
    """pending → failed, saying why; False when it was not pending."""
    result = conn.execute(
        _FAIL,
        {
            "failed": FAILED,
            "pending": PENDING,
            "assessment_id": assessment_id,
            "metrics": json.dumps({"error": reason}),
        },
    )
    return result.rowcount == 1


# -- what the job reads --------------------------------------------------------------------


@dataclass(frozen=True)
class RecommendationTarget:
    """The pending recommendation of an assessment and the role it measures against."""

    status: str
    role_name: str
    skills_profile: dict[str, float]


_TARGET = text(
    "SELECT r.status, role.name, role.skills_profile FROM recommendations r"
    " JOIN assessments a ON a.id = r.assessment_id"
    " JOIN role_catalog role ON role.id = a.role_id"
    " WHERE r.assessment_id = :assessment_id"
)


def recommendation_target(
    conn: Connection, assessment_id: uuid.UUID
) -> RecommendationTarget | None:
    row = conn.execute(_TARGET, {"assessment_id": assessment_id}).one_or_none()
    if row is None:
        return None
    profile = {str(k): float(v) for k, v in (row.skills_profile or {}).items()}
    return RecommendationTarget(row.status, row.name, profile)


@dataclass(frozen=True)
class CredentialCard:
    """What a recommendation shows of a credential, and what its trace quotes."""

    id: uuid.UUID
    title: str
    description: str | None
    skills: list[str]
    provider: str | None


_CARDS = text(
    "SELECT id, title, description, skills, provider FROM credential_catalog"
    " WHERE id = ANY(CAST(:ids AS uuid[]))"
)


def credential_cards(
    conn: Connection, credential_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CredentialCard]:
    if not credential_ids:
        return {}
    rows = conn.execute(_CARDS, {"ids": list(credential_ids)})
    return {
        row.id: CredentialCard(
            row.id, row.title, row.description, list(row.skills or []), row.provider
        )
        for row in rows
    }


# -- what readers see ----------------------------------------------------------------------


@dataclass(frozen=True)
class TraceRecord:
    id: uuid.UUID
    source_uri: str
    snippet: str
    similarity: Decimal


@dataclass(frozen=True)
class ItemRecord:
    credential_id: uuid.UUID | None
    title: str
    confidence: Decimal
    rationale: str | None
    position: int
    source_trace_ids: list[uuid.UUID]


@dataclass(frozen=True)
class RecommendationRecord:
    id: uuid.UUID
    assessment_id: uuid.UUID
    status: str
    degraded: bool
    summary: str | None
    generated_at: datetime | None
    items: list[ItemRecord]
    traces: dict[uuid.UUID, TraceRecord]


# One round trip for the head, its items (by position) and its traces: every finished
# assessment reads it, for its webhook events, in the transaction that finishes it.
# Numbers travel as text inside the JSON, so their decimals come back exact.
_RECORD = text(
    "SELECT r.id, r.status, r.degraded, r.summary, r.generated_at,"
    " (SELECT json_agg(json_build_array(i.credential_id, i.title, i.confidence::text,"
    "   i.rationale, i.position, i.source_trace_ids) ORDER BY i.position)"
    "  FROM recommendation_items i WHERE i.recommendation_id = r.id) AS items,"
    " (SELECT json_agg(json_build_array(t.id, t.source_uri, t.snippet, t.similarity::text))"
    "  FROM rag_traces t WHERE t.recommendation_id = r.id) AS traces"
    " FROM recommendations r WHERE r.assessment_id = :assessment_id"
)


def recommendation_record(
    db: Session | Connection, assessment_id: uuid.UUID
) -> RecommendationRecord | None:
    """The assessment's recommendation with its items (by position) and their traces."""
    row = db.execute(_RECORD, {"assessment_id": assessment_id}).one_or_none()
    if row is None:
        return None
    items = [
        ItemRecord(
            uuid.UUID(credential_id) if credential_id else None,
            title,
            Decimal(confidence),
            rationale,
            position,
            [uuid.UUID(t) for t in trace_ids or []],
        )
        for credential_id, title, confidence, rationale, position, trace_ids in row.items or []
    ]
    traces = {
        uuid.UUID(trace_id): TraceRecord(uuid.UUID(trace_id), uri, snippet, Decimal(similarity))
        for trace_id, uri, snippet, similarity in row.traces or []
    }
    return RecommendationRecord(
        row.id,
        assessment_id,
        row.status,
        row.degraded,
        row.summary,
        row.generated_at,
        items,
        traces,
    )


@dataclass(frozen=True)
class OwnedRecommendation:
    recommendation: Recommendation
    user_id: uuid.UUID | None


def own_recommendation(
    session: Session, client_id: uuid.UUID, recommendation_id: uuid.UUID
) -> OwnedRecommendation | None:
    """The recommendation, if it belongs to an assessment ``client_id`` submitted."""
    row = session.execute(
        select(Recommendation, Assessment.user_id)
        .join(Assessment, Assessment.id == Recommendation.assessment_id)
        .where(Recommendation.id == recommendation_id, Assessment.client_id == client_id)
    ).one_or_none()
    return None if row is None else OwnedRecommendation(row[0], row[1])


def insert_feedback(
    session: Session,
    *,
    recommendation_id: uuid.UUID,
    user_id: uuid.UUID | None,
    submitted_by_role: str,
    relevance_score: int,
    acceptance_status: str | None,
    comments: str | None,
) -> RecommendationFeedback:
    feedback = RecommendationFeedback(
        recommendation_id=recommendation_id,
        submitted_by=user_id,
        submitted_by_role=submitted_by_role,
        relevance_score=relevance_score,
        acceptance_status=acceptance_status,
        comments=comments,
    )
    session.add(feedback)
    session.flush()
    return feedback


# -- the feedback report -------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialFeedback:
    """Feedback on one credential across every recommendation that offered it."""

    credential_id: uuid.UUID
    title: str
    #: Times it was recommended (items), and feedback rows on those recommendations.
    recommended: int
    feedback: int
    mean_relevance: float | None
    accepted: int
    rejected: int

    @property
    def acceptance_rate(self) -> float | None:
        decided = self.accepted + self.rejected
        return self.accepted / decided if decided else None


def feedback_by_credential(conn: Connection, limit: int = 100) -> list[CredentialFeedback]:
    """Mean relevance and acceptance per recommended credential, most recommended first.

    Feedback is given on a whole recommendation, so it counts for each credential
    the recommendation offered.
    """
    i, f = RecommendationItem, RecommendationFeedback
    rows = conn.execute(
        select(
            i.credential_id,
            func.min(i.title).label("title"),
            func.count(func.distinct(i.id)).label("recommended"),
            func.count(f.id).label("feedback"),
            func.avg(f.relevance_score).label("mean_relevance"),
            func.count(f.id).filter(f.acceptance_status == "accepted").label("accepted"),
            func.count(f.id).filter(f.acceptance_status == "rejected").label("rejected"),
        )
        .outerjoin(f, f.recommendation_id == i.recommendation_id)
        .where(i.credential_id.is_not(None))
        .group_by(i.credential_id)
        .order_by(func.count(func.distinct(i.id)).desc(), func.min(i.title))
        .limit(limit)
    )
    return [
        CredentialFeedback(
            row.credential_id,
            row.title,
            row.recommended,
            row.feedback,
            float(row.mean_relevance) if row.mean_relevance is not None else None,
            row.accepted,
            row.rejected,
        )
        for row in rows
    ]
