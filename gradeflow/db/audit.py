"""The audit log: who did what to which resource. Rows are only ever added.

Metadata must name resources, never carry a secret: no API key, key hash,
webhook secret or answer text goes into an audit row.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from gradeflow.db.schema import AuditLog


@dataclass(frozen=True)
class Actor:
    """Who acted: an API client (id and role), or the command line (no id, role ``cli``)."""

    id: uuid.UUID | None
    role: str


CLI_ACTOR = Actor(id=None, role="cli")


@dataclass(frozen=True)
class AuditEntry:
    actor: Actor
    action: str
    resource_type: str
    resource_id: uuid.UUID | None
    metadata: dict[str, Any] = field(default_factory=dict)


def record_audit(session: Session, entries: Sequence[AuditEntry]) -> None:
    """Append ``entries`` to the audit log in the caller's transaction."""
    if not entries:
        return
    session.execute(
        insert(AuditLog),
        [
            {
                "actor_id": e.actor.id,
                "actor_role": e.actor.role,
                "action": e.action,
                "resource_type": e.resource_type,
                "resource_id": e.resource_id,
                "metadata_": e.metadata,
            }
            for e in entries
        ],
    )
