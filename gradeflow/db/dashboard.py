"""What the ops dashboard reads, and nothing it writes.

Writes (retry, cancel, redeliver) go through the guarded queries of
:mod:`gradeflow.db.jobs` and :mod:`gradeflow.db.webhooks`; every function here is a
``SELECT``, so a page can never change state by being looked at.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, text

from gradeflow.db.jobs import JobFilter

#: The window of the overview's throughput and failure figures.
RECENT = "interval '1 hour'"


@dataclass(frozen=True)
class QueueLoad:
    """One (queue, job type) right now and over the last hour."""

    queue_name: str
    job_type: str
    queued: int
    running: int
    dead: int
    #: Seconds the longest-waiting due ``queued`` job has waited since it became due.
    oldest_queued_s: float | None
    succeeded_1h: int
    #: Attempts that failed in the last hour (each retried or dead attempt counts once).
    failed_1h: int


def queue_loads(conn: Connection) -> list[QueueLoad]:
    """Every (queue, job type) with live jobs, dead jobs or activity in the last hour.

    Reads only unfinished and dead jobs and those finished within the hour (the
    status and finished indexes), never the whole table.
    """
    rows = conn.execute(
        text(
            "WITH live AS ("
            "  SELECT queue_name, job_type,"
            "   count(*) FILTER (WHERE status = 'queued') AS queued,"
            "   count(*) FILTER (WHERE status = 'running') AS running,"
            "   count(*) FILTER (WHERE status = 'dead') AS dead,"
            "   extract(epoch FROM now() - min(next_run_at)"
            "     FILTER (WHERE status = 'queued' AND next_run_at <= now())) AS oldest,"
            f"  count(*) FILTER (WHERE status = 'succeeded' AND completed_at >= now() - {RECENT})"
            "     AS succeeded"
            "  FROM async_jobs"
            "  WHERE status IN ('queued', 'running', 'dead')"
            f"   OR (status = 'succeeded' AND completed_at >= now() - {RECENT})"
            "  GROUP BY 1, 2"
            "), failed AS ("
            "  SELECT j.queue_name, j.job_type, count(*) AS failed"
            "  FROM async_jobs j, jsonb_array_elements(j.error_payload->'errors') AS e"
            "  WHERE j.error_payload IS NOT NULL"
            f"   AND (j.status IN ('queued', 'running') OR j.completed_at >= now() - {RECENT})"
            f"   AND CAST(e->>'at' AS timestamptz) >= now() - {RECENT}"
            "  GROUP BY 1, 2"
            ")"
            " SELECT queue_name, job_type, COALESCE(queued, 0), COALESCE(running, 0),"
            "  COALESCE(dead, 0), oldest, COALESCE(succeeded, 0), COALESCE(failed, 0)"
            " FROM live FULL JOIN failed USING (queue_name, job_type)"
            " ORDER BY queue_name, job_type"
        )
    )
    return [
        QueueLoad(queue, job_type, queued, running, dead, _seconds(oldest), ok, failed)
        for queue, job_type, queued, running, dead, oldest, ok, failed in rows
    ]


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class SeriesPoint:
    at: datetime
    queue: str
    value: float


def metric_series(
    conn: Connection, metric_type: str, minutes: int, combine: Literal["sum", "max"]
) -> list[SeriesPoint]:
    """One point per minute and queue of a global ``metric_snapshots`` series over the
    last ``minutes``: the job types of a queue summed (counts) or maxed (percentiles)."""
    aggregate = {"sum": "sum", "max": "max"}[combine]
    rows = conn.execute(
        text(
            "SELECT date_trunc('minute', captured_at) AS at, context->>'queue' AS queue,"
            f" {aggregate}(value)"
            " FROM metric_snapshots WHERE metric_type = :metric AND assessment_id IS NULL"
            " AND captured_at >= now() - make_interval(mins => :minutes)"
            " AND context ? 'queue'"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        {"metric": metric_type, "minutes": minutes},
    )
    return [SeriesPoint(at, queue, float(value)) for at, queue, value in rows]


def count_dead(conn: Connection, where: JobFilter) -> int:
    """How many dead jobs match ``where`` (its ``status`` is ignored): what a bulk retry
    of that filter would queue again."""
    return int(
        conn.execute(
            text(
                "SELECT count(*) FROM async_jobs WHERE status = 'dead'"
                " AND (CAST(:job_type AS text) IS NULL OR job_type = :job_type)"
                " AND (CAST(:client_id AS uuid) IS NULL OR client_id = :client_id)"
                " AND (CAST(:assessment_id AS uuid) IS NULL OR assessment_id = :assessment_id)"
            ),
            {
                "job_type": where.job_type,
                "client_id": where.client_id,
                "assessment_id": where.assessment_id,
            },
        ).scalar_one()
    )


@dataclass(frozen=True)
class AuditEvent:
    at: datetime
    action: str
    actor_role: str | None
    actor_name: str | None
    metadata: dict[str, Any] | None


def audit_of(conn: Connection, resource_type: str, resource_id: uuid.UUID) -> list[AuditEvent]:
    """What operators did to one resource, oldest first, with the acting client's name."""
    rows = conn.execute(
        text(
            "SELECT a.created_at, a.action, a.actor_role, c.name, a.metadata"
            " FROM audit_logs a LEFT JOIN api_clients c ON c.id = a.actor_id"
            " WHERE a.resource_type = :type AND a.resource_id = :id"
            " ORDER BY a.created_at, a.id"
        ),
        {"type": resource_type, "id": resource_id},
    )
    return [AuditEvent(*row) for row in rows]


@dataclass(frozen=True)
class ClientName:
    id: uuid.UUID
    name: str
    role: str
    revoked: bool


def client_names(conn: Connection) -> list[ClientName]:
    """Every API client by name: the jobs filter and the labels of client ids."""
    rows = conn.execute(
        text(
            "SELECT id, name, role, revoked_at IS NOT NULL FROM api_clients"
            " ORDER BY name, created_at"
        )
    )
    return [ClientName(*row) for row in rows]


# -- assessments -----------------------------------------------------------------------


@dataclass(frozen=True)
class AssessmentHit:
    id: uuid.UUID
    status: str
    degraded: bool
    client_name: str | None
    external_id: str | None
    email: str
    created_at: datetime
    completed_at: datetime | None


def search_assessments(conn: Connection, query: str, limit: int = 50) -> list[AssessmentHit]:
    """Assessments newest first: by assessment or user id when ``query`` is a UUID, else
    by a user's external id or email containing it (case-insensitive); all when empty."""
    as_id = _uuid_or_none(query)
    pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = conn.execute(
        text(
            "SELECT a.id, a.status, a.degraded, c.name, u.external_id, u.email,"
            " a.created_at, a.completed_at"
            " FROM assessments a JOIN users u ON u.id = a.user_id"
            " LEFT JOIN api_clients c ON c.id = a.client_id"
            " WHERE CASE WHEN CAST(:id AS uuid) IS NOT NULL"
            "   THEN a.id = :id OR u.id = :id"
            "   ELSE (:query = '' OR u.external_id ILIKE :pattern"
            "     OR CAST(u.email AS text) ILIKE :pattern) END"
            " ORDER BY a.created_at DESC, a.id DESC LIMIT :limit"
        ),
        {"id": as_id, "query": query, "pattern": pattern, "limit": limit},
    )
    return [AssessmentHit(*row) for row in rows]


def _uuid_or_none(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class EventSummary:
    id: uuid.UUID
    event_type: str
    status: str
    attempts: int
    response_code: int | None
    endpoint_url: str | None
    created_at: datetime


def assessment_events(conn: Connection, assessment_id: uuid.UUID) -> list[EventSummary]:
    """The webhook events an assessment sent, oldest first."""
    rows = conn.execute(
        text(
            "SELECT ev.id, ev.event_type, ev.status, ev.attempts, ev.response_code, ep.url,"
            " ev.created_at FROM webhook_events ev"
            " LEFT JOIN webhook_endpoints ep ON ep.id = ev.endpoint_id"
            " WHERE ev.assessment_id = :id ORDER BY ev.created_at, ev.id"
        ),
        {"id": assessment_id},
    )
    return [EventSummary(*row) for row in rows]


# -- webhooks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointHealth:
    id: uuid.UUID
    client_name: str
    url: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    deleted: bool
    #: Attempts, and those answered 2xx, within the window.
    attempts: int
    successes: int
    last_attempt_at: datetime | None
    #: Events still waiting for a delivery.
    pending: int


def endpoint_health(conn: Connection, hours: float) -> list[EndpointHealth]:
    """Every endpoint with its delivery record over the last ``hours``; deleted ones last."""
    rows = conn.execute(
        text(
            "SELECT ep.id, c.name, ep.url, ep.event_types, ep.enabled, ep.disabled_reason,"
            " ep.failing_since, ep.deleted_at IS NOT NULL,"
            " COALESCE(at.attempts, 0), COALESCE(at.successes, 0), at.last_at,"
            " (SELECT count(*) FROM webhook_events p"
            "   WHERE p.endpoint_id = ep.id AND p.status = 'pending')"
            " FROM webhook_endpoints ep JOIN api_clients c ON c.id = ep.client_id"
            " LEFT JOIN LATERAL ("
            "  SELECT count(*) AS attempts,"
            "   count(*) FILTER (WHERE wa.response_code BETWEEN 200 AND 299) AS successes,"
            "   max(wa.created_at) AS last_at"
            "  FROM webhook_events ev JOIN webhook_attempts wa ON wa.event_id = ev.id"
            "  WHERE ev.endpoint_id = ep.id"
            "   AND wa.created_at >= now() - make_interval(secs => :hours * 3600)"
            " ) at ON true"
            " ORDER BY ep.deleted_at IS NOT NULL, c.name, ep.created_at"
        ),
        {"hours": hours},
    )
    return [EndpointHealth(*row) for row in rows]
