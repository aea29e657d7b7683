"""Webhook endpoints, the events due to them, and every delivery attempt."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from gradeflow.db.base import Base, timestamp_now, uuid_pk


class WebhookEndpoint(Base):
    """Where a client wants its events delivered. Addition to seed 002."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("idx_webhook_endpoints_client", "client_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"), nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    #: The ``whsec_…`` signing secret (kept: the signature needs it; never returned again).
    secret: Mapped[str] = mapped_column(Text, nullable=False)
    #: During a rotation, the old secret still signs until it expires.
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    #: Start of the current run of failed deliveries (NULL while healthy).
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = timestamp_now()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


#: An event's delivery states: ``pending`` (an attempt is due or scheduled),
#: ``delivered`` (a 2xx came back), ``failed`` (attempts used up, or the endpoint
#: is disabled or gone; a redeliver or recover makes it ``pending`` again).
WEBHOOK_EVENT_STATUSES = ("pending", "delivered", "failed")
#: What started an attempt: the retry schedule, or an operator's redeliver/recover.
WEBHOOK_ATTEMPT_TRIGGERS = ("scheduled", "manual")


class WebhookEvent(Base):
    __tablename__ = "webhook_events"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        Index("idx_webhook_events_endpoint_status", "endpoint_id", "status"),
        Index("idx_webhook_events_assessment", "assessment_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    assessment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("assessments.id"))
    event_type: Mapped[str] = mapped_column(String(32), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False)
    response_code: Mapped[int | None] = mapped_column(Integer)
    last_attempt: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    created_at: Mapped[datetime] = timestamp_now()
    #: Addition: the endpoint this event goes to (one event row per endpoint).
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("webhook_endpoints.id"))


class WebhookAttempt(Base):
    """One HTTP call for one event: what was sent back, how long it took. Addition."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        CheckConstraint("trigger IN ('scheduled', 'manual')", name="trigger"),
        Index("idx_webhook_attempts_event", "event_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="CASCADE"), nullable=False
    )
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)
    response_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = timestamp_now()
