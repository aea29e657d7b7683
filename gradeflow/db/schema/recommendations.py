"""Credential recommendations, the retrieval traces behind them, and feedback on them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from gradeflow.db.base import Base, timestamp_now, uuid_pk

RECOMMENDATION_STATUSES = ("pending", "ready", "failed")


class Recommendation(Base):
    __tablename__ = "recommendations"
    __table_args__ = (
        CheckConstraint(f"status IN {RECOMMENDATION_STATUSES!r}", name="status"),
        Index("idx_recommendations_status", "status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    assessment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("assessments.id"), unique=True
    )
    summary: Mapped[str | None] = mapped_column(Text)
    degraded: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    status: Mapped[str] = mapped_column(String(24), nullable=False)
    generated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    metrics: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = timestamp_now()


class RecommendationItem(Base):
    __tablename__ = "recommendation_items"
    __table_args__ = (
        UniqueConstraint("recommendation_id", "credential_id"),
        Index("idx_recommendation_items_position", "recommendation_id", "position"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    recommendation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE")
    )
    credential_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("credential_catalog.id"))
    title: Mapped[str] = mapped_column(Text, nullable=False)
    confidence: Mapped[Decimal] = mapped_column(Numeric(5, 3), nullable=False)
    rationale: Mapped[str | None] = mapped_column(Text)
    source_trace_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    position: Mapped[int] = mapped_column(Integer, nullable=False)


class RagTrace(Base):
    __tablename__ = "rag_traces"

    id: Mapped[uuid.UUID] = uuid_pk()
    recommendation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE")
    )
    source_uri: Mapped[str] = mapped_column(Text, nullable=False)
    snippet: Mapped[str] = mapped_column(Text, nullable=False)
    similarity: Mapped[Decimal] = mapped_column(Numeric(5, 3), nullable=False)
    embedding_artifact_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("embedding_artifacts.id")
    )
    created_at: Mapped[datetime] = timestamp_now()


class RecommendationFeedback(Base):
    __tablename__ = "recommendation_feedback"
    __table_args__ = (
        CheckConstraint("relevance_score BETWEEN 1 AND 5", name="relevance_score"),
        Index("idx_recommendation_feedback_reco", "recommendation_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    recommendation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE")
    )
    submitted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    submitted_by_role: Mapped[str] = mapped_column(String(16), nullable=False)
    relevance_score: Mapped[int | None] = mapped_column(Integer)
    acceptance_status: Mapped[str | None] = mapped_column(String(16))
    comments: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime] = timestamp_now()
