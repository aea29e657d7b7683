"""The reads behind ``/metrics`` and ``snapshot_metrics``, and every ``metric_snapshots`` write.

Reads are bounded: a backlog of a million jobs must not make a scrape (every
15 s or so) or a snapshot (every minute) slow. Each job count reads at most
``cap`` rows of one status through the ``(status, next_run_at)`` index; a count
that reaches the cap is a lower bound and is reported as capped. Figures
"over the last minute" read only the jobs that can hold one: running jobs,
jobs finished in the window (the ``completed_at`` index), and queued jobs due
since the window began (a retry's due time is after its failure).

Writes: the minute's global rows (:func:`write_snapshot`, at most once per
minute), an assessment's rows when it finishes (:func:`record_assessment_metrics`,
in the transaction that finishes it), and pruning old global rows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

#: The job states the live job counts cover (finished ones pile up until pruned).
LIVE_STATES = ("queued", "running", "dead")
#: Longest a scrape's or snapshot's reads may run before PostgreSQL stops them.
READ_TIMEOUT_MS = 5_000
#: The window of the "last minute" figures.
WINDOW_SECONDS = 60

# The per-assessment metric_type names: gradeflow.jobs.metric_names spells the same
# (db may not import jobs; tests/integration/test_metrics.py compares the two).
_E2E_MS = "assessment_e2e_ms"
_LLM_COST_CENTS = "assessment_llm_cost_cents"
_LLM_TOKENS = "assessment_llm_tokens"


# -- reads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobCounts:
    #: (queue, job_type, status) → jobs, for the statuses asked for.
    counts: dict[tuple[str, str, str], int]
    #: Statuses whose count reached the cap (their counts are lower bounds).
    capped: frozenset[str]


@dataclass(frozen=True)
class EndpointHealth:
    #: healthy / failing / disabled → endpoints (deleted ones are not counted).
    by_state: dict[str, int]
    #: How long the longest current run of failures of an enabled endpoint has lasted.
    longest_failing_seconds: float


@dataclass(frozen=True)
class MinuteFigures:
    """What the last minute's snapshot reports, as read from ``async_jobs``."""

    jobs: JobCounts
    oldest_due_seconds: dict[str, float]
    #: (queue, job_type) → jobs that succeeded in the window.
    succeeded: dict[tuple[str, str], int]
    #: (queue, job_type) → attempts that failed (retried or dead) in the window.
    failed_attempts: dict[tuple[str, str], int]
    #: queue → 95th percentile of due → start, ms, of attempts started in the window.
    pickup_p95_ms: dict[str, float]
    #: (queue, job_type) → 95th percentile of run time, ms, of attempts ended in the window.
    duration_p95_ms: dict[tuple[str, str], float]


def limit_read_time(conn: Connection) -> None:
    """Bound every statement of the caller's transaction to :data:`READ_TIMEOUT_MS`."""
    conn.execute(text(f"SET LOCAL statement_timeout = {READ_TIMEOUT_MS}"))


def job_counts(conn: Connection, statuses: Sequence[str], cap: int) -> JobCounts:
    """Jobs by (queue, job type, status), reading at most ``cap`` rows per status."""
    rows = conn.execute(
        text(
            "SELECT j.queue_name, j.job_type, s.status, count(*)"
            " FROM unnest(CAST(:statuses AS text[])) AS s(status)"
            " CROSS JOIN LATERAL (SELECT queue_name, job_type FROM async_jobs"
            "   WHERE status = s.status LIMIT :cap) AS j"
            " GROUP BY 1, 2, 3"
        ),
        {"statuses": list(statuses), "cap": cap},
    ).all()
    counts = {(queue, job_type, status): n for queue, job_type, status, n in rows}
    totals: dict[str, int] = {}
    for (_, _, status), n in counts.items():
        totals[status] = totals.get(status, 0) + n
    return JobCounts(counts, frozenset(s for s, n in totals.items() if n >= cap))


def oldest_due_seconds(conn: Connection, queues: Sequence[str], cap: int) -> dict[str, float]:
    """Per queue, how long its oldest due ``queued`` job has waited since it was due.

    Each queue walks the due jobs in order and stops at its first one, reading at
    most ``cap`` rows: a queue none of whose jobs is among the ``cap`` longest-waiting
    ones is left out (it has waited less than all of them).
    """
    rows = conn.execute(
        text(
            "SELECT q.queue_name, EXTRACT(EPOCH FROM now() - ("
            "   SELECT due.next_run_at FROM (SELECT queue_name, next_run_at FROM async_jobs"
            "     WHERE status = 'queued' AND next_run_at <= now()"
            "     ORDER BY next_run_at LIMIT :cap) AS due"
            "   WHERE due.queue_name = q.queue_name LIMIT 1))"
            " FROM unnest(CAST(:queues AS text[])) AS q(queue_name)"
        ),
        {"queues": list(queues), "cap": cap},
    ).all()
    return {queue: max(0.0, float(age)) for queue, age in rows if age is not None}


def endpoint_health(conn: Connection) -> EndpointHealth:
    """Webhook endpoints by health, and the longest current run of failures."""
    rows = conn.execute(
        text(
            "SELECT CASE WHEN NOT enabled THEN 'disabled'"
            "   WHEN failing_since IS NOT NULL THEN 'failing' ELSE 'healthy' END,"
            " count(*),"
            " max(EXTRACT(EPOCH FROM now() - failing_since)) FILTER (WHERE enabled)"
            " FROM webhook_endpoints WHERE deleted_at IS NULL GROUP BY 1"
        )
    ).all()
    longest = max((float(seconds) for _, _, seconds in rows if seconds is not None), default=0.0)
    return EndpointHealth({state: n for state, n, _ in rows}, max(0.0, longest))


# Jobs that may hold a figure of the window (see the module's docstring), at most
# :cap of each kind.
_RECENT_COLUMNS = "queue_name, job_type, status, started_at, next_run_at, error_payload"
_RECENT_JOBS = (
    f"(SELECT {_RECENT_COLUMNS} FROM async_jobs WHERE status = 'running' LIMIT :cap)"
    f" UNION ALL (SELECT {_RECENT_COLUMNS} FROM async_jobs"
    "   WHERE status IN ('succeeded', 'dead', 'cancelled')"
    "   AND completed_at >= now() - make_interval(secs => :window) LIMIT :cap)"
    f" UNION ALL (SELECT {_RECENT_COLUMNS} FROM async_jobs WHERE status = 'queued'"
    "   AND next_run_at >= now() - make_interval(secs => :window) LIMIT :cap)"
)


def minute_figures(conn: Connection, queues: Sequence[str], cap: int) -> MinuteFigures:
    """Everything the minute's snapshot reports, read in the caller's transaction."""
    params = {"cap": cap, "window": WINDOW_SECONDS}
    succeeded = conn.execute(
        text(
            "SELECT queue_name, job_type, count(*) FROM async_jobs"
            " WHERE status = 'succeeded'"
            " AND completed_at >= now() - make_interval(secs => :window)"
            " GROUP BY 1, 2"
        ),
        params,
    ).all()
    failed = conn.execute(
        text(
            f"SELECT j.queue_name, j.job_type, count(*) FROM ({_RECENT_JOBS}) AS j,"
            " jsonb_array_elements(COALESCE(j.error_payload->'errors', '[]'::jsonb)) AS e"
            " WHERE CAST(e->>'at' AS timestamptz) >= now() - make_interval(secs => :window)"
            " GROUP BY 1, 2"
        ),
        params,
    ).all()
    pickup = conn.execute(
        text(
            "SELECT j.queue_name, percentile_cont(0.95) WITHIN GROUP"
            "   (ORDER BY EXTRACT(EPOCH FROM j.started_at - j.next_run_at) * 1000)"
            f" FROM ({_RECENT_JOBS}) AS j"
            " WHERE j.status IN ('running', 'succeeded', 'dead')"
            " AND j.started_at >= now() - make_interval(secs => :window)"
            " AND j.started_at >= j.next_run_at"
            " GROUP BY 1"
        ),
        params,
    ).all()
    duration = conn.execute(
        text(
            "SELECT queue_name, job_type, percentile_cont(0.95) WITHIN GROUP"
            "   (ORDER BY EXTRACT(EPOCH FROM completed_at - started_at) * 1000)"
            " FROM async_jobs WHERE status IN ('succeeded', 'dead')"
            " AND completed_at >= now() - make_interval(secs => :window)"
            " AND started_at IS NOT NULL"
            " GROUP BY 1, 2"
        ),
        params,
    ).all()
    return MinuteFigures(
        jobs=job_counts(conn, ("queued", "running"), cap),
        oldest_due_seconds=oldest_due_seconds(conn, queues, cap),
        succeeded={(q, t): n for q, t, n in succeeded},
        failed_attempts={(q, t): n for q, t, n in failed},
        pickup_p95_ms={q: max(0.0, float(ms)) for q, ms in pickup},
        duration_p95_ms={(q, t): max(0.0, float(ms)) for q, t, ms in duration},
    )


# -- writes --------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotRow:
    """One ``metric_snapshots`` row to write: its type, value and series."""

    metric_type: str
    value: Decimal
    context: dict[str, Any] | None = None


def write_snapshot(conn: Connection, rows: Sequence[SnapshotRow]) -> int:
    """Write the minute's global rows, stamped with the minute; return how many.

    A minute already written is left alone (zero rows): a snapshot job that runs
    twice in one minute writes once.
    """
    if not rows:
        return 0
    result = conn.execute(
        text(
            "INSERT INTO metric_snapshots (metric_type, value, context, captured_at)"
            " SELECT r.metric_type, r.value, r.context, date_trunc('minute', now())"
            " FROM jsonb_to_recordset(CAST(:rows AS jsonb))"
            "   AS r(metric_type text, value numeric, context jsonb)"
            " WHERE NOT EXISTS (SELECT 1 FROM metric_snapshots"
            "   WHERE metric_type = ANY(CAST(:types AS text[]))"
            "   AND captured_at = date_trunc('minute', now()) AND assessment_id IS NULL)"
        ),
        {
            "rows": json.dumps([_row_record(row) for row in rows]),
            "types": sorted({row.metric_type for row in rows}),
        },
    )
    return result.rowcount


def _row_record(row: SnapshotRow) -> dict[str, Any]:
    return {"metric_type": row.metric_type, "value": str(row.value), "context": row.context}


def prune_snapshots(conn: Connection, metric_types: Sequence[str], older_than_days: float) -> int:
    """Delete global rows of ``metric_types`` older than ``older_than_days``; return how many.

    Per-assessment rows stay: there are few, and they belong to their assessment.
    """
    result = conn.execute(
        text(
            "DELETE FROM metric_snapshots WHERE metric_type = ANY(CAST(:types AS text[]))"
            " AND captured_at < now() - make_interval(secs => :days * 86400)"
            " AND assessment_id IS NULL"
        ),
        {"types": list(metric_types), "days": older_than_days},
    )
    return result.rowcount


@dataclass(frozen=True)
class AssessmentFigures:
    """What an assessment's essays cost, and how long it took."""

    e2e_ms: float
    #: Sum of its essays' ``cost_cents``; None when one of them has no price.
    llm_cost_cents: Decimal | None
    llm_tokens: int


def assessment_figures(conn: Connection, assessment_id: uuid.UUID) -> AssessmentFigures | None:
    """The figures of a finished assessment (None while it is not finished).

    Tokens are the ``usage`` (or the estimate) kept in each essay score's
    ``response_payload.cost``; an essay graded offline spent none.
    """
    row = conn.execute(
        text(
            "SELECT EXTRACT(EPOCH FROM a.completed_at - a.created_at) * 1000,"
            " s.cost, s.unpriced, s.tokens"
            " FROM assessments a CROSS JOIN LATERAL ("
            "   SELECT COALESCE(sum(cost_cents), 0) AS cost,"
            "   count(*) FILTER (WHERE cost_cents IS NULL) AS unpriced,"
            "   COALESCE(sum("
            "     COALESCE(CAST(response_payload->'cost'->>'prompt_tokens' AS bigint), 0)"
            "     + COALESCE(CAST(response_payload->'cost'->>'completion_tokens' AS bigint), 0)"
            "   ), 0) AS tokens"
            "   FROM essay_scores WHERE assessment_id = a.id) AS s"
            " WHERE a.id = :id AND a.completed_at IS NOT NULL"
        ),
        {"id": assessment_id},
    ).one_or_none()
    if row is None:
        return None
    e2e_ms, cost, unpriced, tokens = row
    return AssessmentFigures(max(0.0, float(e2e_ms)), None if unpriced else cost, int(tokens))


def assessment_rows(figures: AssessmentFigures) -> list[SnapshotRow]:
    """The rows an assessment leaves: latency, tokens, and cost when every essay had a price."""
    rows = [
        SnapshotRow(_E2E_MS, Decimal(str(round(figures.e2e_ms, 3)))),
        SnapshotRow(_LLM_TOKENS, Decimal(figures.llm_tokens)),
    ]
    if figures.llm_cost_cents is not None:
        rows.append(SnapshotRow(_LLM_COST_CENTS, figures.llm_cost_cents))
    return rows


def record_assessment_metrics(conn: Connection, assessment_id: uuid.UUID) -> int:
    """Write a just-finished assessment's rows; return how many.

    Called in the transaction whose guarded ``finish_assessment`` matched, so
    once per assessment (a rolled-back finish takes its rows with it).
    """
    figures = assessment_figures(conn, assessment_id)
    if figures is None:
        return 0
    rows = assessment_rows(figures)
    result = conn.execute(
        text(
            "INSERT INTO metric_snapshots (assessment_id, metric_type, value, context)"
            " SELECT :id, r.metric_type, r.value, r.context"
            " FROM jsonb_to_recordset(CAST(:rows AS jsonb))"
            "   AS r(metric_type text, value numeric, context jsonb)"
        ),
        {"id": assessment_id, "rows": json.dumps([_row_record(row) for row in rows])},
    )
    return result.rowcount
