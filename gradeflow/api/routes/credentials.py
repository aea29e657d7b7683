"""``POST /v1/credentials`` (one or up to 1,000) and ``GET /v1/credentials`` (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gradeflow.api.auth import AdminClient, actor
from gradeflow.api.errors import invalid_input
from gradeflow.api.pagination import decode_cursor, encode_cursor
from gradeflow.api.schemas.credentials import (
    CredentialOut,
    CredentialPage,
    CredentialQuery,
    CredentialsIn,
)
from gradeflow.api.schemas.errors import AUTHENTICATED, WITH_BODY, error_responses
from gradeflow.api.transaction import TransactionDep
from gradeflow.db.audit import AuditEntry, record_audit
from gradeflow.db.catalog import insert_credentials, list_credentials
from gradeflow.jobs.embeddings import EMBED_CREDENTIAL
from gradeflow.jobs.registry import NewJob

router = APIRouter(prefix="/v1/credentials", tags=["catalog"])


@router.post("", status_code=201, responses=error_responses(*AUTHENTICATED, *WITH_BODY))
def create_credentials(
    body: CredentialsIn, client: AdminClient, transaction: TransactionDep
) -> CredentialOut | list[CredentialOut]:
    """Add one credential, or a list of up to 1,000 (all or none); each gets an embed job.

    The answer has the body's shape: an object for an object, a list for a list.
    """
    session = transaction.session
    rows = insert_credentials(session, [item.to_new() for item in body.items()])
    transaction.enqueue(
        [
            NewJob(EMBED_CREDENTIAL, payload={"credential_id": str(row.id)}, client_id=client.id)
            for row in rows
        ]
    )
    record_audit(
        session,
        [
            AuditEntry(
                actor(client), "credential.create", "credential", row.id, {"title": row.title}
            )
            for row in rows
        ],
    )
    created = [CredentialOut.from_row(row) for row in rows]
    return created if isinstance(body.root, list) else created[0]


@router.get("", responses=error_responses(*AUTHENTICATED))
def get_credentials(
    query: Annotated[CredentialQuery, Query()], client: AdminClient, transaction: TransactionDep
) -> CredentialPage:
    """Credentials in creation order, ``limit`` per page; follow ``next_cursor``."""
    try:
        after = decode_cursor(query.cursor) if query.cursor else None
    except ValueError as exc:
        raise invalid_input("query", ["cursor"], str(exc)) from None
    rows = list_credentials(transaction.session, after=after, limit=query.limit + 1)
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return CredentialPage(
        items=[CredentialOut.from_row(row) for row in page],
        next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if more else None,
    )
