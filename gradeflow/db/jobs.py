"""Every statement that changes an ``async_jobs`` row: one named, guarded query each.

Each transition is a single ``UPDATE … WHERE id = … AND status IN (…) RETURNING``.
Zero rows back is a deliberate no-op (a duplicate message, a job cancelled
meanwhile, a lease already taken back), reported to the caller as ``None`` or
``False`` — never silently overwritten. Callers own the transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from gradeflow.db.schema.jobs import OUTSTANDING_SQL

_NIL_CLIENT = "'00000000-0000-0000-0000-000000000000'::uuid"


@dataclass(frozen=True)
class JobToInsert:
    """One row for :func:`insert_jobs`; ``send_now`` marks its message as sent at insert."""

    job_type: str
    queue_name: str
    payload: dict[str, Any]
    assessment_id: uuid.UUID | None
    client_id: uuid.UUID | None
    dedup_key: str | None
    max_attempts: int | None
    send_now: bool


@dataclass(frozen=True)
class Message:
    """What a Dramatiq message needs: which job, which actor, which queue."""

    job_id: uuid.UUID
    job_type: str
    queue_name: str


@dataclass(frozen=True)
class ClaimedJob:
    """A job this attempt owns; ``owner`` (``host:pid:token``) guards every later write."""

    owner: str
    id: uuid.UUID
    job_type: str
    attempts: int
    max_attempts: int | None
    payload: dict[str, Any]
    assessment_id: uuid.UUID | None
    client_id: uuid.UUID | None
    rescues: int


# -- enqueue -------------------------------------------------------------------


def capped_outstanding(queue: str, client_condition: str, cap: str) -> str:
    """The SQL of a count of one queue's messages in flight (sent, not yet claimed) for
    the jobs matching ``client_condition``, stopping at ``cap`` (all SQL text): only
    whether a window is full matters, and a backlog of thousands must not make every
    enqueue slower. The enqueue statements embed it, so one definition holds."""
    return (
        f"(SELECT count(*) FROM (SELECT 1 FROM async_jobs WHERE queue_name = {queue}"
        f" AND {client_condition} AND {OUTSTANDING_SQL} LIMIT {cap}) AS capped)"
    )


@dataclass(frozen=True)
class Inserted:
    """The jobs an insert created, and the messages to send for them after commit."""

    job_ids: list[uuid.UUID]
    messages: list[Message]


# One statement: each (queue, client) of the jobs to send now has its in-flight
# messages counted once (MATERIALIZED), up to the window; its jobs take the room
# left in the order given. A client of its own for the jobs without one.
_INSERT_JOBS = (
    "WITH new_jobs AS ("
    "  SELECT j.*, row_number() OVER (PARTITION BY j.queue_name, j.client_id"
    "    ORDER BY j.ord) AS place"
    "  FROM jsonb_to_recordset(CAST(%(jobs)s AS jsonb)) AS j(job_type text,"
    "   queue_name text, payload jsonb, assessment_id uuid, client_id uuid, dedup_key text,"
    "   max_attempts int, send_now boolean, ord bigint)),"
    " room AS MATERIALIZED ("
    "  SELECT q.queue_name, q.client_id, %(window)s - CASE WHEN q.client_id IS NULL"
    "   THEN "
    + capped_outstanding("q.queue_name", "client_id IS NULL", "%(window)s")
    + "   ELSE "
    + capped_outstanding("q.queue_name", "client_id = q.client_id", "%(window)s")
    + "   END AS room"
    "  FROM (SELECT DISTINCT queue_name, client_id FROM new_jobs WHERE send_now) AS q)"
    " INSERT INTO async_jobs (job_type, queue_name, status, payload, assessment_id,"
    " client_id, dedup_key, max_attempts, next_run_at, sent_at)"
    " SELECT n.job_type, n.queue_name, 'queued', n.payload, n.assessment_id,"
    " n.client_id, n.dedup_key, n.max_attempts, now(),"
    " CASE WHEN n.send_now AND n.place <= room.room THEN now() END"
    " FROM new_jobs n LEFT JOIN room ON room.queue_name = n.queue_name"
    "  AND room.client_id IS NOT DISTINCT FROM n.client_id"
    " ORDER BY n.ord"
    " ON CONFLICT (job_type, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING"
    " RETURNING id, job_type, queue_name, sent_at IS NOT NULL"
)


def insert_jobs(conn: Connection, jobs: Sequence[JobToInsert], window: int) -> Inserted:
    """Insert ``jobs`` as ``queued`` and due now; return the messages to send after commit.

    A job whose ``(job_type, dedup_key)`` exists already is not inserted and
    gets no message. A job with ``send_now`` gets a message here while fewer than
    ``window`` of its client's are in flight on its queue (its earlier siblings in
    ``jobs`` included); the dispatcher sends the others, fairly across clients.
    """
    if not jobs:
        return Inserted([], [])
    rows = conn.exec_driver_sql(
        _INSERT_JOBS,
        {
            "jobs": json.dumps([_insert_record(job) | {"ord": n} for n, job in enumerate(jobs)]),
            "window": window,
        },
    ).all()
    return Inserted(
        [job_id for job_id, *_ in rows],
        [Message(job_id, job_type, queue) for job_id, job_type, queue, sent in rows if sent],
    )


def _insert_record(job: JobToInsert) -> dict[str, Any]:
    return {
        "job_type": job.job_type,
        "queue_name": job.queue_name,
        "payload": job.payload,
        "assessment_id": str(job.assessment_id) if job.assessment_id else None,
        "client_id": str(job.client_id) if job.client_id else None,
        "dedup_key": job.dedup_key,
        "max_attempts": job.max_attempts,
        "send_now": job.send_now,
    }


# -- a worker's moves ------------------------------------------------------------

#: A psycopg cursor on a pooled connection in autocommit (see :func:`autocommit_cursor`).
DriverCursor = psycopg.Cursor[Any]


@contextmanager
def autocommit_cursor(engine: Engine) -> Iterator[DriverCursor]:
    """A bare driver cursor on one of ``engine``'s pooled connections, in autocommit.

    For the two statements every job runs (claim and complete): one guarded
    statement is its own transaction, one round trip, and skips SQLAlchemy's
    per-statement and per-checkout machinery (about 0.35 ms of CPU per statement,
    three times the cost of the statement itself, in a GIL-bound worker process).
    Driver errors come out as SQLAlchemy's (``OperationalError`` on a lost
    connection, as callers expect); a connection that broke, or that an interrupt
    (a worker's time limit, a shutdown) may have caught mid-statement, is dropped,
    never given back to the pool. An error raised between statements (an API's
    4xx) leaves it idle, fit for reuse.
    """
    pooled = engine.raw_connection()
    driver = pooled.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        driver.autocommit = True
        with driver.cursor() as cursor:
            yield cursor
    except psycopg.Error as exc:
        if driver.broken:
            pooled.invalidate(exc)
        else:
            driver.autocommit = False
        raise DBAPIError.instance(
            None, None, exc, psycopg.Error, connection_invalidated=driver.broken
        ) from exc
    except Exception:
        driver.autocommit = False
        raise
    except BaseException:
        pooled.invalidate()
        raise
    else:
        driver.autocommit = False
    finally:
        pooled.close()


def _run(
    conn: Connection | DriverCursor, sql: str, params: Mapping[str, Any]
) -> tuple[int, tuple[Any, ...] | None]:
    """Run one statement written for the driver (``%(name)s`` parameters); return the
    row count and the first row it returned, if any."""
    if isinstance(conn, Connection):
        result = conn.exec_driver_sql(sql, dict(params))
        row = result.one_or_none() if result.returns_rows else None
        return result.rowcount, tuple(row) if row is not None else None
    conn.execute(sql, params)
    return conn.rowcount, conn.fetchone() if conn.description else None


_CLAIM = (
    "UPDATE async_jobs SET status = 'running', attempts = attempts + 1,"
    " locked_by = %(owner)s, locked_until = now() + make_interval(secs => %(lease)s),"
    " started_at = now()"
    " WHERE id = %(id)s AND status = 'queued' AND next_run_at <= now()"
    " RETURNING id, job_type, attempts, max_attempts, payload, assessment_id,"
    " client_id, rescues"
)


def claim_job(
    conn: Connection | DriverCursor, job_id: uuid.UUID, owner: str, lease_seconds: float
) -> ClaimedJob | None:
    """queued and due → running, with a lease and one more attempt; ``None`` if not claimable."""
    _, row = _run(conn, _CLAIM, {"id": job_id, "owner": owner, "lease": float(lease_seconds)})
    return ClaimedJob(owner, *row) if row else None


def postpone_job(conn: Connection, job_id: uuid.UUID, seconds: float) -> bool:
    """queued and due → queued later, without claiming it (a limit said "not now").

    A job not yet due (in its backoff or snooze; the message is a stale duplicate)
    is left alone: postponing must never pull a job in before its due time.
    """
    result = conn.execute(
        text(
            "UPDATE async_jobs SET next_run_at = now() + make_interval(secs => :seconds)"
            " WHERE id = :id AND status = 'queued' AND next_run_at <= now()"
        ),
        {"id": job_id, "seconds": seconds},
    )
    return result.rowcount == 1


def extend_leases(
    conn: Connection, worker_id: str, job_ids: Sequence[uuid.UUID], lease_seconds: float
) -> int:
    """Push back the lease of every job worker process ``worker_id`` still runs.

    A job whose row another transaction holds (most often the one finishing it)
    is skipped, not waited for: waiting would hold the rows already extended,
    and every other job finishing meanwhile would queue up behind the heartbeat.
    A skipped lease is extended by the next beat, well before it runs out.
    """
    if not job_ids:
        return 0
    result = conn.execute(
        text(
            "UPDATE async_jobs SET locked_until = now() + make_interval(secs => :lease)"
            " WHERE id IN (SELECT id FROM async_jobs WHERE id = ANY(:ids)"
            "  AND status = 'running' AND starts_with(locked_by, :worker || ':')"
            "  FOR UPDATE SKIP LOCKED)"
        ),
        {"ids": list(job_ids), "worker": worker_id, "lease": lease_seconds},
    )
    return result.rowcount


_COMPLETE = (
    "UPDATE async_jobs SET status = 'succeeded', completed_at = now(),"
    " locked_by = NULL, locked_until = NULL"
    " WHERE id = %(id)s AND status = 'running' AND locked_by = %(owner)s"
)


def complete_job(conn: Connection | DriverCursor, job_id: uuid.UUID, owner: str) -> bool:
    """running (held by this attempt's ``owner``) → succeeded."""
    count, _ = _run(conn, _COMPLETE, {"id": job_id, "owner": owner})
    return count == 1


def requeue_job(
    conn: Connection,
    job_id: uuid.UUID,
    owner: str,
    next_run_at: datetime,
    *,
    refund_attempt: bool,
    error: dict[str, Any] | None,
) -> bool:
    """running → queued at ``next_run_at`` (a retry, or a snooze that refunds the attempt)."""
    result = conn.execute(
        text(
            "UPDATE async_jobs SET status = 'queued', next_run_at = :next_run_at,"
            " attempts = attempts - CASE WHEN :refund THEN 1 ELSE 0 END,"
            " error_payload = CASE WHEN CAST(:error AS jsonb) IS NULL THEN error_payload"
            "   ELSE jsonb_build_object('errors', COALESCE(error_payload->'errors', '[]'::jsonb)"
            "   || jsonb_build_array(CAST(:error AS jsonb))) END,"
            " locked_by = NULL, locked_until = NULL"
            " WHERE id = :id AND status = 'running' AND locked_by = :worker"
        ),
        {
            "id": job_id,
            "worker": owner,
            "next_run_at": next_run_at,
            "refund": refund_attempt,
            "error": json.dumps(error) if error else None,
        },
    )
    return result.rowcount == 1


def kill_job(conn: Connection, job_id: uuid.UUID, owner: str, error: dict[str, Any]) -> bool:
    """running → dead, keeping the error (and every earlier one) for replay."""
    result = conn.execute(
        text(
            "UPDATE async_jobs SET status = 'dead', completed_at = now(),"
            " error_payload = jsonb_build_object('errors',"
            "   COALESCE(error_payload->'errors', '[]'::jsonb)"
            "   || jsonb_build_array(CAST(:error AS jsonb))),"
            " locked_by = NULL, locked_until = NULL"
            " WHERE id = :id AND status = 'running' AND locked_by = :worker"
        ),
        {"id": job_id, "worker": owner, "error": json.dumps(error)},
    )
    return result.rowcount == 1


def release_leases(conn: Connection, worker_id: str, job_ids: Sequence[uuid.UUID]) -> int:
    """running → queued at once, refunding the attempt: a clean shutdown gives work back."""
    if not job_ids:
        return 0
    result = conn.execute(
        text(
            "UPDATE async_jobs SET status = 'queued', attempts = attempts - 1,"
            " next_run_at = now(), sent_at = NULL, locked_by = NULL, locked_until = NULL"
            " WHERE id = ANY(:ids) AND status = 'running'"
            " AND starts_with(locked_by, :worker || ':')"
        ),
        {"ids": list(job_ids), "worker": worker_id},
    )
    return result.rowcount


# -- an operator's moves ------------------------------------------------------------


def cancel_job(conn: Connection, job_id: uuid.UUID) -> bool:
    """queued or running → cancelled. A running attempt's own finish then finds nothing."""
    result = conn.execute(
        text(
            "UPDATE async_jobs SET status = 'cancelled', completed_at = now(),"
            " locked_by = NULL, locked_until = NULL"
            " WHERE id = :id AND status IN ('queued', 'running')"
        ),
        {"id": job_id},
    )
    return result.rowcount == 1


def retry_job(conn: Connection, job_id: uuid.UUID) -> bool:
    """dead or cancelled → queued now, with a fresh set of attempts; errors are kept."""
    result = conn.execute(
        text(
            "UPDATE async_jobs SET status = 'queued', attempts = 0, rescues = 0,"
            " next_run_at = now(), sent_at = NULL, completed_at = NULL"
            " WHERE id = :id AND status IN ('dead', 'cancelled')"
        ),
        {"id": job_id},
    )
    return result.rowcount == 1


def retry_dead_jobs(conn: Connection, job_type: str | None = None) -> int:
    """Every dead job (of ``job_type``, when given) → queued now; return how many."""
    result = conn.execute(
        text(
            "UPDATE async_jobs SET status = 'queued', attempts = 0, rescues = 0,"
            " next_run_at = now(), sent_at = NULL, completed_at = NULL"
            " WHERE status = 'dead' AND (CAST(:job_type AS text) IS NULL OR job_type = :job_type)"
        ),
        {"job_type": job_type},
    )
    return result.rowcount


# -- the maintenance services' moves ------------------------------------------------


def dispatch_due_jobs(conn: Connection, window: int, limit: int) -> list[Message]:
    """Mark as sent, and return, due jobs that have no message yet.

    Each (queue, client) gets at most ``window`` messages in flight (sent, not
    claimed), so one client's burst waits here, in Postgres, while every other
    client's jobs still reach the workers.
    """
    rows = conn.execute(
        text(
            "WITH outstanding AS ("
            f"  SELECT queue_name, COALESCE(client_id, {_NIL_CLIENT}) AS client, count(*) AS n"
            f"  FROM async_jobs WHERE {OUTSTANDING_SQL} GROUP BY 1, 2"
            "), candidates AS ("
            f"  SELECT id, queue_name, COALESCE(client_id, {_NIL_CLIENT}) AS client,"
            "    row_number() OVER (PARTITION BY queue_name, client_id"
            "      ORDER BY next_run_at, id) AS rank"
            "  FROM async_jobs WHERE status = 'queued' AND next_run_at <= now()"
            "    AND (sent_at IS NULL OR sent_at < next_run_at)"
            "), chosen AS ("
            "  SELECT c.id FROM candidates c LEFT JOIN outstanding o USING (queue_name, client)"
            "  WHERE c.rank <= :window - COALESCE(o.n, 0)"
            "  ORDER BY c.rank LIMIT :limit"
            ")"
            " UPDATE async_jobs j SET sent_at = now() FROM chosen"
            " WHERE j.id = chosen.id AND j.status = 'queued'"
            " RETURNING j.id, j.job_type, j.queue_name"
        ),
        {"window": window, "limit": limit},
    )
    return [Message(*row) for row in rows]


def relay_lost_messages(
    conn: Connection, older_than_seconds: float, limit: int, sent_before: datetime | None = None
) -> list[Message]:
    """Re-mark and return jobs whose message went out long ago and was never claimed.

    With ``sent_before`` (the moment the broker was found empty, flushed or
    restarted without its data), every message sent before it is re-sent,
    whatever its age; ones re-sent since are left alone.
    """
    rows = conn.execute(
        text(
            "UPDATE async_jobs SET sent_at = now() WHERE id IN ("
            f"  SELECT id FROM async_jobs WHERE {OUTSTANDING_SQL}"
            "   AND (CASE WHEN CAST(:before AS timestamptz) IS NULL"
            "     THEN sent_at <= now() - make_interval(secs => :age)"
            "     ELSE sent_at <= CAST(:before AS timestamptz) END)"
            "  ORDER BY sent_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
            " RETURNING id, job_type, queue_name"
        ),
        {"age": older_than_seconds, "limit": limit, "before": sent_before},
    )
    return [Message(*row) for row in rows]


@dataclass(frozen=True)
class RescueResult:
    requeued: int
    dead: int


def rescue_expired_leases(conn: Connection, max_rescues: int) -> RescueResult:
    """running with an expired lease → queued now; dead once it lost ``max_rescues`` workers."""
    rows = conn.execute(
        text(
            "UPDATE async_jobs SET rescues = rescues + 1, locked_by = NULL, locked_until = NULL,"
            " status = CASE WHEN rescues + 1 >= :max_rescues THEN 'dead' ELSE 'queued' END,"
            " completed_at = CASE WHEN rescues + 1 >= :max_rescues THEN now() END,"
            " next_run_at = now(), sent_at = NULL,"
            " error_payload = jsonb_build_object('errors',"
            "   COALESCE(error_payload->'errors', '[]'::jsonb)"
            "   || jsonb_build_array(jsonb_build_object("
            "     'attempt', attempts, 'at', now(), 'type', 'LeaseExpired',"
            "     'message', 'worker ' || locked_by || ' stopped renewing its lease',"
            "     'timed_out', false, 'permanent', false, 'traceback', '')))"
            " WHERE id IN (SELECT id FROM async_jobs WHERE status = 'running'"
            "   AND locked_until < now() FOR UPDATE SKIP LOCKED)"
            " RETURNING status"
        ),
        {"max_rescues": max_rescues},
    )
    statuses = [status for (status,) in rows]
    return RescueResult(requeued=statuses.count("queued"), dead=statuses.count("dead"))


def prune_finished_jobs(conn: Connection, older_than_hours: float, limit: int = 10_000) -> int:
    """Delete finished jobs completed more than ``older_than_hours`` ago; return how many."""
    result = conn.execute(
        text(
            "DELETE FROM async_jobs WHERE id IN (SELECT id FROM async_jobs"
            " WHERE status IN ('succeeded', 'dead', 'cancelled')"
            " AND completed_at < now() - make_interval(secs => :hours * 3600) LIMIT :limit)"
        ),
        {"hours": older_than_hours, "limit": limit},
    )
    return result.rowcount


def database_now(conn: Connection) -> datetime:
    """The database's clock, which every timestamp of ``async_jobs`` uses."""
    return conn.execute(text("SELECT now()")).scalar_one()  # type: ignore[no-any-return]


# -- reads -------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSummary:
    id: uuid.UUID
    job_type: str
    queue_name: str
    status: str
    attempts: int
    next_run_at: datetime | None
    completed_at: datetime | None
    last_error: str | None


def list_jobs(
    conn: Connection, *, status: str | None = None, job_type: str | None = None, limit: int = 50
) -> list[JobSummary]:
    """The newest jobs, optionally of one status and one type."""
    rows = conn.execute(
        text(
            "SELECT id, job_type, queue_name, status, attempts, next_run_at, completed_at,"
            " error_payload->'errors'->-1->>'message'"
            " FROM async_jobs"
            " WHERE (CAST(:status AS text) IS NULL OR status = :status)"
            " AND (CAST(:job_type AS text) IS NULL OR job_type = :job_type)"
            " ORDER BY queued_at DESC, id LIMIT :limit"
        ),
        {"status": status, "job_type": job_type, "limit": limit},
    )
    return [JobSummary(*row) for row in rows]


def job_status(conn: Connection, job_id: uuid.UUID) -> str | None:
    """The status of job ``job_id``, or ``None`` when there is no such job."""
    return conn.execute(
        text("SELECT status FROM async_jobs WHERE id = :id"), {"id": job_id}
    ).scalar_one_or_none()


# -- the operator's desk (API and dashboard) ------------------------------------------


@dataclass(frozen=True)
class JobFilter:
    """Which jobs an operator is looking at; ``None`` leaves a field unfiltered."""

    status: str | None = None
    job_type: str | None = None
    client_id: uuid.UUID | None = None
    assessment_id: uuid.UUID | None = None


_FILTERED = (
    "(CAST(:status AS text) IS NULL OR status = :status)"
    " AND (CAST(:job_type AS text) IS NULL OR job_type = :job_type)"
    " AND (CAST(:client_id AS uuid) IS NULL OR client_id = :client_id)"
    " AND (CAST(:assessment_id AS uuid) IS NULL OR assessment_id = :assessment_id)"
)


def _filter_params(where: JobFilter) -> dict[str, Any]:
    return {
        "status": where.status,
        "job_type": where.job_type,
        "client_id": where.client_id,
        "assessment_id": where.assessment_id,
    }


@dataclass(frozen=True)
class JobRow:
    """A job as an operator lists it; ``last_error`` is its latest failure's message."""

    id: uuid.UUID
    job_type: str
    queue_name: str
    status: str
    attempts: int
    max_attempts: int | None
    client_id: uuid.UUID | None
    assessment_id: uuid.UUID | None
    queued_at: datetime
    started_at: datetime | None
    next_run_at: datetime | None
    completed_at: datetime | None
    last_error: str | None


_JOB_ROW_COLUMNS = (
    "id, job_type, queue_name, status, attempts, max_attempts, client_id, assessment_id,"
    " queued_at, started_at, next_run_at, completed_at,"
    " error_payload->'errors'->-1->>'message'"
)


def page_jobs(
    conn: Connection,
    where: JobFilter,
    *,
    before: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 100,
) -> list[JobRow]:
    """Up to ``limit`` jobs matching ``where``, newest first by (queued_at, id), strictly
    after the keyset ``before`` (the last row of the previous page): pages never skip
    or repeat a row however many jobs are inserted meanwhile."""
    after = "" if before is None else " AND (queued_at, id) < (:before_at, :before_id)"
    rows = conn.execute(
        text(
            f"SELECT {_JOB_ROW_COLUMNS} FROM async_jobs WHERE {_FILTERED}{after}"
            " ORDER BY queued_at DESC, id DESC LIMIT :limit"
        ),
        {
            **_filter_params(where),
            "before_at": before[0] if before else None,
            "before_id": before[1] if before else None,
            "limit": limit,
        },
    )
    return [JobRow(*row) for row in rows]


@dataclass(frozen=True)
class JobDetail:
    """Everything an operator may need to judge one job: its row, payload and every error."""

    row: JobRow
    payload: dict[str, Any] | None
    #: Each failure (oldest first): attempt, at, type, message, traceback, ...
    errors: list[dict[str, Any]]
    locked_by: str | None
    locked_until: datetime | None
    rescues: int
    dedup_key: str | None


def find_job(conn: Connection, job_id: uuid.UUID) -> JobDetail | None:
    """Job ``job_id`` in full, or ``None`` when there is none."""
    row = conn.execute(
        text(
            f"SELECT {_JOB_ROW_COLUMNS}, payload, COALESCE(error_payload->'errors', '[]'),"
            " locked_by, locked_until, rescues, dedup_key FROM async_jobs WHERE id = :id"
        ),
        {"id": job_id},
    ).one_or_none()
    if row is None:
        return None
    *listed, payload, errors, locked_by, locked_until, rescues, dedup_key = row
    return JobDetail(
        JobRow(*listed), payload, list(errors), locked_by, locked_until, rescues, dedup_key
    )


def retry_dead_jobs_matching(conn: Connection, where: JobFilter) -> int:
    """Every dead job matching ``where`` (whatever its ``status`` says) → queued now, with
    a fresh set of attempts; return how many. :func:`retry_dead_jobs`, by more than type."""
    result = conn.execute(
        text(
            "UPDATE async_jobs SET status = 'queued', attempts = 0, rescues = 0,"
            " next_run_at = now(), sent_at = NULL, completed_at = NULL"
            f" WHERE status = 'dead' AND {_FILTERED}"
        ),
        _filter_params(replace(where, status="dead")),
    )
    return result.rowcount
