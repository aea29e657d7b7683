"""``idempotency_keys``: the first answer to a client's ``Idempotency-Key``, kept for replay.

Claims and answers are written on the intake's bare driver cursor, inside the
submission's transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Connection, text

from gradeflow.db.jobs import DriverCursor

#: ``response_status`` of a key whose request is still being processed.
IN_FLIGHT = 0


@dataclass(frozen=True)
class StoredKey:
    request_hash: str
    response_status: int
    response_body: dict[str, Any]


_CLAIM = (
    "INSERT INTO idempotency_keys (client_id, key, request_hash, response_status, response_body)"
    " VALUES (%(client_id)s, %(key)s, %(request_hash)s, %(in_flight)s, '{}')"
    " ON CONFLICT (client_id, key) DO NOTHING RETURNING key"
)
_STORED = (
    "SELECT request_hash, response_status, response_body FROM idempotency_keys"
    " WHERE client_id = %(client_id)s AND key = %(key)s"
)
_STORE = (
    "UPDATE idempotency_keys SET response_status = %(status)s, response_body = %(body)s"
    " WHERE client_id = %(client_id)s AND key = %(key)s"
)


def claim_key(
    cursor: DriverCursor, client_id: uuid.UUID, key: str, request_hash: str
) -> StoredKey | None:
    """Claim ``key`` for this request (None), or return what an earlier request stored.

    The insert waits on a concurrent request holding the same key until that
    request's transaction ends, so the second of two simultaneous requests sees
    the first one's answer (or, if it was rolled back, claims the key itself).
    """
    where = {"client_id": client_id, "key": key}
    cursor.execute(_CLAIM, {**where, "request_hash": request_hash, "in_flight": IN_FLIGHT})
    if cursor.fetchone() is not None:
        return None
    cursor.execute(_STORED, where)
    row = cursor.fetchone()
    if row is None:  # pruned between the two statements: a day-old key, claimed again
        return claim_key(cursor, client_id, key, request_hash)
    return StoredKey(*row)


def store_response(
    cursor: DriverCursor, client_id: uuid.UUID, key: str, status: int, body: dict[str, Any]
) -> None:
    where = {"client_id": client_id, "key": key}
    cursor.execute(_STORE, {**where, "status": status, "body": Jsonb(body)})


def prune_keys(conn: Connection, older_than_hours: float) -> int:
    """Delete keys older than ``older_than_hours``; return how many."""
    result = conn.execute(
        text("DELETE FROM idempotency_keys WHERE created_at < now() - :h * interval '1 hour'"),
        {"h": older_than_hours},
    )
    return result.rowcount
