"""The scheduler's maintenance services, each a small object with one ``run_once``.

- :class:`Dispatcher` sends messages for due jobs that have none (new bursts,
  retries whose backoff ended, released leases), fairly across clients.
- :class:`Relay` re-sends messages the broker lost: all outstanding ones at
  once when Redis was flushed or restarted, and any left unclaimed too long.
- :class:`Rescuer` takes back jobs whose worker stopped renewing its lease.
- :class:`Pruner` deletes finished jobs and idempotency keys past their retention.
- :class:`PipelineSweeper` advances assessments whose jobs ended without doing so.
- :class:`PeriodicEnqueuer` enqueues cron-like jobs, once per slot.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import dramatiq
import redis
import structlog
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import Engine

from gradeflow.db.assessments import stalled_assessments
from gradeflow.db.idempotency import prune_keys
from gradeflow.db.jobs import (
    database_now,
    dispatch_due_jobs,
    prune_finished_jobs,
    relay_lost_messages,
    rescue_expired_leases,
)
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.pipeline import advance_assessment
from gradeflow.jobs.registry import NewJob
from gradeflow.jobs.snapshots import SNAPSHOT_METRICS
from gradeflow.settings import Settings
from gradeflow.workers.messages import send_messages

log = structlog.get_logger(__name__)

#: Messages one round of the dispatcher or relay sends at most.
BATCH = 2_000
#: A key the relay keeps in Redis; when it is gone, Redis lost its data.
EPOCH_KEY = "gradeflow:broker-epoch"


class Service:
    """A maintenance service; ``run_once`` returns how much work it did (0: idle)."""

    name = "service"
    #: The scheduler runs it at most this often; 0: every round (a busy round is 20 ms).
    every_seconds = 0.0

    def run_once(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Dispatcher(Service):
    engine: Engine
    broker: dramatiq.Broker
    window: int
    name = "dispatcher"

    def run_once(self) -> int:
        with self.engine.begin() as conn:
            messages = dispatch_due_jobs(conn, self.window, BATCH)
        return send_messages(self.broker, messages)


@dataclass
class Relay(Service):
    engine: Engine
    broker: dramatiq.Broker
    redis: redis.Redis | None
    relay_after_seconds: float
    name = "relay"
    #: When Redis was found empty; cleared once every message sent before it went out again.
    lost_at: datetime | None = None

    def run_once(self) -> int:
        with self.engine.begin() as conn:
            if self.broker_lost_its_data():
                self.lost_at = database_now(conn)
            messages = relay_lost_messages(
                conn, self.relay_after_seconds, BATCH, sent_before=self.lost_at
            )
        if messages:
            log.warning(
                "re-sending lost messages", jobs=len(messages), everything=self.lost_at is not None
            )
        sent = send_messages(self.broker, messages)
        if sent == len(messages) < BATCH:
            self.lost_at = None
        return sent

    def broker_lost_its_data(self) -> bool:
        """True once after Redis comes back empty (flushed, or restarted without its data)."""
        if self.redis is None:
            return False
        try:
            created = self.redis.set(EPOCH_KEY, uuid.uuid4().hex, nx=True)
        except redis.RedisError:
            return False
        return bool(created)


@dataclass
class Rescuer(Service):
    engine: Engine
    max_rescues: int
    name = "rescuer"

    def run_once(self) -> int:
        with self.engine.begin() as conn:
            result = rescue_expired_leases(conn, self.max_rescues)
        if result.requeued or result.dead:
            log.warning("rescued expired leases", requeued=result.requeued, dead=result.dead)
        return result.requeued + result.dead


@dataclass
class Pruner(Service):
    """Deletes finished jobs and idempotency keys past their retention."""

    engine: Engine
    retention_hours: float
    idempotency_hours: float
    name = "pruner"
    #: Retention is counted in hours: a minute late deletes nothing that matters.
    every_seconds = 60.0

    def run_once(self) -> int:
        with self.engine.begin() as conn:
            jobs = prune_finished_jobs(conn, self.retention_hours)
            return jobs + prune_keys(conn, self.idempotency_hours)


@dataclass
class PipelineSweeper(Service):
    """Advances assessments whose last job finished without advancing them.

    A job's finish hook advances its assessment; a job that an operator
    cancels, or that the rescuer gives up on, finishes without it. Each
    assessment is advanced in its own transaction, under its row lock.
    """

    engine: Engine
    broker: dramatiq.Broker
    window: int
    #: Leave assessments younger than this to their jobs' own hooks.
    grace_seconds: float = 5.0
    name = "pipeline-sweeper"
    #: Its scan reads every assessment in flight (tens of ms under a burst), and what
    #: it finds is already seconds late (``grace_seconds``): no need for every round.
    every_seconds = 2.0

    def run_once(self) -> int:
        with self.engine.connect() as conn:
            stalled = stalled_assessments(conn, self.grace_seconds, BATCH)
        for assessment_id in stalled:
            with self.engine.begin() as conn:
                new_jobs = advance_assessment(conn, assessment_id)
                messages = insert_new_jobs(conn, new_jobs, self.window).messages
            send_messages(self.broker, messages)
        return len(stalled)


@dataclass(frozen=True)
class PeriodicJob:
    """Enqueue ``job_type`` every ``every_seconds`` (slots aligned to the epoch)."""

    job_type: str
    every_seconds: int


def periodic_jobs(settings: Settings) -> list[PeriodicJob]:
    """Periodic jobs of the product; a period of 0 turns one off."""
    every = settings.metrics_snapshot_seconds
    return [PeriodicJob(SNAPSHOT_METRICS, every)] if every else []


@dataclass
class PeriodicEnqueuer(Service):
    engine: Engine
    broker: dramatiq.Broker
    jobs: list[PeriodicJob]
    window: int
    name = "periodic"

    def run_once(self) -> int:
        now = time.time()
        due = [
            NewJob(job.job_type, dedup_key=f"periodic:{int(now // job.every_seconds)}")
            for job in self.jobs
        ]
        if not due:
            return 0
        with self.engine.begin() as conn:
            messages = insert_new_jobs(conn, due, self.window).messages
        return send_messages(self.broker, messages)


def services(
    settings: Settings, engine: Engine, broker: dramatiq.Broker, redis_client: redis.Redis | None
) -> list[Service]:
    """Every maintenance service, configured from ``settings``.

    The relay's fast path (an epoch key that vanishes with Redis's data) only
    applies when Redis is the broker; with RabbitMQ it relies on the age rule.
    """
    epoch_redis = redis_client if isinstance(broker, RedisBroker) else None
    return [
        Relay(engine, broker, epoch_redis, settings.relay_after_seconds),
        Rescuer(engine, settings.max_rescues),
        Dispatcher(engine, broker, settings.dispatch_window),
        PeriodicEnqueuer(engine, broker, periodic_jobs(settings), settings.dispatch_window),
        Pruner(engine, settings.job_retention_hours, settings.idempotency_retention_hours),
        PipelineSweeper(engine, broker, settings.dispatch_window),
    ]
