"""Every read and write of webhook endpoints, events and attempts.

State-changing statements are guarded (``WHERE … RETURNING``); zero rows is a
deliberate no-op the caller sees (an endpoint already disabled, an event
already delivered), never a silent overwrite.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from gradeflow.db.audit import AuditEntry, record_audit

# -- endpoints ---------------------------------------------------------------------

_ENDPOINT_COLUMNS = (
    "id, client_id, url, event_types, enabled, disabled_reason, failing_since, created_at,"
    " previous_secret_expires_at"
)


@dataclass(frozen=True)
class EndpointRecord:
    """An endpoint as its owner sees it (never its secrets)."""

    id: uuid.UUID
    client_id: uuid.UUID
    url: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    previous_secret_expires_at: datetime | None


def insert_endpoint(
    conn: Connection, client_id: uuid.UUID, url: str, event_types: Sequence[str], secret: str
) -> EndpointRecord:
    row = conn.execute(
        text(
            "INSERT INTO webhook_endpoints (client_id, url, secret, event_types)"
            " VALUES (:client, :url, :secret, :types)"
            f" RETURNING {_ENDPOINT_COLUMNS}"
        ),
        {"client": client_id, "url": url, "secret": secret, "types": list(event_types)},
    ).one()
    return EndpointRecord(*row)


def _owner_filter(client_id: uuid.UUID | None) -> str:
    """``None`` means any owner (operators)."""
    return "" if client_id is None else " AND client_id = :client"


def list_endpoints(conn: Connection, client_id: uuid.UUID) -> list[EndpointRecord]:
    rows = conn.execute(
        text(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"
            " WHERE client_id = :client AND deleted_at IS NULL ORDER BY created_at, id"
        ),
        {"client": client_id},
    )
    return [EndpointRecord(*row) for row in rows]


def find_endpoint(
    conn: Connection, endpoint_id: uuid.UUID, client_id: uuid.UUID | None
) -> EndpointRecord | None:
    """The live endpoint ``endpoint_id`` of ``client_id`` (of anyone when ``None``)."""
    row = conn.execute(
        text(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"
            f" WHERE id = :id AND deleted_at IS NULL{_owner_filter(client_id)}"
        ),
        {"id": endpoint_id, "client": client_id},
    ).one_or_none()
    return EndpointRecord(*row) if row else None


def delete_endpoint(conn: Connection, endpoint_id: uuid.UUID, client_id: uuid.UUID) -> bool:
    """Soft delete: events keep their endpoint; deliveries to it stop."""
    result = conn.execute(
        text(
            "UPDATE webhook_endpoints SET deleted_at = now(), enabled = false,"
            " disabled_reason = 'deleted', secret = '', previous_secret = NULL"
            " WHERE id = :id AND client_id = :client AND deleted_at IS NULL"
        ),
        {"id": endpoint_id, "client": client_id},
    )
    return result.rowcount == 1


def rotate_secret(
    conn: Connection,
    endpoint_id: uuid.UUID,
    client_id: uuid.UUID,
    new_secret: str,
    overlap_seconds: float,
) -> EndpointRecord | None:
    """Sign with ``new_secret`` from now on; the current secret keeps signing too until
    the overlap ends."""
    row = conn.execute(
        text(
            "UPDATE webhook_endpoints SET previous_secret = secret, secret = :secret,"
            " previous_secret_expires_at = now() + make_interval(secs => :overlap)"
            " WHERE id = :id AND client_id = :client AND deleted_at IS NULL"
            f" RETURNING {_ENDPOINT_COLUMNS}"
        ),
        {"id": endpoint_id, "client": client_id, "secret": new_secret, "overlap": overlap_seconds},
    ).one_or_none()
    return EndpointRecord(*row) if row else None


def subscribed_endpoints(
    conn: Connection, client_id: uuid.UUID, event_type: str
) -> list[uuid.UUID]:
    """Live, enabled endpoints of ``client_id`` that asked for ``event_type``."""
    rows = conn.execute(
        text(
            "SELECT id FROM webhook_endpoints WHERE client_id = :client AND enabled"
            " AND deleted_at IS NULL AND :type = ANY(event_types) ORDER BY created_at, id"
        ),
        {"client": client_id, "type": event_type},
    )
    return [row[0] for row in rows]


def enable_endpoint(conn: Connection, endpoint_id: uuid.UUID) -> bool:
    """disabled → enabled, its failure run forgotten; ``False`` if it was not disabled."""
    result = conn.execute(
        text(
            "UPDATE webhook_endpoints SET enabled = true, disabled_reason = NULL,"
            " failing_since = NULL WHERE id = :id AND NOT enabled AND deleted_at IS NULL"
        ),
        {"id": endpoint_id},
    )
    return result.rowcount == 1


def disable_endpoint(conn: Connection, endpoint_id: uuid.UUID, reason: str) -> bool:
    """enabled → disabled; ``False`` if it already was (or is deleted)."""
    result = conn.execute(
        text(
            "UPDATE webhook_endpoints SET enabled = false, disabled_reason = :reason"
            " WHERE id = :id AND enabled AND deleted_at IS NULL"
        ),
        {"id": endpoint_id, "reason": reason},
    )
    return result.rowcount == 1


# -- events ------------------------------------------------------------------------


def insert_events(
    conn: Connection,
    endpoint_ids: Sequence[uuid.UUID],
    event_type: str,
    payload: dict[str, Any],
    assessment_id: uuid.UUID | None,
) -> list[uuid.UUID]:
    """One ``pending`` event per endpoint, all with the same payload."""
    if not endpoint_ids:
        return []
    rows = conn.execute(
        text(
            "INSERT INTO webhook_events (endpoint_id, assessment_id, event_type, payload, status)"
            " SELECT e, :assessment, :type, CAST(:payload AS jsonb), 'pending'"
            " FROM unnest(CAST(:endpoints AS uuid[])) AS e RETURNING id"
        ),
        {
            "endpoints": list(endpoint_ids),
            "assessment": assessment_id,
            "type": event_type,
            "payload": json.dumps(payload),
        },
    )
    return [row[0] for row in rows]


@dataclass(frozen=True)
class AttemptRecord:
    id: uuid.UUID
    trigger: str
    response_code: int | None
    latency_ms: int | None
    error: str | None
    response_body: str | None
    created_at: datetime


@dataclass(frozen=True)
class EventRecord:
    id: uuid.UUID
    endpoint_id: uuid.UUID | None
    client_id: uuid.UUID
    event_type: str
    status: str
    attempts: int
    response_code: int | None
    last_attempt: datetime | None
    created_at: datetime
    payload: dict[str, Any]
    attempt_log: list[AttemptRecord]


_EVENT_SELECT = (
    "SELECT ev.id, ev.endpoint_id, ep.client_id, ev.event_type, ev.status, ev.attempts,"
    " ev.response_code, ev.last_attempt, ev.created_at, ev.payload AS payload"
    " FROM webhook_events ev JOIN webhook_endpoints ep ON ep.id = ev.endpoint_id"
)


def list_events(
    conn: Connection,
    client_id: uuid.UUID | None,
    status: str | None,
    endpoint_id: uuid.UUID | None,
    limit: int,
) -> list[EventRecord]:
    """Newest first, each with its attempts (oldest first)."""
    rows = conn.execute(
        text(
            f"{_EVENT_SELECT} WHERE (CAST(:client AS uuid) IS NULL OR ep.client_id = :client)"
            " AND (CAST(:status AS text) IS NULL OR ev.status = :status)"
            " AND (CAST(:endpoint AS uuid) IS NULL OR ev.endpoint_id = :endpoint)"
            " ORDER BY ev.created_at DESC, ev.id LIMIT :limit"
        ),
        {"client": client_id, "status": status, "endpoint": endpoint_id, "limit": limit},
    ).all()
    attempts = attempts_of(conn, [row[0] for row in rows])
    return [EventRecord(**row._asdict(), attempt_log=attempts.get(row[0], [])) for row in rows]


def find_event(
    conn: Connection, event_id: uuid.UUID, client_id: uuid.UUID | None
) -> EventRecord | None:
    row = conn.execute(
        text(
            f"{_EVENT_SELECT} WHERE ev.id = :id"
            " AND (CAST(:client AS uuid) IS NULL OR ep.client_id = :client)"
        ),
        {"id": event_id, "client": client_id},
    ).one_or_none()
    if row is None:
        return None
    return EventRecord(**row._asdict(), attempt_log=attempts_of(conn, [row[0]]).get(row[0], []))


def attempts_of(
    conn: Connection, event_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AttemptRecord]]:
    found: dict[uuid.UUID, list[AttemptRecord]] = {}
    if not event_ids:
        return found
    rows = conn.execute(
        text(
            "SELECT event_id, id, trigger, response_code, latency_ms, error, response_body,"
            " created_at FROM webhook_attempts WHERE event_id = ANY(:ids)"
            " ORDER BY created_at, id"
        ),
        {"ids": list(event_ids)},
    )
    for event_id, *rest in rows:
        found.setdefault(event_id, []).append(AttemptRecord(*rest))
    return found


def failed_events_since(
    conn: Connection, endpoint_id: uuid.UUID, since: datetime
) -> list[uuid.UUID]:
    rows = conn.execute(
        text(
            "SELECT id FROM webhook_events WHERE endpoint_id = :endpoint"
            " AND status = 'failed' AND created_at >= :since ORDER BY created_at, id"
        ),
        {"endpoint": endpoint_id, "since": since},
    )
    return [row[0] for row in rows]


def reopen_events(conn: Connection, event_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """delivered | failed → pending for a manual redelivery; return the ones reopened
    (a ``pending`` event already has a delivery under way)."""
    rows = conn.execute(
        text(
            "UPDATE webhook_events SET status = 'pending'"
            " WHERE id = ANY(:ids) AND status IN ('delivered', 'failed') RETURNING id"
        ),
        {"ids": list(event_ids)},
    )
    return [row[0] for row in rows]


# -- delivery ----------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryTarget:
    """What one attempt needs: the event, its endpoint, and the secrets that sign now."""

    event_id: uuid.UUID
    event_status: str
    payload: dict[str, Any]
    endpoint_id: uuid.UUID
    client_id: uuid.UUID
    url: str
    endpoint_live: bool
    signing_secrets: list[str]
    failing_since: datetime | None
    now: datetime


def load_delivery(conn: Connection, event_id: uuid.UUID) -> DeliveryTarget | None:
    row = conn.execute(
        text(
            "SELECT ev.id, ev.status, ev.payload, ep.id, ep.client_id, ep.url,"
            " ep.enabled AND ep.deleted_at IS NULL,"
            " array_remove(ARRAY[ep.secret, CASE WHEN ep.previous_secret_expires_at > now()"
            "   THEN ep.previous_secret END], NULL),"
            " ep.failing_since, now()"
            " FROM webhook_events ev JOIN webhook_endpoints ep ON ep.id = ev.endpoint_id"
            " WHERE ev.id = :id"
        ),
        {"id": event_id},
    ).one_or_none()
    return DeliveryTarget(*row) if row else None


@dataclass(frozen=True)
class InFlight:
    """Deliveries to one endpoint running ahead of a job, and how long the oldest has run."""

    ahead: int
    oldest_seconds: float


def in_flight_ahead(conn: Connection, endpoint_id: uuid.UUID, job_id: uuid.UUID) -> InFlight:
    """Deliveries to ``endpoint_id`` running now that started before job ``job_id``.

    Running jobs are the in-flight set: a worker that dies leaves its job to the
    rescuer, so nothing here needs cleaning up.
    """
    ahead, oldest = conn.execute(
        text(
            "SELECT count(*), COALESCE(extract(epoch FROM now() - min(o.started_at)), 0)"
            " FROM async_jobs o, async_jobs me"
            " WHERE me.id = :me AND o.status = 'running' AND o.job_type = me.job_type"
            " AND o.payload->>'endpoint_id' = :endpoint"
            " AND (o.started_at, o.id) < (me.started_at, me.id)"
        ),
        {"me": job_id, "endpoint": str(endpoint_id)},
    ).one()
    return InFlight(int(ahead), float(oldest))


@dataclass(frozen=True)
class DeliveryRecord:
    """The write of one attempt: its row, the event's new status, the endpoint's health."""

    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    trigger: str
    response_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None
    #: pending (a retry follows), delivered or failed.
    event_status: str
    succeeded: bool
    #: Disable the endpoint for this reason (410, or failing too long); None: keep it.
    disable_reason: str | None


def record_delivery(conn: Connection, record: DeliveryRecord) -> bool:
    """Write one attempt; return whether this write disabled the endpoint."""
    conn.execute(
        text(
            "INSERT INTO webhook_attempts (event_id, trigger, response_code, latency_ms,"
            " error, response_body) VALUES (:event, :trigger, :code, :latency, :error, :body)"
        ),
        {
            "event": record.event_id,
            "trigger": record.trigger,
            "code": record.response_code,
            "latency": record.latency_ms,
            "error": record.error,
            "body": record.response_body,
        },
    )
    conn.execute(
        text(
            "UPDATE webhook_events SET status = :status, attempts = attempts + 1,"
            " last_attempt = now(), response_code = :code WHERE id = :event"
        ),
        {"event": record.event_id, "status": record.event_status, "code": record.response_code},
    )
    conn.execute(
        text(
            "UPDATE webhook_endpoints SET failing_since = CASE WHEN :ok THEN NULL"
            " ELSE COALESCE(failing_since, now()) END WHERE id = :endpoint"
        ),
        {"endpoint": record.endpoint_id, "ok": record.succeeded},
    )
    if record.disable_reason is None:
        return False
    return disable_endpoint(conn, record.endpoint_id, record.disable_reason)


def fail_event(conn: Connection, event_id: uuid.UUID) -> bool:
    """pending → failed without an attempt (its endpoint is disabled or deleted)."""
    result = conn.execute(
        text("UPDATE webhook_events SET status = 'failed' WHERE id = :id AND status = 'pending'"),
        {"id": event_id},
    )
    return result.rowcount == 1


def audit(conn: Connection, entries: Sequence[AuditEntry]) -> None:
    """Audit rows in the transaction of ``conn`` (workers hold a connection, not a session)."""
    with Session(bind=conn) as session:
        record_audit(session, entries)
        session.flush()
