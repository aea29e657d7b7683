"""The dashboard's actions: retry, cancel, bulk retry of dead jobs, webhook redelivery.

Each is the API's own route function called with the operator's client, so a click
and ``POST /v1/...`` do the same guarded write, send the same messages after commit
and leave the same audit row. The page's script posts with ``fetch`` and gets JSON
(``{"ok", "message"}``) to show without leaving the page; a plain form post is sent
back to where it came from.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from gradeflow.api.errors import ApiError
from gradeflow.api.routes import jobs as jobs_api
from gradeflow.api.routes import webhooks as webhooks_api
from gradeflow.api.transaction import TransactionDep
from gradeflow.db.jobs import JobFilter, retry_dead_jobs_matching
from gradeflow.ops.dashboard.access import CheckedOperatorDep
from gradeflow.ops.dashboard.rendering import json_answer, wants_json
from gradeflow.ops.dashboard.sessions import PREFIX, safe_next

router = APIRouter(prefix=PREFIX, include_in_schema=False)

BackField = Annotated[str, Form(max_length=2000)]
IdField = Annotated[str, Form(max_length=64)]


def answer(request: Request, ok: bool, message: str, back: str) -> Response:
    if wants_json(request):
        return json_answer({"ok": ok, "message": message}, 200 if ok else 409)
    return RedirectResponse(safe_next(back), status_code=303)


def refused(request: Request, error: ApiError, back: str) -> Response:
    if wants_json(request):
        return json_answer({"ok": False, "message": error.message}, error.status_code)
    return RedirectResponse(safe_next(back), status_code=303)


@router.post("/jobs/{job_id}/retry")
def retry_job(
    request: Request,
    job_id: uuid.UUID,
    operator: CheckedOperatorDep,
    transaction: TransactionDep,
    back: BackField = "",
) -> Response:
    try:
        jobs_api.retry(job_id, operator.client, transaction)
    except ApiError as error:
        return refused(request, error, back)
    return answer(request, True, f"Job {job_id} is queued again.", back)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(
    request: Request,
    job_id: uuid.UUID,
    operator: CheckedOperatorDep,
    transaction: TransactionDep,
    back: BackField = "",
) -> Response:
    try:
        jobs_api.cancel(job_id, operator.client, transaction)
    except ApiError as error:
        return refused(request, error, back)
    return answer(request, True, f"Job {job_id} is cancelled.", back)


@router.post("/jobs/retry-dead")
def retry_dead(
    request: Request,
    operator: CheckedOperatorDep,
    transaction: TransactionDep,
    job_type: Annotated[str, Form(max_length=32)] = "",
    client: IdField = "",
    assessment: IdField = "",
    back: BackField = "",
) -> Response:
    """Every dead job matching the jobs page's filter (type, client, assessment) → queued."""
    try:
        where = JobFilter(
            job_type=job_type.strip() or None,
            client_id=uuid.UUID(client) if client else None,
            assessment_id=uuid.UUID(assessment) if assessment else None,
        )
    except ValueError:
        return answer(request, False, "The filter's client or assessment is not an id.", back)
    count = retry_dead_jobs_matching(transaction.session.connection(), where)
    if count:
        jobs_api.dispatch_after_commit(transaction)
        meta = {
            "job_type": where.job_type,
            "client_id": client or None,
            "assessment_id": assessment or None,
            "retried": count,
        }
        jobs_api.audit(transaction, operator.client, "job.retry_dead", None, meta)
    return answer(request, True, f"{count} dead job(s) queued again.", back)


@router.post("/webhooks/events/{event_id}/redeliver")
def redeliver(
    request: Request,
    event_id: uuid.UUID,
    operator: CheckedOperatorDep,
    transaction: TransactionDep,
    back: BackField = "",
) -> Response:
    try:
        result = webhooks_api.redeliver_event(event_id, operator.client, transaction)
    except ApiError as error:
        return refused(request, error, back)
    if not result.queued:
        return answer(request, True, "A delivery of this event is already under way.", back)
    return answer(request, True, "The event will be delivered again.", back)
