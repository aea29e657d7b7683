"""``gradeflow webhooks redeliver|recover``: replay from the command line."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy import Connection

from gradeflow.db.audit import CLI_ACTOR, AuditEntry
from gradeflow.db.engine import make_engine
from gradeflow.db.webhooks import (
    audit,
    enable_endpoint,
    failed_events_since,
    find_endpoint,
    find_event,
)
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.registry import NewJob, load_job_types
from gradeflow.jobs.webhooks.events import redeliveries
from gradeflow.ops.context import fail, stack
from gradeflow.settings import get_settings
from gradeflow.workers.broker import get_broker
from gradeflow.workers.messages import send_messages

webhooks_app = typer.Typer(help="Replay webhook deliveries.")


def parse_id(raw: str, kind: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise fail(f"{raw!r} is not a {kind} id (a UUID)", 2) from None


@webhooks_app.command("redeliver")
def redeliver(event_id: Annotated[str, typer.Argument(help="The event to send again.")]) -> None:
    """Send one event again (same webhook-id and body), once."""
    parsed = parse_id(event_id, "webhook event")

    def plan(conn: Connection) -> list[NewJob]:
        event = find_event(conn, parsed, None)
        if event is None or event.endpoint_id is None:
            raise fail(f"no webhook event {parsed}", 1)
        jobs = redeliveries(conn, [(event.id, event.endpoint_id, event.client_id)])
        if jobs:  # a delivery already under way changes nothing: nothing to audit
            entry = AuditEntry(CLI_ACTOR, "webhook_event.redeliver", "webhook_event", parsed)
            audit(conn, [entry])
        return jobs

    sent = enqueue_in_transaction(plan)
    typer.echo(f"event {parsed} " + ("queued" if sent else "already has a delivery under way"))


@webhooks_app.command("recover")
def recover(
    endpoint_id: Annotated[str, typer.Argument(help="The endpoint to recover.")],
    since: Annotated[datetime, typer.Option(help="Redeliver failed events created since.")],
) -> None:
    """Re-enable a disabled endpoint and redeliver its failed events since ``--since``."""
    parsed = parse_id(endpoint_id, "webhook endpoint")

    def plan(conn: Connection) -> list[NewJob]:
        endpoint = find_endpoint(conn, parsed, None)
        if endpoint is None:
            raise fail(f"no webhook endpoint {parsed}", 1)
        enabled = enable_endpoint(conn, parsed)
        events = failed_events_since(conn, parsed, since)
        jobs = redeliveries(conn, [(e, parsed, endpoint.client_id) for e in events])
        meta = {"since": since.isoformat(), "redelivered": len(jobs), "enabled": enabled}
        audit(
            conn,
            [AuditEntry(CLI_ACTOR, "webhook_endpoint.recover", "webhook_endpoint", parsed, meta)],
        )
        return jobs

    sent = enqueue_in_transaction(plan)
    typer.echo(f"endpoint {parsed}: {sent} event(s) queued for redelivery")


def enqueue_in_transaction(plan: Callable[[Connection], list[NewJob]]) -> int:
    """Run ``plan`` in one transaction, insert the jobs it returns, send after commit."""
    load_job_types()
    with stack() as resolved:
        settings = get_settings()
        engine = make_engine(resolved.database_url, pool_size=None)
        with engine.begin() as conn:
            jobs = plan(conn)
            inserted = insert_new_jobs(conn, jobs, settings.dispatch_window)
        broker = get_broker(settings)
        send_messages(broker, inserted.messages)
        engine.dispose()
    return len(jobs)
