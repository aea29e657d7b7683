"""Webhook endpoints (a submitter's own) and the delivery log with replay.

Submitters see and replay only their own endpoints' events (404 otherwise);
operators may list and redeliver every client's.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from gradeflow.api.auth import AnyClient, SubmitterClient, actor
from gradeflow.api.errors import ApiError, invalid_input
from gradeflow.api.schemas.errors import AUTHENTICATED, WITH_BODY, error_responses
from gradeflow.api.schemas.webhooks import (
    EndpointIn,
    EndpointList,
    EndpointOut,
    EndpointWithSecret,
    EventList,
    EventOut,
    EventQuery,
    RecoverOut,
    RecoverQuery,
    RedeliverOut,
)
from gradeflow.api.services import Services, get_services
from gradeflow.api.transaction import TransactionDep
from gradeflow.db.audit import AuditEntry, record_audit
from gradeflow.db.schema import ApiClient
from gradeflow.db.webhooks import (
    delete_endpoint,
    enable_endpoint,
    failed_events_since,
    find_endpoint,
    find_event,
    insert_endpoint,
    list_endpoints,
    list_events,
    rotate_secret,
)
from gradeflow.jobs.webhooks import ssrf
from gradeflow.jobs.webhooks.events import redeliveries
from gradeflow.jobs.webhooks.signing import message_id, new_secret

router = APIRouter(tags=["webhooks"])
ServicesDep = Annotated[Services, Depends(get_services)]


def owner_scope(client: ApiClient) -> uuid.UUID | None:
    """Whose events a client may see: its own, or everyone's for operators and admins."""
    return None if client.role in ("operator", "admin") else client.id


def missing(kind: str, item_id: uuid.UUID) -> ApiError:
    return ApiError(404, "not_found", f"no {kind} {item_id} of yours")


def vet_url(url: str, services: Services) -> None:
    """Refuse at registration what the delivery worker would refuse (a clear 422)."""
    settings = services.settings
    policy = ssrf.Policy.of(
        settings.webhook_allow_http, settings.webhook_allow_private, settings.webhook_allow_list
    )
    try:
        ssrf.vet(url, policy)
    except ssrf.UnsafeTarget as exc:
        raise invalid_input("body", ["url"], str(exc)) from None


@router.post(
    "/v1/webhook-endpoints",
    status_code=201,
    responses=error_responses(*AUTHENTICATED, *WITH_BODY),
)
def create_endpoint(
    body: EndpointIn, client: SubmitterClient, transaction: TransactionDep, services: ServicesDep
) -> EndpointWithSecret:
    """Register a URL for some event types; the answer shows the signing secret, once."""
    vet_url(body.url, services)
    secret = new_secret()
    conn = transaction.session.connection()
    record = insert_endpoint(conn, client.id, body.url, sorted(set(body.event_types)), secret)
    record_audit(
        transaction.session,
        [
            AuditEntry(
                actor(client), "webhook_endpoint.create", "webhook_endpoint", record.id,
                {"event_types": record.event_types},
            )
        ],
    )  # fmt: skip
    return EndpointWithSecret(**EndpointOut.from_record(record).model_dump(), secret=secret)


@router.get("/v1/webhook-endpoints", responses=error_responses(*AUTHENTICATED))
def get_endpoints(client: SubmitterClient, transaction: TransactionDep) -> EndpointList:
    rows = list_endpoints(transaction.session.connection(), client.id)
    return EndpointList(items=[EndpointOut.from_record(row) for row in rows])


@router.delete(
    "/v1/webhook-endpoints/{endpoint_id}",
    status_code=204,
    responses=error_responses(*AUTHENTICATED, 404),
)
def remove_endpoint(
    endpoint_id: uuid.UUID, client: SubmitterClient, transaction: TransactionDep
) -> None:
    if not delete_endpoint(transaction.session.connection(), endpoint_id, client.id):
        raise missing("webhook endpoint", endpoint_id)
    record_audit(
        transaction.session,
        [AuditEntry(actor(client), "webhook_endpoint.delete", "webhook_endpoint", endpoint_id)],
    )


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
    responses=error_responses(*AUTHENTICATED, 404),
)
def rotate_endpoint_secret(
    endpoint_id: uuid.UUID,
    client: SubmitterClient,
    transaction: TransactionDep,
    services: ServicesDep,
) -> EndpointWithSecret:
    """A new secret, shown once; the old one keeps signing for the overlap."""
    secret = new_secret()
    overlap = services.settings.webhook_secret_overlap_hours * 3600
    conn = transaction.session.connection()
    record = rotate_secret(conn, endpoint_id, client.id, secret, overlap)
    if record is None:
        raise missing("webhook endpoint", endpoint_id)
    record_audit(
        transaction.session,
        [AuditEntry(actor(client), "webhook_endpoint.rotate", "webhook_endpoint", endpoint_id)],
    )
    return EndpointWithSecret(**EndpointOut.from_record(record).model_dump(), secret=secret)


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/recover",
    responses=error_responses(*AUTHENTICATED, 404),
)
def recover_endpoint(
    endpoint_id: uuid.UUID,
    query: Annotated[RecoverQuery, Query()],
    client: SubmitterClient,
    transaction: TransactionDep,
) -> RecoverOut:
    """Re-enable the endpoint if disabled and redeliver its failed events since ``since``."""
    conn = transaction.session.connection()
    endpoint = find_endpoint(conn, endpoint_id, client.id)
    if endpoint is None:
        raise missing("webhook endpoint", endpoint_id)
    enabled = enable_endpoint(conn, endpoint_id)
    events = failed_events_since(conn, endpoint_id, query.since)
    jobs = redeliveries(conn, [(e, endpoint_id, client.id) for e in events])
    transaction.enqueue(jobs)
    meta = {"since": query.since.isoformat(), "redelivered": len(jobs), "enabled": enabled}
    record_audit(
        transaction.session,
        [
            AuditEntry(
                actor(client), "webhook_endpoint.recover", "webhook_endpoint", endpoint_id, meta
            )
        ],
    )
    return RecoverOut(redelivered=len(jobs), enabled=enabled)


@router.get("/v1/webhook-events", responses=error_responses(*AUTHENTICATED))
def get_events(
    query: Annotated[EventQuery, Query()], client: AnyClient, transaction: TransactionDep
) -> EventList:
    """Deliveries, newest first, each with its attempts."""
    rows = list_events(
        transaction.session.connection(),
        owner_scope(client),
        query.status,
        query.endpoint_id,
        query.limit,
    )
    return EventList(items=[EventOut.from_record(row, message_id(row.id)) for row in rows])


@router.post(
    "/v1/webhook-events/{event_id}/redeliver",
    status_code=202,
    responses=error_responses(*AUTHENTICATED, 404),
)
def redeliver_event(
    event_id: uuid.UUID, client: AnyClient, transaction: TransactionDep
) -> RedeliverOut:
    """Send the event again, once, with the same ``webhook-id`` and body."""
    conn = transaction.session.connection()
    event = find_event(conn, event_id, owner_scope(client))
    if event is None or event.endpoint_id is None:
        raise missing("webhook event", event_id)
    jobs = redeliveries(conn, [(event.id, event.endpoint_id, event.client_id)])
    transaction.enqueue(jobs)
    if jobs:  # a delivery already under way changes nothing: nothing to audit
        entry = AuditEntry(actor(client), "webhook_event.redeliver", "webhook_event", event_id)
        record_audit(transaction.session, [entry])
    return RedeliverOut(event_id=event_id, queued=bool(jobs))
