"""Sending job messages: after commit, carrying only the job id."""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
import structlog

from gradeflow.db.jobs import Message

log = structlog.get_logger(__name__)


def send_messages(broker: dramatiq.Broker, messages: Sequence[Message]) -> int:
    """Send one Dramatiq message per job; return how many went out.

    A message that cannot be sent is not an error here: its job stays
    ``queued`` in Postgres and the relay sends it again later.
    """
    sent = 0
    for message in messages:
        try:
            broker.enqueue(
                dramatiq.Message(
                    queue_name=message.queue_name,
                    actor_name=message.job_type,
                    args=(str(message.job_id),),
                    kwargs={},
                    options={},
                )
            )
        except Exception as exc:  # the broker is down: the relay will send them
            log.warning(
                "message send failed; relay will retry", error=str(exc), unsent=len(messages) - sent
            )
            break
        sent += 1
    return sent
