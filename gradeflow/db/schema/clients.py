"""Who calls gradeflow (API clients) and what they did (audit log)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from gradeflow.db.base import Base, timestamp_now, uuid_pk

#: The roles of the HTTP API (DESIGN.md, "External contract").
CLIENT_ROLES = ("submitter", "operator", "admin")


class ApiClient(Base):
    """An upstream app or an operator holding an API key. Addition to seed 002."""

    __tablename__ = "api_clients"
    __table_args__ = (CheckConstraint(f"role IN {CLIENT_ROLES!r}", name="role"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    #: SHA-256 of the key; the key itself is shown once and never stored.
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    #: The key's first characters, so an operator can tell keys apart.
    key_prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = timestamp_now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditLog(Base):
    __tablename__ = "audit_logs"

    id: Mapped[uuid.UUID] = uuid_pk()
    actor_id: Mapped[uuid.UUID | None]
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    resource_type: Mapped[str] = mapped_column(String(32), nullable=False)
    resource_id: Mapped[uuid.UUID | None]
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    created_at: Mapped[datetime] = timestamp_now()
