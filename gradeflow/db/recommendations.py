"""``recommendations`` and what hangs off them: items, RAG traces, feedback.

The pipeline creates the row ``pending`` when it starts the stage; the
``build_recommendations`` job makes it ``ready`` with its items and traces in one
transaction, or its finish hook makes it ``failed``. Both transitions are guarded
on ``pending``, so a job that runs twice writes once. Writes run in the caller's
transaction and never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.orm import Session

from gradeflow.db.schema import (
    Assessment,
    CredentialCatalog,
    RagTrace,
    Recommendation,
    RecommendationFeedback,
    RecommendationItem,
    RoleCatalog,
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


def save_ready_recommendation(
    conn: Connection, assessment_id: uuid.UUID, built: BuiltRecommendation
) -> uuid.UUID | None:
    """pending → ready, with its traces and items; None when it was not pending."""
    recommendation_id = conn.execute(
        update(Recommendation)
        .where(Recommendation.assessment_id == assessment_id, Recommendation.status == PENDING)
        .values(
            status=READY,
            summary=built.summary,
            degraded=built.degraded,
            metrics=built.metrics,
            generated_at=func.now(),
        )
        .returning(Recommendation.id)
    ).scalar_one_or_none()
    if recommendation_id is None:
        return None
    if built.traces:
        conn.execute(
            insert(RagTrace),
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
            insert(RecommendationItem),
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


def fail_recommendation(conn: Connection, assessment_id: uuid.UUID, reason: str) -> bool:
    """pending → failed, saying why; False when it was not pending."""
    result = conn.execute(
        update(Recommendation)
        .where(Recommendation.assessment_id == assessment_id, Recommendation.status == PENDING)
        .values(status=FAILED, summary=None, metrics={"error": reason}, generated_at=func.now())
    )
    return result.rowcount == 1


# -- what the job reads --------------------------------------------------------------------


@dataclass(frozen=True)
class RecommendationTarget:
    """The pending recommendation of an assessment and the role it measures against."""

    status: str
    role_name: str
    skills_profile: dict[str, float]


def recommendation_target(
    conn: Connection, assessment_id: uuid.UUID
) -> RecommendationTarget | None:
    row = conn.execute(
        select(Recommendation.status, RoleCatalog.name, RoleCatalog.skills_profile)
        .join(Assessment, Assessment.id == Recommendation.assessment_id)
        .join(RoleCatalog, RoleCatalog.id == Assessment.role_id)
        .where(Recommendation.assessment_id == assessment_id)
    ).one_or_none()
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


def credential_cards(
    conn: Connection, credential_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CredentialCard]:
    rows = conn.execute(
        select(
            CredentialCatalog.id,
            CredentialCatalog.title,
            CredentialCatalog.description,
            CredentialCatalog.skills,
            CredentialCatalog.provider,
        ).where(CredentialCatalog.id.in_(list(credential_ids)))
    )
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


def recommendation_record(
    db: Session | Connection, assessment_id: uuid.UUID
) -> RecommendationRecord | None:
    """The assessment's recommendation with its items (by position) and their traces."""
    r = Recommendation
    head = db.execute(
        select(r.id, r.status, r.degraded, r.summary, r.generated_at).where(
            r.assessment_id == assessment_id
        )
    ).one_or_none()
    if head is None:
        return None
    i = RecommendationItem
    items = [
        ItemRecord(
            row.credential_id,
            row.title,
            row.confidence,
            row.rationale,
            row.position,
            list(row.source_trace_ids or []),
        )
        for row in db.execute(
            select(
                i.credential_id, i.title, i.confidence, i.rationale, i.position, i.source_trace_ids
            )
            .where(i.recommendation_id == head.id)
            .order_by(i.position)
        )
    ]
    t = RagTrace
    traces = {
        row.id: TraceRecord(row.id, row.source_uri, row.snippet, row.similarity)
        for row in db.execute(
            select(t.id, t.source_uri, t.snippet, t.similarity).where(
                t.recommendation_id == head.id
            )
        )
    }
    return RecommendationRecord(
        head.id,
        assessment_id,
        head.status,
        head.degraded,
        head.summary,
        head.generated_at,
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
