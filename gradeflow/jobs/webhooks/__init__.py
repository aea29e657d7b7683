"""Webhook delivery: Standard Webhooks signing, retries on a schedule, endpoint
health, replay and an SSRF guard.

- ``events``: :func:`emit_event` (called in the transaction of the state change)
  and manual redeliveries.
- ``delivery``: the ``deliver_webhook`` job (queue ``webhooks``), prepare → call → handle.
- ``signing``, ``ssrf``, ``http``, ``schedule``: its parts.
"""

from __future__ import annotations

from gradeflow.jobs.registry import JobType, register
from gradeflow.jobs.retry import RetryPolicy
from gradeflow.jobs.webhooks.delivery import deliver_webhook
from gradeflow.jobs.webhooks.events import DELIVER_WEBHOOK, EVENT_TYPES, emit_event
from gradeflow.settings import get_settings

__all__ = ["DELIVER_WEBHOOK", "DELIVER_WEBHOOK_JOB", "EVENT_TYPES", "emit_event"]


def _job_type() -> JobType:
    settings = get_settings()
    # The handler names each retry's delay (RetryAfter); the policy only caps the
    # attempts at the schedule's length, and backs off if the handler itself crashes.
    policy = RetryPolicy(max_attempts=len(settings.webhook_retry_schedule), base_seconds=5.0)
    return JobType(
        name=DELIVER_WEBHOOK,
        handler=deliver_webhook,
        queue="webhooks",
        retry=policy,
        time_limit_seconds=settings.webhook_timeout_seconds * 2 + 30,
    )


DELIVER_WEBHOOK_JOB = register(_job_type())
