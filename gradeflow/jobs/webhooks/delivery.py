"""The ``deliver_webhook`` job, the Svix way: prepare → call → handle success or failure.

- prepare: load the event and its endpoint; skip what is not deliverable; keep
  the endpoint under its in-flight limit (else snooze: the job waits in
  Postgres, not in a worker thread); vet the URL (SSRF guard); sign.
- call: one POST to the vetted address (``http.post``).
- handle: decide (pure :func:`decide_delivery`), then write the attempt, the
  event's status and the endpoint's health in one transaction
  (``record_delivery``); then tell the engine to retry after the schedule's
  delay, or give up.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Connection

from gradeflow.db.audit import Actor, AuditEntry
from gradeflow.db.webhooks import (
    DeliveryRecord,
    DeliveryTarget,
    audit,
    fail_event,
    in_flight_ahead,
    load_delivery,
    record_delivery,
)
from gradeflow.jobs.errors import PermanentError, RetryAfter, Snooze
from gradeflow.jobs.registry import JobContext
from gradeflow.jobs.webhooks import http, signing, ssrf
from gradeflow.jobs.webhooks.schedule import next_delay, parse_retry_after
from gradeflow.metrics import record_webhook_attempt
from gradeflow.settings import Settings, get_settings

log = structlog.get_logger(__name__)

#: The audit log's actor for what the delivery worker decides on its own.
SYSTEM_ACTOR = Actor(id=None, role="system")
#: Bounds of the wait of a delivery whose endpoint already has its fill in flight.
BUSY_WAIT_SECONDS = (0.1, 5.0)


@dataclass(frozen=True)
class Prepared:
    target: DeliveryTarget
    vetted: ssrf.Target | None
    refusal: str | None
    body: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Verdict:
    """What one attempt means: the event's next status, the endpoint's fate, and
    when (if ever) to try again."""

    event_status: str
    succeeded: bool
    disable_reason: str | None
    retry_in: float | None


def deliver_webhook(ctx: JobContext) -> None:
    settings = get_settings()
    event_id, trigger = parse_payload(ctx.payload)
    prepared = prepare(ctx, settings, event_id)
    if prepared is None:
        return
    answer = call(prepared, settings)
    handle(ctx, settings, prepared, answer, trigger)


def parse_payload(payload: dict[str, object]) -> tuple[uuid.UUID, str]:
    try:
        return uuid.UUID(str(payload["event_id"])), str(payload.get("trigger", "scheduled"))
    except (KeyError, ValueError) as exc:
        raise PermanentError(f"bad deliver_webhook payload {payload!r}") from exc


def policy_of(settings: Settings) -> ssrf.Policy:
    return ssrf.Policy.of(
        settings.webhook_allow_http, settings.webhook_allow_private, settings.webhook_allow_list
    )


# -- prepare -----------------------------------------------------------------------


def prepare(ctx: JobContext, settings: Settings, event_id: uuid.UUID) -> Prepared | None:
    """Everything the call needs, or ``None`` when there is nothing to send."""
    with ctx.engine.begin() as conn:
        target = load_delivery(conn, event_id)
        if target is None or target.event_status != "pending":
            return None  # gone, or delivered by another run: a duplicate job
        if not target.endpoint_live:
            fail_event(conn, event_id)
            return None
        in_flight = in_flight_ahead(conn, target.endpoint_id, ctx.job_id)
        if in_flight.ahead >= settings.webhook_endpoint_in_flight:
            raise Snooze(busy_wait(in_flight.oldest_seconds), "endpoint busy")
    vetted, refusal = vet(target.url, settings)
    body = signing.body_of(target.payload)
    headers = signing.signed_headers(
        signing.message_id(event_id), target.now, body, target.signing_secrets
    )
    return Prepared(target, vetted, refusal, body, headers)


def busy_wait(oldest_seconds: float) -> float:
    """Wait about as long as the endpoint's oldest delivery in flight has run: a fast
    endpoint frees a slot within moments, a slow one holds it for seconds (and its
    waiting deliveries should not churn through claims meanwhile)."""
    low, high = BUSY_WAIT_SECONDS
    return min(high, max(low, oldest_seconds)) * random.uniform(0.5, 1.5)


def vet(url: str, settings: Settings) -> tuple[ssrf.Target | None, str | None]:
    try:
        return ssrf.vet(url, policy_of(settings)), None
    except ssrf.UnsafeTarget as exc:
        return None, f"refused by the SSRF guard: {exc}"


# -- call --------------------------------------------------------------------------


def call(prepared: Prepared, settings: Settings) -> http.Answer:
    if prepared.vetted is None:
        return http.Answer(status=None, latency_ms=0, error=prepared.refusal)
    return http.post(
        prepared.vetted, prepared.body, prepared.headers, settings.webhook_timeout_seconds
    )


# -- handle ------------------------------------------------------------------------


def decide_delivery(
    answer: http.Answer,
    attempt: int,
    trigger: str,
    failing_since: datetime | None,
    now: datetime,
    settings: Settings,
    rng: random.Random,
) -> Verdict:
    """Pure: 2xx delivers; 410 disables at once; anything else retries on the
    schedule (manual attempts are tried once), and a run of failures longer than
    the disable span disables the endpoint."""
    if answer.status is not None and 200 <= answer.status < 300:
        return Verdict("delivered", True, None, None)
    if answer.status == 410:
        return Verdict("failed", False, "the endpoint answered 410 Gone", None)
    disable = None
    span = timedelta(hours=settings.webhook_disable_after_hours)
    if failing_since is not None and now - failing_since >= span:
        disable = f"failing continuously since {failing_since.isoformat()}"
    delay = None
    if trigger == "scheduled" and disable is None:
        delay = next_delay(
            attempt,
            settings.webhook_retry_schedule,
            settings.webhook_retry_jitter,
            parse_retry_after(answer.retry_after, now),
            settings.webhook_max_retry_after_seconds,
            rng,
        )
    return Verdict("pending" if delay is not None else "failed", False, disable, delay)


def handle(
    ctx: JobContext, settings: Settings, prepared: Prepared, answer: http.Answer, trigger: str
) -> None:
    target = prepared.target
    now = datetime.now(UTC)
    verdict = decide_delivery(
        answer, ctx.attempt, trigger, target.failing_since, now, settings, random.Random()
    )
    write(ctx, target, answer, trigger, verdict)
    record_webhook_attempt(verdict.event_status, answer.status)
    if verdict.retry_in is not None:
        raise RetryAfter(verdict.retry_in, describe(answer))
    if verdict.event_status == "failed":
        raise PermanentError(f"webhook not delivered: {describe(answer)}")


def write(
    ctx: JobContext, target: DeliveryTarget, answer: http.Answer, trigger: str, verdict: Verdict
) -> None:
    record = DeliveryRecord(
        event_id=target.event_id,
        endpoint_id=target.endpoint_id,
        trigger=trigger,
        response_code=answer.status,
        latency_ms=answer.latency_ms,
        error=answer.error,
        response_body=answer.body,
        event_status=verdict.event_status,
        succeeded=verdict.succeeded,
        disable_reason=verdict.disable_reason,
    )
    with ctx.engine.begin() as conn:
        if record_delivery(conn, record) and verdict.disable_reason:
            audit_disable(conn, target.endpoint_id, verdict.disable_reason)


def audit_disable(conn: Connection, endpoint_id: uuid.UUID, reason: str) -> None:
    log.warning("webhook endpoint disabled", endpoint_id=str(endpoint_id), reason=reason)
    audit(
        conn,
        [
            AuditEntry(
                SYSTEM_ACTOR, "webhook_endpoint.disable", "webhook_endpoint", endpoint_id,
                {"reason": reason},
            )
        ],
    )  # fmt: skip


def describe(answer: http.Answer) -> str:
    if answer.status is not None:
        return f"HTTP {answer.status}"
    return answer.error or "no answer"
