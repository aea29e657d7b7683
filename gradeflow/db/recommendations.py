"""Recommendations as the API reads them, and the feedback it stores on them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gradeflow.db.schema import (
    Assessment,
    RagTrace,
    Recommendation,
    RecommendationFeedback,
    RecommendationItem,
)


def recommendation_of(session: Session, assessment_id: uuid.UUID) -> Recommendation | None:
    return session.scalar(
        select(Recommendation).where(Recommendation.assessment_id == assessment_id)
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


def items_of(session: Session, recommendation_id: uuid.UUID) -> Sequence[RecommendationItem]:
    return session.scalars(
        select(RecommendationItem)
        .where(RecommendationItem.recommendation_id == recommendation_id)
        .order_by(RecommendationItem.position)
    ).all()


def traces_of(session: Session, recommendation_id: uuid.UUID) -> dict[uuid.UUID, RagTrace]:
    rows = session.scalars(select(RagTrace).where(RagTrace.recommendation_id == recommendation_id))
    return {row.id: row for row in rows}


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
