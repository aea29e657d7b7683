"""``snapshot_metrics``: once a minute, the job engine's figures into ``metric_snapshots``.

The scheduler enqueues it every minute (``GRADEFLOW_METRICS_SNAPSHOT_SECONDS``); it reads the
figures from ``async_jobs`` (bounded reads, :mod:`gradeflow.db.metrics`), turns
them into rows (:func:`snapshot_rows`, pure), and writes them stamped with the
minute — once: a second run in the same minute writes nothing. Rows past
``GRADEFLOW_METRICS_RETENTION_DAYS`` are deleted as it goes. The ``metric_type``
names and each row's ``context`` are :mod:`gradeflow.jobs.metric_names`'s.

Per-assessment rows are not written here but by the transaction that
finishes the assessment (``record_assessment_metrics``).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from gradeflow.db.metrics import (
    MinuteFigures,
    SnapshotRow,
    limit_read_time,
    minute_figures,
    prune_snapshots,
    write_snapshot,
)
from gradeflow.jobs import metric_names as names
from gradeflow.jobs.registry import QUEUES, JobContext, JobType, register, registered
from gradeflow.jobs.retry import RetryPolicy
from gradeflow.settings import get_settings

SNAPSHOT_METRICS = "snapshot_metrics"
#: The global metric types this job writes (and prunes).
GLOBAL_TYPES = (
    names.QUEUE_DEPTH,
    names.RUNNING,
    names.OLDEST_QUEUED_S,
    names.THROUGHPUT,
    names.FAILURES,
    names.PICKUP_P95_MS,
    names.DURATION_P95_MS,
)
MILLI = Decimal("0.001")


def snapshot_metrics(ctx: JobContext) -> None:
    settings = get_settings()
    known = [(kind.queue, kind.name) for kind in registered()]
    with ctx.engine.begin() as conn:
        limit_read_time(conn)
        figures = minute_figures(conn, QUEUES, settings.metrics_count_cap)
        write_snapshot(conn, snapshot_rows(figures, known, QUEUES))
        prune_snapshots(conn, GLOBAL_TYPES, settings.metrics_retention_days)


def snapshot_rows(
    figures: MinuteFigures, known: Sequence[tuple[str, str]], queues: Sequence[str]
) -> list[SnapshotRow]:
    """The minute's rows. Counts are written for every known (queue, job type) and
    ages for every queue, 0 included, so a chart shows a drop to zero rather than a
    gap; percentiles only where there were samples (none is not 0 ms)."""
    pairs = (
        set(known)
        | {(q, t) for q, t, _ in figures.jobs.counts}
        | set(figures.succeeded)
        | set(figures.failed_attempts)
    )
    all_queues = set(queues) | set(figures.oldest_due_seconds) | set(figures.pickup_p95_ms)
    return [
        *(r for queue, job_type in sorted(pairs) for r in job_type_rows(figures, queue, job_type)),
        *(r for queue in sorted(all_queues) for r in queue_rows(figures, queue)),
    ]


def job_type_rows(figures: MinuteFigures, queue: str, job_type: str) -> list[SnapshotRow]:
    series = {"queue": queue, "job_type": job_type}
    counts = figures.jobs.counts
    rows = [
        row(names.QUEUE_DEPTH, counts.get((queue, job_type, "queued"), 0), series),
        row(names.RUNNING, counts.get((queue, job_type, "running"), 0), series),
        row(names.THROUGHPUT, figures.succeeded.get((queue, job_type), 0), series),
        row(names.FAILURES, figures.failed_attempts.get((queue, job_type), 0), series),
    ]
    p95 = figures.duration_p95_ms.get((queue, job_type))
    return rows if p95 is None else [*rows, row(names.DURATION_P95_MS, p95, series)]


def queue_rows(figures: MinuteFigures, queue: str) -> list[SnapshotRow]:
    series = {"queue": queue}
    rows = [row(names.OLDEST_QUEUED_S, figures.oldest_due_seconds.get(queue, 0), series)]
    p95 = figures.pickup_p95_ms.get(queue)
    return rows if p95 is None else [*rows, row(names.PICKUP_P95_MS, p95, series)]


def row(metric_type: str, value: float, context: dict[str, str]) -> SnapshotRow:
    """A row with its value at the column's precision (thousandths)."""
    return SnapshotRow(metric_type, Decimal(str(value)).quantize(MILLI), context)


SNAPSHOT_METRICS_JOB = register(
    JobType(
        name=SNAPSHOT_METRICS,
        handler=snapshot_metrics,
        queue="cpu",
        # A snapshot late by more than its minute is worth little: a few quick tries.
        retry=RetryPolicy(max_attempts=3, base_seconds=5.0, max_seconds=20.0),
        time_limit_seconds=50.0,
    )
)
