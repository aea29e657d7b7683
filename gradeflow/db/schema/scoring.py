"""Scores: by rules (multiple choice, profile) and by an LLM (essays)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gradeflow.db.base import Base, timestamp_now, uuid_pk
from gradeflow.db.schema.assessments import same_assessment_snapshot_fk


class RuleScore(Base):
    __tablename__ = "rule_scores"
    __table_args__ = (
        UniqueConstraint("assessment_id", "question_snapshot_id"),
        same_assessment_snapshot_fk(),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    assessment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("assessments.id", ondelete="CASCADE")
    )
    question_snapshot_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("assessment_question_snapshots.id")
    )
    score: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False)
    explanation: Mapped[str | None] = mapped_column(Text)
    rules_applied: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = timestamp_now()


class EssayScore(Base):
    __tablename__ = "essay_scores"
    __table_args__ = (
        UniqueConstraint("assessment_id", "question_snapshot_id"),
        same_assessment_snapshot_fk(),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    assessment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("assessments.id", ondelete="CASCADE")
    )
    question_snapshot_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("assessment_question_snapshots.id")
    )
    score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    model: Mapped[str] = mapped_column(String(64), nullable=False)
    prompt_version: Mapped[str] = mapped_column(String(32), nullable=False)
    latency_ms: Mapped[int | None]
    cost_cents: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    response_payload: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = timestamp_now()
