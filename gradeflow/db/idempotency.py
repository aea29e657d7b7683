"""``idempotency_keys``: the first answer to a client's ``Idempotency-Key``, kept for replay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from gradeflow.db.schema import IdempotencyKey

#: ``response_status`` of a key whose request is still being processed.
IN_FLIGHT = 0


@dataclass(frozen=True)
class StoredKey:
    request_hash: str
    response_status: int
    response_body: dict[str, Any]


def claim_key(
    session: Session, client_id: uuid.UUID, key: str, request_hash: str
) -> StoredKey | None:
    """Claim ``key`` for this request (None), or return what an earlier request stored.

    The insert waits on a concurrent request holding the same key until that
    request's transaction ends, so the second of two simultaneous requests sees
    the first one's answer (or, if it was rolled back, claims the key itself).
    """
    claimed = session.execute(
        insert(IdempotencyKey)
        .values(
            client_id=client_id,
            key=key,
            request_hash=request_hash,
            response_status=IN_FLIGHT,
            response_body={},
        )
        .on_conflict_do_nothing(index_elements=["client_id", "key"])
        .returning(IdempotencyKey.key)
    ).scalar_one_or_none()
    if claimed is not None:
        return None
    row = session.execute(
        select(IdempotencyKey).where(
            IdempotencyKey.client_id == client_id, IdempotencyKey.key == key
        )
    ).scalar_one()
    return StoredKey(row.request_hash, row.response_status, row.response_body)


def store_response(
    session: Session, client_id: uuid.UUID, key: str, status: int, body: dict[str, Any]
) -> None:
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.client_id == client_id, IdempotencyKey.key == key)
        .values(response_status=status, response_body=body)
    )


def prune_keys(conn: Connection, older_than_hours: float) -> int:
    """Delete keys older than ``older_than_hours``; return how many."""
    result = conn.execute(
        text("DELETE FROM idempotency_keys WHERE created_at < now() - :h * interval '1 hour'"),
        {"h": older_than_hours},
    )
    return result.rowcount
