"""The states of an ``async_jobs`` row, and the moves between them.

The names here and the ``ck_async_jobs_status`` CHECK constraint spell the same
set (``tests/integration/test_job_states.py`` compares them).
"""

from __future__ import annotations

from typing import Final

#: Waiting to run once ``next_run_at`` has passed. The dispatcher sends its
#: message; a worker claims it. Operators may cancel it.
QUEUED: Final = "queued"
#: Claimed by one worker, which holds a lease (``locked_by``/``locked_until``)
#: and extends it by heartbeat. The rescuer takes back expired leases.
RUNNING: Final = "running"
#: Finished successfully; ``completed_at`` is set. Removed by the pruner.
SUCCEEDED: Final = "succeeded"
#: Gave up: attempts exhausted, a permanent error, or a poison pill. Kept with
#: its ``error_payload`` until an operator retries it or the pruner removes it.
DEAD: Final = "dead"
#: Stopped by an operator or by the pipeline. An operator may retry it.
CANCELLED: Final = "cancelled"

ALL: Final = frozenset({QUEUED, RUNNING, SUCCEEDED, DEAD, CANCELLED})
#: States a job never leaves on its own (``completed_at`` is set in each).
FINISHED: Final = frozenset({SUCCEEDED, DEAD, CANCELLED})

#: Every allowed move; each is one guarded statement in ``gradeflow.db.jobs``.
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    # claim; cancel; rate-limit postponement (queued -> queued)
    QUEUED: frozenset({RUNNING, CANCELLED, QUEUED}),
    # complete; retry or snooze; give up; cancel; rescue or release of the lease
    RUNNING: frozenset({SUCCEEDED, QUEUED, DEAD, CANCELLED}),
    SUCCEEDED: frozenset(),
    # operator retry
    DEAD: frozenset({QUEUED}),
    CANCELLED: frozenset({QUEUED}),
}


def can_move(current: str, target: str) -> bool:
    """True when ``current -> target`` is an allowed transition."""
    return target in TRANSITIONS.get(current, frozenset())
