"""Job types: what code runs for a ``job_type``, on which queue, under which limits."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from gradeflow.jobs.retry import RetryPolicy

#: The queues workers listen on, one worker group each.
QUEUES = ("cpu", "llm", "webhooks")


@dataclass(frozen=True)
class NewJob:
    """A job to insert: the input of ``gradeflow.db.jobs.insert_jobs``."""

    job_type: str
    payload: dict[str, Any] = field(default_factory=dict)
    assessment_id: uuid.UUID | None = None
    client_id: uuid.UUID | None = None
    dedup_key: str | None = None
    max_attempts: int | None = None


@dataclass
class JobContext:
    """What a job's code gets: its row's data, the database, and a way to enqueue
    follow-up jobs that are written in the same transaction as its completion."""

    job_id: uuid.UUID
    job_type: str
    attempt: int
    payload: dict[str, Any]
    assessment_id: uuid.UUID | None
    client_id: uuid.UUID | None
    engine: Engine
    follow_ups: list[NewJob] = field(default_factory=list)
    #: The job's result, written in the transaction that completes it (before its
    #: type's ``on_finish`` reads it), and only if the completion is this attempt's.
    result_writes: list[Callable[[Connection], None]] = field(default_factory=list)
    #: For job types with ``limits_at_call``: ``with ctx.limited_call(): ...`` around
    #: the one call the limits are about holds a concurrency slot for the block and
    #: counts one start under the per-minute limit, or raises
    #: :class:`~gradeflow.jobs.errors.Snooze` (no attempt spent).
    limited_call: Callable[[], AbstractContextManager[None]] = nullcontext

    def enqueue(self, job: NewJob) -> None:
        """Enqueue ``job`` when (and only if) this job succeeds."""
        self.follow_ups.append(job)

    def write_result(self, write: Callable[[Connection], None]) -> None:
        """Run ``write`` in the transaction that completes this job, if it succeeds: one
        transaction (and its round trips) fewer than writing the result on its own."""
        self.result_writes.append(write)


Handler = Callable[[JobContext], None]

#: Called inside the transaction that makes a job ``succeeded`` or ``dead`` (the
#: status is its third argument), right after that guarded transition matched;
#: the jobs it returns are inserted in the same transaction. This is where a
#: pipeline fans in: two jobs finishing at once serialise on whatever row the
#: hook locks, and the later one sees the earlier one's finish.
FinishHook = Callable[[Connection, JobContext, str], Sequence[NewJob]]


@dataclass(frozen=True)
class JobType:
    """A kind of work. Limits are global across every worker process."""

    name: str
    handler: Handler
    queue: str = "cpu"
    #: None: the settings' default policy (GRADEFLOW_RETRY_*, GRADEFLOW_DEFAULT_MAX_ATTEMPTS).
    retry: RetryPolicy | None = None
    #: Seconds one attempt may run before it is interrupted and retried.
    time_limit_seconds: float = 600.0
    #: At most this many attempts run at once, across all workers (None: no limit).
    concurrency: int | None = None
    #: At most this many attempts start per minute, across all workers (None: no limit).
    per_minute: int | None = None
    #: Take the limits around the limited call (``with ctx.limited_call():``) rather
    #: than for the whole attempt: both are about the calls to a provider. A busy
    #: worker can take seconds from start to call, and the work before and after the
    #: call (reading, writing the result) need not hold one of the provider's slots.
    limits_at_call: bool = False
    #: What to do in the transaction that finishes a job (None: nothing).
    on_finish: FinishHook | None = None


_registry: dict[str, JobType] = {}


def register(job_type: JobType) -> JobType:
    """Make ``job_type`` known to enqueuers and workers (idempotent by name)."""
    _registry[job_type.name] = job_type
    return job_type


def job_type(name: str) -> JobType:
    """The registered job type called ``name``; ``KeyError`` when none is."""
    return _registry[name]


def registered() -> list[JobType]:
    return list(_registry.values())


#: The modules whose import registers every job type of gradeflow. Workers import
#: them to declare actors, the API and the CLI to route jobs to the right queue.
JOB_MODULES = (
    "gradeflow.jobs.builtin",
    "gradeflow.jobs.rules",
    "gradeflow.jobs.essays",
    "gradeflow.jobs.embeddings",
    "gradeflow.jobs.webhooks",
    "gradeflow.jobs.snapshots",
    "gradeflow.jobs.recommendations",
)


def load_job_types(extra: Sequence[str] = ()) -> None:
    """Import :data:`JOB_MODULES` and ``extra``, registering their job types."""
    for module in (*JOB_MODULES, *extra):
        importlib.import_module(module.strip())


def queue_of(name: str) -> str:
    """The queue a job type's messages go to (``cpu`` for unknown types)."""
    found = _registry.get(name)
    return found.queue if found else "cpu"
