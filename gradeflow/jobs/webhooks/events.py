"""Emitting events: one ``webhook_events`` row per subscribed endpoint, and the
``deliver_webhook`` jobs the caller inserts in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from gradeflow.db.webhooks import insert_events, reopen_events, subscribed_endpoints
from gradeflow.jobs.registry import NewJob

DELIVER_WEBHOOK = "deliver_webhook"
#: The events upstream apps may subscribe to.
EVENT_TYPES = ("assessment.completed", "assessment.failed", "recommendation.ready")


def emit_event(
    conn: Connection,
    client_id: uuid.UUID,
    event_type: str,
    data: dict[str, Any] | Callable[[], dict[str, Any]],
    *,
    assessment_id: uuid.UUID | None = None,
) -> list[NewJob]:
    """Record ``event_type`` for every enabled endpoint of ``client_id`` that subscribed
    to it, in the caller's transaction; return the delivery jobs to insert with it.

    The body (``type``, ``timestamp``, ``data``) is fixed here, so every attempt
    sends the same bytes under the same ``webhook-id``. ``data`` may be a function
    that builds it: it is called only when some endpoint subscribed, so a client
    without endpoints never pays for the reads behind a view. ``assessment_id``
    links the events to the assessment they are about (it must exist).
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    endpoints = subscribed_endpoints(conn, client_id, event_type)
    if not endpoints:
        return []
    body = data() if callable(data) else data
    payload = {"type": event_type, "timestamp": datetime.now(UTC).isoformat(), "data": body}
    event_ids = insert_events(conn, endpoints, event_type, payload, assessment_id)
    return [
        delivery_job(event_id, endpoint_id, client_id, "scheduled", assessment_id)
        for event_id, endpoint_id in zip(event_ids, endpoints, strict=True)
    ]


def delivery_job(
    event_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    client_id: uuid.UUID,
    trigger: str,
    assessment_id: uuid.UUID | None = None,
) -> NewJob:
    """``endpoint_id`` rides in the payload: the per-endpoint in-flight count reads it."""
    return NewJob(
        DELIVER_WEBHOOK,
        payload={"event_id": str(event_id), "endpoint_id": str(endpoint_id), "trigger": trigger},
        client_id=client_id,
        assessment_id=assessment_id,
    )


def redeliveries(
    conn: Connection, events: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]
) -> list[NewJob]:
    """Manual redelivery of ``(event_id, endpoint_id, client_id)`` triples: reopen the
    events that are not already pending and return one job each."""
    reopened = set(reopen_events(conn, [event_id for event_id, _, _ in events]))
    return [
        delivery_job(event_id, endpoint_id, client_id, "manual")
        for event_id, endpoint_id, client_id in events
        if event_id in reopened
    ]
