"""API clients: every read and write of ``api_clients``.

Only a key's SHA-256 and its first characters are ever stored; the key
itself is the caller's to hand out once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gradeflow.db.jobs import DriverCursor
from gradeflow.db.schema import ApiClient


def insert_client(
    session: Session, *, name: str, role: str, key_hash: str, key_prefix: str
) -> ApiClient:
    """Add a client holding the key whose hash is ``key_hash``."""
    client = ApiClient(name=name, role=role, key_hash=key_hash, key_prefix=key_prefix)
    session.add(client)
    session.flush()
    return client


def revoke_client(session: Session, client_id: uuid.UUID) -> ApiClient | None:
    """Revoke an active client's key now; ``None`` when it is unknown or already revoked."""
    return session.scalars(
        update(ApiClient)
        .where(ApiClient.id == client_id, ApiClient.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiClient),
        execution_options={"synchronize_session": False},
    ).one_or_none()


def get_client(session: Session, client_id: uuid.UUID) -> ApiClient | None:
    return session.get(ApiClient, client_id)


def active_client_by_key_hash(session: Session, key_hash: str) -> ApiClient | None:
    """The unrevoked client whose key hashes to ``key_hash``, read now (never cached)."""
    return session.scalars(
        select(ApiClient).where(ApiClient.key_hash == key_hash, ApiClient.revoked_at.is_(None))
    ).one_or_none()


@dataclass(frozen=True)
class KeyHolder:
    """The client a key belongs to, as a route that does its own database work needs it."""

    id: uuid.UUID
    role: str


def active_key_holder(cursor: DriverCursor, key_hash: str) -> KeyHolder | None:
    """:func:`active_client_by_key_hash` on a bare driver cursor (read now, never cached)."""
    cursor.execute(
        "SELECT id, role FROM api_clients WHERE key_hash = %(key_hash)s AND revoked_at IS NULL",
        {"key_hash": key_hash},
    )
    row = cursor.fetchone()
    return KeyHolder(*row) if row else None


def list_clients(session: Session) -> Sequence[ApiClient]:
    return session.scalars(select(ApiClient).order_by(ApiClient.created_at, ApiClient.id)).all()
