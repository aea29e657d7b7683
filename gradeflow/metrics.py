"""Prometheus metrics: every series gradeflow exposes on ``/metrics``, defined here.

Two sources, one page (the README's "Metrics" section lists every series):

- What happens in worker processes — job attempts, their run time and pickup
  latency, LLM requests, tokens and cost, webhook attempts — is recorded where
  it happens, in prometheus-client's multiprocess mode: each process writes
  its own files in one directory (:func:`metrics_directory`) and the web
  process's ``/metrics`` adds them up, with Dramatiq's own worker metrics
  (:mod:`gradeflow.workers.metrics`). So web and workers share a host, or at
  least that directory.
- What lives in Postgres — jobs by queue, type and state, the oldest due job,
  webhook endpoint health — is read when scraped, by :class:`DatabaseCollector`,
  with bounded queries (:mod:`gradeflow.db.metrics`).

This module sits beside ``logs.py`` rather than in ``ops/`` or ``workers/``
because the job code that records (``jobs/essays``, ``jobs/webhooks``) may
import neither. Recording an attempt costs about 10 µs (its series are looked up once).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

import structlog
from prometheus_client import Counter, Histogram, values
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gradeflow.db.metrics import (
    LIVE_STATES,
    EndpointHealth,
    JobCounts,
    endpoint_health,
    job_counts,
    limit_read_time,
    oldest_due_seconds,
)
from gradeflow.settings import Settings

log = structlog.get_logger(__name__)

#: The environment variable prometheus-client's multiprocess mode reads.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Seconds: from a few milliseconds (a rule-scoring job) to the 10-minute time limit.
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: Seconds: from an idle worker's pickup to an hour-long backlog.
PICKUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

# -- recorded by worker processes (registry=None: the multiprocess files are the registry) --

JOB_DURATION = Histogram(
    "gradeflow_job_duration_seconds",
    "Run time of one job attempt: the job's own code, without claim and bookkeeping.",
    ["queue", "job_type"],
    buckets=RUN_BUCKETS,
    registry=None,
)
JOB_PICKUP = Histogram(
    "gradeflow_job_pickup_seconds",
    "From the job's message being sent to the broker to the attempt starting.",
    ["queue", "job_type"],
    buckets=PICKUP_BUCKETS,
    registry=None,
)
JOB_ATTEMPTS = Counter(
    "gradeflow_job_attempts",
    "Job attempts by outcome: succeeded, retried, snoozed (no attempt spent), dead.",
    ["queue", "job_type", "outcome"],
    registry=None,
)
LLM_REQUESTS = Counter(
    "gradeflow_llm_requests",
    "Chat-completion requests by outcome: ok, or the error they ended in.",
    ["model", "outcome"],
    registry=None,
)
LLM_TOKENS = Counter(
    "gradeflow_llm_tokens",
    "Tokens of the answers received (usage, or an estimate when the server sent none).",
    ["model", "kind"],
    registry=None,
)
LLM_COST = Counter(
    "gradeflow_llm_cost_usd",
    "What the answers received cost, from GRADEFLOW_LLM_PRICES (unpriced models add nothing).",
    ["model"],
    registry=None,
)
WEBHOOK_ATTEMPTS = Counter(
    "gradeflow_webhook_attempts",
    "Webhook delivery attempts by outcome (delivered, retrying, failed) and answer class.",
    ["outcome", "status_class"],
    registry=None,
)

# -- the multiprocess directory ----------------------------------------------------------


def metrics_directory(settings: Settings) -> Path:
    """Where every process of this host keeps its metric files."""
    return settings.metrics_dir or settings.home / "metrics"


def use_multiprocess_dir(directory: Path) -> None:
    """Make this process write its metrics as files in ``directory``.

    prometheus-client picks how values are stored when it is first imported,
    from the environment; a Dramatiq worker process inherits its modules from
    its parent, which imported it without the variable. Values are created
    when first recorded, so switching before then covers every series.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def clear_multiprocess_dir(directory: Path) -> None:
    """Delete the metric files in ``directory`` before a stack starts, as prometheus-client
    asks: files of processes long gone would otherwise pile up and slow every scrape.
    Only its ``*.db`` files go: the directory is configurable, and may hold other things."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)


# -- recording -----------------------------------------------------------------------------


def attempt_outcome(status: str, *, refunded: bool) -> str:
    """The ``outcome`` label of an attempt whose decision is ``status``."""
    if status == "queued":
        return "snoozed" if refunded else "retried"
    return status


def record_attempt(queue: str, job_type: str, outcome: str, seconds: float) -> None:
    _attempts(queue, job_type, outcome).inc()
    _duration(queue, job_type).observe(max(0.0, seconds))


def record_pickup(queue: str, job_type: str, seconds: float) -> None:
    _pickup(queue, job_type).observe(max(0.0, seconds))


# Every job's hot path: the series of each (queue, job type) are looked up once, not per
# attempt (a label lookup costs as much as the increment). Few combinations exist.


@cache
def _attempts(queue: str, job_type: str, outcome: str) -> Counter:
    return JOB_ATTEMPTS.labels(queue, job_type, outcome)


@cache
def _duration(queue: str, job_type: str) -> Histogram:
    return JOB_DURATION.labels(queue, job_type)


@cache
def _pickup(queue: str, job_type: str) -> Histogram:
    return JOB_PICKUP.labels(queue, job_type)


@contextmanager
def counted_llm_request(model: str) -> Iterator[None]:
    """Count the request made in the block: ``ok``, or the class of the error it raised."""
    try:
        yield
    except Exception as exc:
        LLM_REQUESTS.labels(model, type(exc).__name__).inc()
        raise
    LLM_REQUESTS.labels(model, "ok").inc()


def record_llm_usage(
    model: str, prompt_tokens: int, completion_tokens: int, usd: Decimal | None
) -> None:
    LLM_TOKENS.labels(model, "prompt").inc(prompt_tokens)
    LLM_TOKENS.labels(model, "completion").inc(completion_tokens)
    if usd is not None:
        LLM_COST.labels(model).inc(float(usd))


#: A delivery's event status after an attempt → the attempt's ``outcome`` label.
WEBHOOK_OUTCOMES = {"delivered": "delivered", "pending": "retrying", "failed": "failed"}


def status_class(status: int | None) -> str:
    """``2xx`` … ``5xx`` for an HTTP answer, ``none`` when none came (timeout, refused)."""
    return f"{status // 100}xx" if status is not None else "none"


def record_webhook_attempt(event_status: str, response_code: int | None) -> None:
    outcome = WEBHOOK_OUTCOMES.get(event_status, event_status)
    WEBHOOK_ATTEMPTS.labels(outcome, status_class(response_code)).inc()


# -- read from Postgres at scrape time -------------------------------------------------------


@dataclass(frozen=True)
class LiveFigures:
    jobs: JobCounts
    oldest_due_seconds: dict[str, float]
    endpoints: EndpointHealth


#: Health states of webhook endpoints, always reported (0 when none).
ENDPOINT_STATES = ("healthy", "failing", "disabled")


class DatabaseCollector:
    """The figures that live in Postgres, read at each scrape.

    ``known`` lists every (queue, job type) and ``queues`` every queue, so
    their series read 0 rather than vanish when nothing is there. When the
    database cannot answer, only ``gradeflow_metrics_database_up 0`` is reported.
    """

    def __init__(
        self,
        engine: Engine,
        known: Sequence[tuple[str, str]],
        queues: Sequence[str],
        count_cap: int,
    ) -> None:
        self.engine = engine
        self.known = known
        self.queues = queues
        self.count_cap = count_cap

    def collect(self) -> Iterable[Metric]:
        try:
            figures = self.read()
        except SQLAlchemyError as exc:
            log.warning("metrics: database figures unavailable", error=str(exc).splitlines()[0])
            return [gauge("gradeflow_metrics_database_up", "Whether Postgres answered.", 0)]
        return [
            gauge("gradeflow_metrics_database_up", "Whether Postgres answered.", 1),
            *live_families(figures, self.known, self.queues),
        ]

    def read(self) -> LiveFigures:
        with self.engine.begin() as conn:
            limit_read_time(conn)
            return LiveFigures(
                job_counts(conn, LIVE_STATES, self.count_cap),
                oldest_due_seconds(conn, self.queues, self.count_cap),
                endpoint_health(conn),
            )


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def live_families(
    figures: LiveFigures, known: Sequence[tuple[str, str]], queues: Sequence[str]
) -> list[Metric]:
    """The scrape-time series, from what Postgres said."""
    jobs = GaugeMetricFamily(
        "gradeflow_jobs",
        "Jobs in async_jobs by queue, job type and state (queued, running, dead).",
        labels=["queue", "job_type", "state"],
    )
    keys = {(q, t, s) for q, t in known for s in LIVE_STATES} | set(figures.jobs.counts)
    for key in sorted(keys):
        jobs.add_metric(list(key), figures.jobs.counts.get(key, 0))
    capped = GaugeMetricFamily(
        "gradeflow_jobs_count_capped",
        "1 when a state's counts reached GRADEFLOW_METRICS_COUNT_CAP (they are lower bounds).",
        labels=["state"],
    )
    for state in LIVE_STATES:
        capped.add_metric([state], 1 if state in figures.jobs.capped else 0)
    oldest = GaugeMetricFamily(
        "gradeflow_oldest_queued_job_age_seconds",
        "How long the queue's oldest due queued job has waited since it was due.",
        labels=["queue"],
    )
    for queue in sorted(set(queues) | set(figures.oldest_due_seconds)):
        oldest.add_metric([queue], figures.oldest_due_seconds.get(queue, 0.0))
    endpoints = GaugeMetricFamily(
        "gradeflow_webhook_endpoints",
        "Webhook endpoints by health: healthy, failing (enabled, last attempt failed), disabled.",
        labels=["state"],
    )
    for state in ENDPOINT_STATES:
        endpoints.add_metric([state], figures.endpoints.by_state.get(state, 0))
    failing = gauge(
        "gradeflow_webhook_endpoint_longest_failing_seconds",
        "How long the enabled endpoint failing longest has failed without a success.",
        figures.endpoints.longest_failing_seconds,
    )
    return [jobs, capped, oldest, endpoints, failing]
