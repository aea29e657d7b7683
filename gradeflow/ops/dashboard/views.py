"""Pure functions that turn rows into what the pages show: a job's timeline, the
overview's figures and charts, rates and human-readable durations. No I/O here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from gradeflow.db.dashboard import AuditEvent, EndpointHealth, QueueLoad, SeriesPoint
from gradeflow.db.jobs import JobDetail
from gradeflow.jobs import states
from gradeflow.jobs.metric_names import DURATION_P95_MS, PICKUP_P95_MS, QUEUE_DEPTH


@dataclass(frozen=True)
class Chart:
    """One chart of the overview: a ``metric_snapshots`` series per queue."""

    key: str
    title: str
    metric_type: str
    unit: str
    #: How the job types of one queue combine into its line: counts add up,
    #: percentiles cannot, so the worst one stands for the queue.
    combine: Literal["sum", "max"]


CHARTS = (
    Chart("depth", "Queue depth", QUEUE_DEPTH, "jobs", "sum"),
    Chart("pickup", "Pickup latency p95 (enqueue → start)", PICKUP_P95_MS, "ms", "max"),
    Chart("duration", "Run time p95", DURATION_P95_MS, "ms", "max"),
)
#: The chart windows an operator may pick, in minutes.
WINDOWS = (60, 360, 1440)


def rate(part: int, whole: int) -> float | None:
    """``part / whole``, or ``None`` when there is nothing to divide (no attempts yet)."""
    return None if whole == 0 else part / whole


def failure_rate(load: QueueLoad) -> float | None:
    """Failed attempts over all finished attempts of the last hour."""
    return rate(load.failed_1h, load.failed_1h + load.succeeded_1h)


def success_rate(endpoint: EndpointHealth) -> float | None:
    return rate(endpoint.successes, endpoint.attempts)


def overview_payload(
    loads: Sequence[QueueLoad],
    series: dict[str, list[SeriesPoint]],
    now: datetime,
    minutes: int,
) -> dict[str, Any]:
    """The JSON the overview page polls: totals, one row per (queue, job type), charts."""
    rows = [
        {
            "queue": load.queue_name,
            "job_type": load.job_type,
            "queued": load.queued,
            "running": load.running,
            "dead": load.dead,
            "oldest_queued_s": load.oldest_queued_s,
            "throughput_1h": load.succeeded_1h,
            "failed_1h": load.failed_1h,
            "failure_rate_1h": failure_rate(load),
        }
        for load in loads
    ]
    failed = sum(load.failed_1h for load in loads)
    succeeded = sum(load.succeeded_1h for load in loads)
    oldest = [load.oldest_queued_s for load in loads if load.oldest_queued_s is not None]
    return {
        "generated_at": now.isoformat(),
        "minutes": minutes,
        "totals": {
            "queued": sum(load.queued for load in loads),
            "running": sum(load.running for load in loads),
            "dead": sum(load.dead for load in loads),
            "oldest_queued_s": max(oldest, default=None),
            "throughput_1h": succeeded,
            "failure_rate_1h": rate(failed, failed + succeeded),
        },
        "rows": rows,
        "charts": [chart_payload(chart, series.get(chart.key, [])) for chart in CHARTS],
    }


def chart_payload(chart: Chart, points: Sequence[SeriesPoint]) -> dict[str, Any]:
    """One line per queue, each a list of ``[epoch milliseconds, value]``."""
    lines: dict[str, list[list[float]]] = defaultdict(list)
    for point in points:
        lines[point.queue].append([point.at.timestamp() * 1000, point.value])
    return {
        "key": chart.key,
        "title": chart.title,
        "unit": chart.unit,
        "lines": [{"queue": queue, "points": lines[queue]} for queue in sorted(lines)],
    }


# -- one job ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    #: queued, failed, operator, started, finished, due
    kind: str
    text: str


def job_timeline(detail: JobDetail, audit: Sequence[AuditEvent]) -> list[TimelineEntry]:
    """A job's story, oldest first: enqueued, each failure, what operators did, the
    latest attempt's start and the end (or when it is due next)."""
    row = detail.row
    entries = [TimelineEntry(row.queued_at, "queued", f"enqueued on {row.queue_name}")]
    entries += [failure_entry(error) for error in detail.errors if _when(error) is not None]
    entries += [operator_entry(event) for event in audit]
    if row.started_at is not None:
        entries.append(TimelineEntry(row.started_at, "started", "latest attempt started"))
    if row.completed_at is not None:
        entries.append(TimelineEntry(row.completed_at, "finished", row.status))
    elif row.status == states.QUEUED and row.next_run_at is not None:
        entries.append(TimelineEntry(row.next_run_at, "due", "due to run"))
    return sorted(entries, key=lambda entry: entry.at)


def failure_entry(error: dict[str, Any]) -> TimelineEntry:
    at = _when(error)
    assert at is not None
    kind = "timed out" if error.get("timed_out") else "failed"
    permanent = " (permanent)" if error.get("permanent") else ""
    message = f"{error.get('type', 'Error')}: {error.get('message', '')}"
    return TimelineEntry(
        at, "failed", f"attempt {error.get('attempt')} {kind}{permanent}: {message}"
    )


def operator_entry(event: AuditEvent) -> TimelineEntry:
    who = event.actor_name or event.actor_role or "someone"
    verb = event.action.removeprefix("job.").replace("_", " ")
    return TimelineEntry(event.at, "operator", f"{verb} by {who} ({event.actor_role})")


def _when(error: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(error["at"]))
    except (KeyError, ValueError):
        return None


def may_retry(status: str) -> bool:
    return status in (states.DEAD, states.CANCELLED)


def may_cancel(status: str) -> bool:
    return states.can_move(status, states.CANCELLED)


# -- formatting ------------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """``3725`` → ``1h 2m``; ``42.5`` → ``42s``; ``None`` → ``—``."""
    if seconds is None:
        return "—"
    whole = int(seconds)
    if whole < 60:
        return f"{max(whole, 0)}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    return f"{hours // 24}d {hours % 24}h"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"
