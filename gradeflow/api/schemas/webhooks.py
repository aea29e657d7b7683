"""Requests and answers of the webhook endpoints and the delivery log."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from gradeflow.db.webhooks import AttemptRecord, EndpointRecord, EventRecord
from gradeflow.jobs.rubrics import StrictModel

EventType = Literal["assessment.completed", "assessment.failed", "recommendation.ready"]
EventStatus = Literal["pending", "delivered", "failed"]


class EndpointIn(StrictModel):
    url: Annotated[str, StringConstraints(min_length=1, max_length=2000)] = Field(
        description="https (http only when GRADEFLOW_WEBHOOK_ALLOW_HTTP is on); its host"
        " must resolve to public addresses unless private targets are allowed."
    )
    event_types: list[EventType] = Field(min_length=1, max_length=3)


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        description="During a rotation, when the old secret stops signing."
    )

    @classmethod
    def from_record(cls, record: EndpointRecord) -> EndpointOut:
        return cls(
            id=record.id,
            url=record.url,
            event_types=record.event_types,
            enabled=record.enabled,
            disabled_reason=record.disabled_reason,
            failing_since=record.failing_since,
            created_at=record.created_at,
            previous_secret_expires_at=record.previous_secret_expires_at,
        )


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="The whsec_… signing secret; shown only in this answer.")


class EndpointList(BaseModel):
    items: list[EndpointOut]


#: RFC 3339 (the spec's ``format: date-time``): a date, a time and an offset. Pydantic
#: alone would also take a Unix timestamp ("123"), a bare date or a time without an offset.
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class RecoverQuery(StrictModel):
    since: datetime = Field(description="Redeliver every failed event created at or after this.")

    @field_validator("since", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        if isinstance(value, str) and not RFC3339.fullmatch(value):
            raise ValueError(
                "must be an RFC 3339 date-time with an offset, like 2026-01-01T00:00:00Z"
            )
        return value


class RecoverOut(BaseModel):
    redelivered: int
    enabled: bool = Field(description="Whether this call re-enabled a disabled endpoint.")


class AttemptOut(BaseModel):
    id: uuid.UUID
    trigger: str
    response_code: int | None
    latency_ms: int | None
    error: str | None
    response_body: str | None = Field(description="The first 4 KB of the answer.")
    created_at: datetime

    @classmethod
    def from_record(cls, record: AttemptRecord) -> AttemptOut:
        return cls(**record.__dict__)


class EventOut(BaseModel):
    id: uuid.UUID
    webhook_id: str = Field(description="The webhook-id header of every attempt.")
    endpoint_id: uuid.UUID | None
    event_type: str
    status: str
    attempts: int
    response_code: int | None
    last_attempt: datetime | None
    created_at: datetime
    payload: dict[str, Any]
    attempt_log: list[AttemptOut]

    @classmethod
    def from_record(cls, record: EventRecord, webhook_id: str) -> EventOut:
        return cls(
            id=record.id,
            webhook_id=webhook_id,
            endpoint_id=record.endpoint_id,
            event_type=record.event_type,
            status=record.status,
            attempts=record.attempts,
            response_code=record.response_code,
            last_attempt=record.last_attempt,
            created_at=record.created_at,
            payload=record.payload,
            attempt_log=[AttemptOut.from_record(a) for a in record.attempt_log],
        )


class EventQuery(StrictModel):
    status: EventStatus | None = None
    endpoint_id: uuid.UUID | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class EventList(BaseModel):
    items: list[EventOut]


class RedeliverOut(BaseModel):
    event_id: uuid.UUID
    queued: bool = Field(description="False when a delivery of the event is already under way.")
