"""When a failed delivery is tried again: the retry schedule, jitter and ``Retry-After``.

Pure functions of their inputs (the clock and the randomness are passed in).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime


def next_delay(
    attempt: int,
    schedule: Sequence[float],
    jitter: float,
    retry_after: float | None,
    max_retry_after: float,
    rng: random.Random,
) -> float | None:
    """Seconds until attempt ``attempt + 1``, or ``None`` when ``attempt`` was the last.

    ``schedule[k]`` is the delay before attempt ``k + 1``. A receiver's
    ``Retry-After`` (clamped to ``max_retry_after``) wins when it asks for longer.
    """
    if attempt >= len(schedule):
        return None
    planned = schedule[attempt]
    delay = planned + rng.uniform(-jitter, jitter) * planned
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after))
    return max(0.0, delay)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
