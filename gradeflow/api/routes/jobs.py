"""The dead-letter desk (operators): list jobs, retry or cancel one, retry every dead one.

Each move is one guarded statement of :mod:`gradeflow.db.jobs`; a job whose state does
not allow it gets a 409 naming the state, never a silent no-op. A job queued again has
its message sent after the commit by the same fair dispatch the scheduler runs
(:func:`~gradeflow.db.jobs.dispatch_due_jobs`), so it does not wait for the scheduler's
next round, and a client whose window is full still waits its turn.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import Connection

from gradeflow.api.auth import OperatorClient, actor
from gradeflow.api.errors import ApiError, invalid_input
from gradeflow.api.pagination import decode_cursor, encode_cursor
from gradeflow.api.schemas.errors import AUTHENTICATED, error_responses
from gradeflow.api.schemas.jobs import JobOut, JobPage, JobQuery, RetryDeadOut, RetryDeadQuery
from gradeflow.api.transaction import Transaction, TransactionDep
from gradeflow.db.audit import AuditEntry, record_audit
from gradeflow.db.jobs import (
    JobFilter,
    cancel_job,
    dispatch_due_jobs,
    find_job,
    page_jobs,
    retry_dead_jobs,
    retry_job,
)
from gradeflow.db.schema import ApiClient

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

#: Messages one request dispatches at most; the scheduler's dispatcher sends the rest.
DISPATCH_LIMIT = 2_000


@router.get("", responses=error_responses(*AUTHENTICATED))
def get_jobs(
    query: Annotated[JobQuery, Query()], client: OperatorClient, transaction: TransactionDep
) -> JobPage:
    """Jobs newest first, optionally of one status and one type; follow ``next_cursor``."""
    try:
        before = decode_cursor(query.cursor) if query.cursor else None
    except ValueError as exc:
        raise invalid_input("query", ["cursor"], str(exc)) from None
    where = JobFilter(status=query.status, job_type=query.job_type)
    rows = page_jobs(transaction.session.connection(), where, before=before, limit=query.limit + 1)
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return JobPage(
        items=[JobOut.from_row(row) for row in page],
        next_cursor=encode_cursor(page[-1].queued_at, page[-1].id) if more else None,
    )


@router.post("/retry-dead", responses=error_responses(*AUTHENTICATED))
def retry_dead(
    query: Annotated[RetryDeadQuery, Query()], client: OperatorClient, transaction: TransactionDep
) -> RetryDeadOut:
    """Queue every dead job (of ``job_type``, when given) again; answer how many."""
    count = retry_dead_jobs(transaction.session.connection(), query.job_type)
    if count:
        dispatch_after_commit(transaction)
        meta = {"job_type": query.job_type, "retried": count}
        audit(transaction, client, "job.retry_dead", None, meta)
    return RetryDeadOut(retried=count)


@router.post("/{job_id}/retry", responses=error_responses(*AUTHENTICATED, 404, 409))
def retry(job_id: uuid.UUID, client: OperatorClient, transaction: TransactionDep) -> JobOut:
    """Queue a dead or cancelled job again with a fresh set of attempts (its errors stay)."""
    conn = transaction.session.connection()
    if not retry_job(conn, job_id):
        raise refusal(conn, job_id, "retry", "dead or cancelled", "job_not_retryable")
    dispatch_after_commit(transaction)
    audit(transaction, client, "job.retry", job_id)
    return current(conn, job_id)


@router.post("/{job_id}/cancel", responses=error_responses(*AUTHENTICATED, 404, 409))
def cancel(job_id: uuid.UUID, client: OperatorClient, transaction: TransactionDep) -> JobOut:
    """Cancel a queued or running job; a running attempt's result is then discarded."""
    conn = transaction.session.connection()
    if not cancel_job(conn, job_id):
        raise refusal(conn, job_id, "cancel", "queued or running", "job_not_cancellable")
    audit(transaction, client, "job.cancel", job_id)
    return current(conn, job_id)


def dispatch_after_commit(transaction: Transaction) -> None:
    """Mark due jobs as sent now; their messages go out once the request commits."""
    conn = transaction.session.connection()
    transaction.messages.extend(dispatch_due_jobs(conn, transaction.window, DISPATCH_LIMIT))


def current(conn: Connection, job_id: uuid.UUID) -> JobOut:
    found = find_job(conn, job_id)
    assert found is not None, "the job was just updated in this transaction"
    return JobOut.from_row(found.row)


def refusal(conn: Connection, job_id: uuid.UUID, verb: str, allowed: str, code: str) -> ApiError:
    """404 when the job does not exist; else 409 naming the state that forbids ``verb``."""
    found = find_job(conn, job_id)
    if found is None:
        return ApiError(404, "not_found", f"no job {job_id}")
    status = found.row.status
    return ApiError(
        409,
        code,
        f"cannot {verb} job {job_id}: it is {status}, and only {allowed} jobs can be",
        [{"field": "status", "reason": f"the job is {status}", "type": f"status_{status}"}],
    )


def audit(
    transaction: Transaction,
    client: ApiClient,
    action: str,
    job_id: uuid.UUID | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    entry = AuditEntry(actor(client), action, "job", job_id, metadata or {})
    record_audit(transaction.session, [entry])
