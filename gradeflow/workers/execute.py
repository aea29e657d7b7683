"""The one execute path of every job: admit → claim → run → decide → write.

Each step is a small function; ``execute`` only strings them together. The
database steps retry for a while when the connection drops (PostgreSQL
restarting): every one of them is a guarded statement, so a retry after a
commit whose answer was lost is a no-op.
"""

from __future__ import annotations

import functools
import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

import structlog
from dramatiq.middleware.time_limit import TimeLimitExceeded
from sqlalchemy.exc import DBAPIError, OperationalError
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

from gradeflow.db.jobs import (
    ClaimedJob,
    Message,
    autocommit_cursor,
    claim_job,
    complete_job,
    kill_job,
    postpone_job,
    requeue_job,
)
from gradeflow.jobs import states
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.errors import Snooze
from gradeflow.jobs.registry import JobContext, JobType, job_type
from gradeflow.jobs.retry import Decision, Failed, Outcome, RetryPolicy, Succeeded, decide
from gradeflow.workers.limits import SLOT_WAIT_SECONDS
from gradeflow.workers.messages import send_messages
from gradeflow.workers.metrics import observe_attempt
from gradeflow.workers.runtime import Runtime, get_runtime

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def execute(job_type_name: str, raw_job_id: str) -> None:
    """Run one attempt of job ``raw_job_id`` if it is still ours to run."""
    runtime = get_runtime()
    kind = job_type(job_type_name)
    job_id = uuid.UUID(raw_job_id)
    # A type with limits_at_call takes its concurrency slot around its call instead,
    # and computes in turns with the process's other threads (given up for the call).
    slot = nullcontext(None) if kind.limits_at_call else runtime.gate.running_slot(kind)
    turn = runtime.turns.held() if kind.limits_at_call else nullcontext()
    with turn, slot as wait:
        if wait is not None:
            postpone(runtime, job_id, wait)
            return
        job = claim(runtime, job_id)
        if job is None:
            return
        with (
            runtime.leases.holding(job.id),
            structlog.contextvars.bound_contextvars(
                job_id=str(job.id),
                job_type=kind.name,
                assessment_id=str(job.assessment_id or ""),
                client_id=str(job.client_id or ""),
            ),
            observe_attempt(kind.queue, kind.name) as attempt,
        ):
            context = context_for(runtime, kind, job)
            outcome = run_within_rate(runtime, kind, context)
            decision = decide(job.attempts, outcome, now(), policy_for(runtime, kind, job))
            attempt.decided(decision.status, refunded=decision.refund_attempt)
            write_decision(runtime, kind, context, job, decision)


def lost_connection(error: BaseException) -> bool:
    """True for errors that mean "the database went away", worth a retry."""
    return isinstance(error, OperationalError) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    )


_retrying = retry(
    retry=retry_if_exception(lost_connection),
    wait=wait_exponential(multiplier=0.1, max=2.0),
    stop=stop_after_delay(30),
    reraise=True,
)


def retry_on_lost_connection(step: Callable[P, T]) -> Callable[P, T]:
    """Run ``step``; once the connection is lost, retry it with backoff for up to 30 s.

    The first call goes straight through: tenacity's bookkeeping (about 40 µs a
    call, twice per job) is paid only after a connection was actually lost.
    """
    retrying = _retrying(step)

    @functools.wraps(step)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return step(*args, **kwargs)
        except Exception as exc:
            if not lost_connection(exc):
                raise
        return retrying(*args, **kwargs)

    return call


@retry_on_lost_connection
def postpone(runtime: Runtime, job_id: uuid.UUID, seconds: float) -> None:
    with runtime.autocommit.connect() as conn:
        postpone_job(conn, job_id, seconds)


@retry_on_lost_connection
def claim(runtime: Runtime, job_id: uuid.UUID) -> ClaimedJob | None:
    # Every job's hot path: one statement on a bare driver cursor, one round trip.
    with autocommit_cursor(runtime.engine) as cursor:
        # One owner per attempt, so a stale attempt in this same process (its lease
        # expired and the job was claimed again) can never write over the new one.
        owner = f"{runtime.worker_id}:{secrets.token_hex(4)}"
        return claim_job(cursor, job_id, owner, runtime.settings.lease_seconds)


def context_for(runtime: Runtime, kind: JobType, job: ClaimedJob) -> JobContext:
    context = JobContext(
        job_id=job.id,
        job_type=job.job_type,
        attempt=job.attempts,
        payload=job.payload or {},
        assessment_id=job.assessment_id,
        client_id=job.client_id,
        engine=runtime.engine,
    )
    if kind.limits_at_call:
        context.limited_call = lambda: limited_call(runtime, kind)
    return context


@contextmanager
def rate_slot(runtime: Runtime, kind: JobType) -> Iterator[None]:
    """One start counted under the type's per-minute limit for the block (and a window
    after it), or snooze the job (no attempt spent)."""
    with runtime.gate.counted_start(kind) as wait:
        if wait is not None:
            raise Snooze(wait, "per-minute limit reached")
        yield


@contextmanager
def limited_call(runtime: Runtime, kind: JobType) -> Iterator[None]:
    """One call under the type's limits: a concurrency slot held for the block (waiting a
    little for one to be given back) and one start counted under the per-minute limit;
    else snooze the job (no attempt spent). The attempt's compute turn is given up
    meanwhile and taken back, ahead of attempts still starting, when the call is done."""
    with (
        runtime.turns.given_up(),
        runtime.gate.running_slot(kind, wait_seconds=SLOT_WAIT_SECONDS) as wait,
    ):
        if wait is not None:
            raise Snooze(wait, "concurrency limit reached")
        with rate_slot(runtime, kind):  # last, so the limit counts requests as they leave
            yield


def run_within_rate(runtime: Runtime, kind: JobType, context: JobContext) -> Outcome:
    """Run the job if its type's per-minute limit has room, else snooze it (no attempt spent);
    a type with ``limits_at_call`` takes its limits itself, around its limited call."""
    if kind.limits_at_call:
        return run(kind, context)
    try:
        with rate_slot(runtime, kind):
            return run(kind, context)  # run() turns every error of the job into an outcome
    except Snooze as snooze:
        return Failed(snooze)


def run(kind: JobType, context: JobContext) -> Outcome:
    """Call the job's code; every way it can end becomes an outcome, never an escape."""
    try:
        kind.handler(context)
    except TimeLimitExceeded as exc:
        return Failed(exc, timed_out=True)
    except Exception as exc:
        return Failed(exc)
    return Succeeded()


def policy_for(runtime: Runtime, kind: JobType, job: ClaimedJob) -> RetryPolicy:
    settings = runtime.settings
    policy = kind.retry or RetryPolicy(
        max_attempts=settings.default_max_attempts,
        base_seconds=settings.retry_base_seconds,
        max_seconds=settings.retry_max_seconds,
        jitter=settings.retry_jitter,
    )
    return replace(policy, max_attempts=job.max_attempts) if job.max_attempts else policy


@retry_on_lost_connection
def write_decision(
    runtime: Runtime, kind: JobType, context: JobContext, job: ClaimedJob, decision: Decision
) -> None:
    """Apply ``decision`` with one guarded statement; follow-ups only with a success.

    When the guard finds the job no longer ours (cancelled, or rescued after
    our lease ran out) nothing is written and the follow-ups are dropped: the
    run that does own the job will enqueue them.
    """
    messages: list[Message] = []
    if decision.status == states.SUCCEEDED and only_completes(kind, context):
        # Every job's hot path: one statement on a bare driver cursor, one round trip.
        with autocommit_cursor(runtime.engine) as cursor:
            applied = complete_job(cursor, job.id, job.owner)
    else:
        applied, messages = write_in_transaction(runtime, kind, context, job, decision)
    if not applied:
        log.info("job was no longer ours; outcome not written", decided=decision.status)
    elif decision.status == states.DEAD:
        log.warning("job is dead", error=(decision.error or {}).get("message"))
    send_messages(runtime.broker, messages)


def only_completes(kind: JobType, context: JobContext) -> bool:
    """True when a success writes nothing but the job's own row."""
    return not context.follow_ups and not context.result_writes and kind.on_finish is None


def write_in_transaction(
    runtime: Runtime, kind: JobType, context: JobContext, job: ClaimedJob, decision: Decision
) -> tuple[bool, list[Message]]:
    """The decision's statement and, when it finishes the job, its result (on success),
    the follow-ups and the job type's finish hook, all in one transaction; return
    whether the guard matched and the messages to send after commit."""
    with runtime.engine.begin() as conn:
        if decision.status == states.QUEUED:
            assert decision.next_run_at is not None
            applied = requeue_job(
                conn,
                job.id,
                job.owner,
                decision.next_run_at,
                refund_attempt=decision.refund_attempt,
                error=decision.error,
            )
            return applied, []
        if decision.status == states.SUCCEEDED:
            applied = complete_job(conn, job.id, job.owner)
            new_jobs = list(context.follow_ups)
            if applied:
                for write in context.result_writes:
                    write(conn)
        else:
            assert decision.error is not None
            applied = kill_job(conn, job.id, job.owner, decision.error)
            new_jobs = []
        if not applied:
            return False, []
        if kind.on_finish is not None:
            new_jobs.extend(kind.on_finish(conn, context, decision.status))
        window = runtime.settings.dispatch_window
        return True, insert_new_jobs(conn, new_jobs, window).messages


def now() -> datetime:
    return datetime.now(UTC)
