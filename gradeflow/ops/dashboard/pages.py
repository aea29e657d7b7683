"""The dashboard's pages (GET only; nothing here writes) and the fragments their
script polls to stay live without a reload."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.responses import Response

from gradeflow.api.pagination import decode_cursor, encode_cursor
from gradeflow.api.transaction import TransactionDep
from gradeflow.db.assessments import assessment_record, question_results
from gradeflow.db.dashboard import (
    assessment_events,
    audit_of,
    client_names,
    count_dead,
    endpoint_health,
    metric_series,
    queue_loads,
    search_assessments,
)
from gradeflow.db.jobs import JobFilter, find_job, page_jobs
from gradeflow.db.recommendations import recommendation_record
from gradeflow.db.webhooks import list_events
from gradeflow.jobs import states
from gradeflow.jobs.registry import registered
from gradeflow.ops.dashboard import views
from gradeflow.ops.dashboard.access import OperatorDep
from gradeflow.ops.dashboard.rendering import json_answer, render
from gradeflow.ops.dashboard.sessions import PREFIX

router = APIRouter(prefix=PREFIX, include_in_schema=False)

JOBS_PER_PAGE = 50
#: Webhook health is judged over this many recent hours.
HEALTH_HOURS = 24.0
EVENTS_SHOWN = 50
EVENT_STATUSES = ("pending", "delivered", "failed")


def parse_uuid(raw: str | None, label: str, problems: list[str]) -> uuid.UUID | None:
    """``raw`` as a UUID; a note in ``problems`` (and ``None``) when it is not one."""
    if not raw or not raw.strip():
        return None
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        problems.append(f"{label} must be an id such as 0b9a…-… (ignored)")
        return None


# -- overview ------------------------------------------------------------------------------


def overview(conn: Connection, minutes: int) -> dict[str, Any]:
    series = {
        chart.key: metric_series(conn, chart.metric_type, minutes, chart.combine)
        for chart in views.CHARTS
    }
    return views.overview_payload(queue_loads(conn), series, datetime.now(UTC), minutes)


def window(minutes: str) -> int:
    """The chart window asked for, if it is one of :data:`views.WINDOWS`, else the first."""
    return next((w for w in views.WINDOWS if str(w) == minutes), views.WINDOWS[0])


@router.get("")
def overview_page(
    request: Request, operator: OperatorDep, transaction: TransactionDep, minutes: str = ""
) -> Response:
    data = overview(transaction.session.connection(), window(minutes))
    return render(
        request,
        "overview.html",
        {"operator": operator, "page": "overview", "data": data, "windows": views.WINDOWS},
    )


@router.get("/api/overview")
def overview_json(
    operator: OperatorDep, transaction: TransactionDep, minutes: str = ""
) -> Response:
    """What the overview polls: figures per queue and job type, and the charts' series."""
    return json_answer(overview(transaction.session.connection(), window(minutes)))


# -- jobs --------------------------------------------------------------------------------


@dataclass
class JobList:
    """The jobs page's filter as typed in, what it parsed to, and what it found."""

    status: str = ""
    job_type: str = ""
    client: str = ""
    assessment: str = ""
    cursor: str = ""
    problems: list[str] = field(default_factory=list)

    def where(self) -> JobFilter:
        return JobFilter(
            status=self.status if self.status in states.ALL else None,
            job_type=self.job_type.strip() or None,
            client_id=parse_uuid(self.client, "client", self.problems),
            assessment_id=parse_uuid(self.assessment, "assessment", self.problems),
        )

    def before(self) -> tuple[datetime, uuid.UUID] | None:
        try:
            return decode_cursor(self.cursor) if self.cursor else None
        except ValueError:
            self.problems.append("the page link is broken; showing the newest jobs")
            return None

    def query(self, **changes: str) -> str:
        """This filter as a query string, with ``changes``; empty fields left out."""
        fields = {
            "status": self.status,
            "job_type": self.job_type,
            "client": self.client,
            "assessment": self.assessment,
            "cursor": self.cursor,
            **changes,
        }
        return urlencode({k: v for k, v in fields.items() if v})


def job_list_context(conn: Connection, listing: JobList) -> dict[str, Any]:
    where = listing.where()
    rows = page_jobs(conn, where, before=listing.before(), limit=JOBS_PER_PAGE + 1)
    page = rows[:JOBS_PER_PAGE]
    older = (
        listing.query(cursor=encode_cursor(page[-1].queued_at, page[-1].id))
        if len(rows) > JOBS_PER_PAGE
        else None
    )
    clients = client_names(conn)
    return {
        "listing": listing,
        "jobs": page,
        "older": older,
        "dead_matching": count_dead(conn, where),
        "where": where,
        "clients": clients,
        "client_label": {c.id: c.name for c in clients},
    }


@router.get("/jobs")
def jobs_page(
    request: Request,
    operator: OperatorDep,
    transaction: TransactionDep,
    status: str = "",
    job_type: str = "",
    client: str = "",
    assessment: str = "",
    cursor: str = "",
) -> Response:
    listing = JobList(status, job_type, client, assessment, cursor)
    context = job_list_context(transaction.session.connection(), listing)
    known_types = sorted(job_type.name for job_type in registered())
    return render(
        request,
        "jobs.html",
        {
            "operator": operator,
            "page": "jobs",
            "statuses": sorted(states.ALL),
            "known_types": known_types,
            **context,
        },
    )


@router.get("/jobs/live")
def jobs_fragment(
    request: Request,
    operator: OperatorDep,
    transaction: TransactionDep,
    status: str = "",
    job_type: str = "",
    client: str = "",
    assessment: str = "",
    cursor: str = "",
) -> Response:
    listing = JobList(status, job_type, client, assessment, cursor)
    context = job_list_context(transaction.session.connection(), listing)
    return render(request, "_jobs_live.html", {"operator": operator, **context})


def job_context(conn: Connection, job_id: uuid.UUID) -> dict[str, Any] | None:
    detail = find_job(conn, job_id)
    if detail is None:
        return None
    audit = audit_of(conn, "job", job_id)
    return {
        "job": detail,
        "timeline": views.job_timeline(detail, audit),
        "client_label": {c.id: c.name for c in client_names(conn)},
    }


@router.get("/jobs/{job_id}")
def job_page(
    request: Request, job_id: uuid.UUID, operator: OperatorDep, transaction: TransactionDep
) -> Response:
    context = job_context(transaction.session.connection(), job_id)
    if context is None:
        return not_found(request, operator, f"There is no job {job_id} (pruned, or never was).")
    return render(request, "job.html", {"operator": operator, "page": "jobs", **context})


@router.get("/jobs/{job_id}/live")
def job_fragment(
    request: Request, job_id: uuid.UUID, operator: OperatorDep, transaction: TransactionDep
) -> Response:
    context = job_context(transaction.session.connection(), job_id)
    if context is None:
        return json_answer({"error": {"code": "not_found", "message": "no such job"}}, 404)
    return render(request, "_job_live.html", {"operator": operator, **context})


def not_found(request: Request, operator: Any, message: str) -> Response:
    return render(request, "not_found.html", {"operator": operator, "message": message}, 404)


# -- assessments --------------------------------------------------------------------------


@router.get("/assessments")
def assessments_page(
    request: Request, operator: OperatorDep, transaction: TransactionDep, q: str = ""
) -> Response:
    query = q.strip()[:200]
    hits = search_assessments(transaction.session.connection(), query)
    return render(
        request,
        "assessments.html",
        {"operator": operator, "page": "assessments", "q": query, "hits": hits},
    )


def pipeline_context(conn: Connection, assessment_id: uuid.UUID) -> dict[str, Any]:
    jobs = page_jobs(conn, JobFilter(assessment_id=assessment_id), limit=500)
    return {"pipeline": sorted(jobs, key=lambda job: (job.queued_at, str(job.id)))}


@router.get("/assessments/{assessment_id}")
def assessment_page(
    request: Request, assessment_id: uuid.UUID, operator: OperatorDep, transaction: TransactionDep
) -> Response:
    session = transaction.session
    record = assessment_record(session, assessment_id)
    if record is None:
        return not_found(request, operator, f"There is no assessment {assessment_id}.")
    conn = session.connection()
    clients = {c.id: c.name for c in client_names(conn)}
    return render(
        request,
        "assessment.html",
        {
            "operator": operator,
            "page": "assessments",
            "a": record,
            "client_name": clients.get(record.client_id) if record.client_id else None,
            "questions": question_results(session, assessment_id),
            "recommendation": recommendation_record(session, assessment_id),
            "events": assessment_events(conn, assessment_id),
            **pipeline_context(conn, assessment_id),
        },
    )


@router.get("/assessments/{assessment_id}/live")
def pipeline_fragment(
    request: Request, assessment_id: uuid.UUID, operator: OperatorDep, transaction: TransactionDep
) -> Response:
    context = pipeline_context(transaction.session.connection(), assessment_id)
    return render(request, "_pipeline_live.html", {"operator": operator, **context})


# -- webhooks ------------------------------------------------------------------------------


def webhooks_context(conn: Connection, status: str, endpoint: str) -> dict[str, Any]:
    problems: list[str] = []
    endpoint_id = parse_uuid(endpoint, "endpoint", problems)
    chosen = status if status in EVENT_STATUSES else None
    endpoints = endpoint_health(conn, HEALTH_HOURS)
    return {
        "endpoints": endpoints,
        "events": list_events(conn, None, chosen, endpoint_id, EVENTS_SHOWN),
        "url_of": {e.id: e.url for e in endpoints},
        "status": chosen or "",
        "endpoint": str(endpoint_id) if endpoint_id else "",
        "problems": problems,
        "health_hours": HEALTH_HOURS,
    }


@router.get("/webhooks")
def webhooks_page(
    request: Request,
    operator: OperatorDep,
    transaction: TransactionDep,
    status: str = "",
    endpoint: str = "",
) -> Response:
    context = webhooks_context(transaction.session.connection(), status, endpoint)
    return render(
        request,
        "webhooks.html",
        {"operator": operator, "page": "webhooks", "statuses": EVENT_STATUSES, **context},
    )


@router.get("/webhooks/live")
def webhooks_fragment(
    request: Request,
    operator: OperatorDep,
    transaction: TransactionDep,
    status: str = "",
    endpoint: str = "",
) -> Response:
    context = webhooks_context(transaction.session.connection(), status, endpoint)
    return render(request, "_webhooks_live.html", {"operator": operator, **context})
