"""The retry decision: a pure function from a job's outcome to its next state.

Nothing here touches the database or the clock; ``gradeflow.workers.execute``
gathers the inputs and ``gradeflow.db.jobs.write_decision`` applies the result.
"""

from __future__ import annotations

import random
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta

from gradeflow.jobs import states
from gradeflow.jobs.errors import PermanentError, RetryAfter, Snooze


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: ``base * 2**(attempt-1)``, capped, ``±jitter``."""

    max_attempts: int = 5
    base_seconds: float = 2.0
    max_seconds: float = 3600.0
    jitter: float = 0.2

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        raw = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        spread = raw * self.jitter
        return float(max(0.0, raw + (rng or random).uniform(-spread, spread)))


@dataclass(frozen=True)
class Succeeded:
    pass


@dataclass(frozen=True)
class Failed:
    """The job's code raised ``error`` (``timed_out`` when its time limit hit)."""

    error: BaseException
    timed_out: bool = False


Outcome = Succeeded | Failed


@dataclass(frozen=True)
class Decision:
    """What to write: the next state, when to run again, whether an attempt was spent."""

    status: str
    next_run_at: datetime | None = None
    refund_attempt: bool = False
    error: dict[str, object] | None = None


def decide(
    attempt: int,
    outcome: Outcome,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> Decision:
    """The next state of a job that just ran its ``attempt``-th attempt."""
    if isinstance(outcome, Succeeded):
        return Decision(states.SUCCEEDED)
    error = describe_error(outcome.error, attempt, now, timed_out=outcome.timed_out)
    if isinstance(outcome.error, Snooze):
        delay = timedelta(seconds=outcome.error.seconds)
        return Decision(states.QUEUED, now + delay, refund_attempt=True, error=None)
    if isinstance(outcome.error, PermanentError) or attempt >= policy.max_attempts:
        return Decision(states.DEAD, error=error)
    delay = timedelta(seconds=retry_delay(outcome.error, attempt, policy, rng))
    return Decision(states.QUEUED, now + delay, error=error)


def retry_delay(
    error: BaseException, attempt: int, policy: RetryPolicy, rng: random.Random | None
) -> float:
    """Seconds until the next attempt: the job's own delay when it named one
    (:class:`RetryAfter`), else the policy's backoff."""
    if isinstance(error, RetryAfter):
        return error.seconds
    return policy.backoff(attempt, rng)


def describe_error(
    error: BaseException, attempt: int, now: datetime, *, timed_out: bool = False
) -> dict[str, object]:
    """The record of one failure kept in ``error_payload``: type, message, traceback."""
    return {
        "attempt": attempt,
        "at": now.isoformat(),
        "type": type(error).__name__,
        "message": str(error)[:2000],
        "timed_out": timed_out,
        "permanent": isinstance(error, PermanentError),
        "traceback": "".join(traceback.format_exception(error))[-8000:],
    }
