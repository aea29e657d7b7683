"""The people assessed, what they were asked, and what they answered."""

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
    ForeignKeyConstraint,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import CITEXT, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gradeflow.db.base import Base, timestamp_now, uuid_pk

USER_ROLES = ("student", "advisor", "admin")
ASSESSMENT_STATUSES = ("in_progress", "awaiting_async", "completed", "failed")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN {USER_ROLES!r}", name="role"),
        UniqueConstraint("client_id", "external_id"),
        # Changed from seed 002's global UNIQUE (email): each upstream app knows its own
        # users, and the same person may be assessed through two apps (migration 0003).
        UniqueConstraint("client_id", "email"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(CITEXT, nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    profile: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="active")
    created_at: Mapped[datetime] = timestamp_now()
    updated_at: Mapped[datetime] = timestamp_now()
    #: Addition: the upstream app that knows this user, and its id for them.
    client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_clients.id"))
    external_id: Mapped[str | None] = mapped_column(String(128))


class Assessment(Base):
    __tablename__ = "assessments"
    __table_args__ = (
        CheckConstraint(f"status IN {ASSESSMENT_STATUSES!r}", name="status"),
        Index("idx_assessments_user", "user_id"),
        Index("idx_assessments_status", "status"),
        Index("idx_assessments_client_created", "client_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    role_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("role_catalog.id"))
    status: Mapped[str] = mapped_column(String(24), nullable=False)
    degraded: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    started_at: Mapped[datetime] = timestamp_now()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    created_at: Mapped[datetime] = timestamp_now()
    updated_at: Mapped[datetime] = timestamp_now()
    #: Addition: the submitting client (tenant isolation) and the computed result.
    client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_clients.id"))
    total_score: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    skill_scores: Mapped[dict[str, Any] | None]


class AssessmentQuestionSnapshot(Base):
    """A question exactly as it was when the assessment was submitted (never edited)."""

    __tablename__ = "assessment_question_snapshots"
    __table_args__ = (
        UniqueConstraint("assessment_id", "question_id"),
        # Addition: lets answers and scores reference (snapshot, assessment) together,
        # so a row can never pair an assessment with another assessment's snapshot.
        UniqueConstraint("id", "assessment_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    assessment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("assessments.id", ondelete="CASCADE")
    )
    question_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    prompt: Mapped[str] = mapped_column(Text, nullable=False)
    rubric: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    question_type: Mapped[str] = mapped_column(String(32), nullable=False)
    choices: Mapped[dict[str, Any] | None]
    weight: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    version: Mapped[str] = mapped_column(String(32), nullable=False)


def same_assessment_snapshot_fk() -> ForeignKeyConstraint:
    """The composite FK that keeps a row's snapshot inside the row's own assessment."""
    return ForeignKeyConstraint(
        ["question_snapshot_id", "assessment_id"],
        ["assessment_question_snapshots.id", "assessment_question_snapshots.assessment_id"],
        name="snapshot_of_same_assessment",
    )


class AssessmentResponse(Base):
    __tablename__ = "assessment_responses"
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
    answer: Mapped[Any] = mapped_column(JSONB, nullable=False)
    submitted_at: Mapped[datetime] = timestamp_now()


class IdempotencyKey(Base):
    """The first answer to an ``Idempotency-Key``, replayed for the same key. Addition."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("idx_idempotency_keys_created", "created_at"),)

    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    response_status: Mapped[int] = mapped_column(nullable=False)
    response_body: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = timestamp_now()
