"""Exceptions a job's code raises to steer the retry decision."""

from __future__ import annotations


class PermanentError(Exception):
    """Retrying cannot help (bad input, a 4xx from a provider): the job goes dead at once."""


class Snooze(Exception):
    """Not now, and not the job's fault (rate limited, ``Retry-After``): run again
    after ``seconds`` without spending an attempt."""

    def __init__(self, seconds: float, reason: str = "snoozed") -> None:
        super().__init__(reason)
        self.seconds = max(0.0, seconds)
        self.reason = reason


class RetryAfter(Exception):
    """This attempt failed and the job's own schedule says when to try again: run
    again after ``seconds``, spending the attempt (unlike :class:`Snooze`).

    The job's retry policy still caps the attempts; only the delay is the job's.
    """

    def __init__(self, seconds: float, reason: str = "retry later") -> None:
        super().__init__(reason)
        self.seconds = max(0.0, seconds)
        self.reason = reason
