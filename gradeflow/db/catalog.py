"""The catalog: roles, versioned questions and credentials (reads and writes).

Writes run in the caller's transaction and never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from gradeflow.db.schema import CredentialCatalog, Question, RoleCatalog


def insert_role(
    session: Session,
    *,
    name: str,
    description: str | None,
    skills_profile: dict[str, float],
    active: bool,
) -> RoleCatalog:
    role = RoleCatalog(
        name=name, description=description, skills_profile=skills_profile, active=active
    )
    session.add(role)
    session.flush()
    return role


def role_exists(session: Session, role_id: uuid.UUID) -> bool:
    return session.get(RoleCatalog, role_id) is not None


def list_roles(session: Session) -> Sequence[RoleCatalog]:
    return session.scalars(
        select(RoleCatalog).order_by(RoleCatalog.created_at, RoleCatalog.id)
    ).all()


@dataclass(frozen=True)
class NewQuestion:
    role_id: uuid.UUID
    question_type: str
    prompt: str
    choices: list[dict[str, Any]] | None
    rubric: dict[str, Any]
    weight: Decimal
    version: str
    #: The lineage to join (``None``: this question starts its own lineage).
    lineage_id: uuid.UUID | None = None
    supersedes_id: uuid.UUID | None = None


def insert_question(session: Session, new: NewQuestion) -> Question:
    """Add an active question; a lineage's first version is its own lineage id."""
    question_id = uuid.uuid4()
    fields = {**asdict(new), "lineage_id": new.lineage_id or question_id}
    question = Question(id=question_id, active=True, **fields)
    session.add(question)
    session.flush()
    return question


def retire_question(session: Session, question_id: uuid.UUID) -> Question | None:
    """Deactivate the active question ``question_id`` (a newer version replaces it).

    Returns the retired row, with its lineage id filled in for rows that predate
    lineages; ``None`` when there is no such question or it is already inactive.
    The row lock it takes serialises concurrent new versions of one lineage.
    """
    return session.scalars(
        update(Question)
        .where(Question.id == question_id, Question.active.is_(True))
        .values(active=False, lineage_id=func.coalesce(Question.lineage_id, Question.id))
        .returning(Question),
        execution_options={"synchronize_session": False},
    ).one_or_none()


def get_question(session: Session, question_id: uuid.UUID) -> Question | None:
    return session.get(Question, question_id)


def version_exists(session: Session, lineage_id: uuid.UUID, version: str) -> bool:
    found = session.scalar(
        select(Question.id).where(Question.lineage_id == lineage_id, Question.version == version)
    )
    return found is not None


def list_questions(
    session: Session, *, role_id: uuid.UUID | None, include_inactive: bool
) -> Sequence[Question]:
    query = select(Question).order_by(Question.created_at, Question.id)
    if role_id is not None:
        query = query.where(Question.role_id == role_id)
    if not include_inactive:
        query = query.where(Question.active.is_(True))
    return session.scalars(query).all()


@dataclass(frozen=True)
class NewCredential:
    title: str
    description: str | None
    skills: list[str]
    provider: str | None
    metadata: dict[str, Any] | None
    active: bool


def insert_credentials(
    session: Session, credentials: Sequence[NewCredential]
) -> Sequence[CredentialCatalog]:
    """Add every credential in one batched statement; rows come back in input order."""
    rows = [{**asdict(c), "metadata_": c.metadata} for c in credentials]
    for row in rows:
        del row["metadata"]
    return session.scalars(
        insert(CredentialCatalog).returning(CredentialCatalog, sort_by_parameter_order=True),
        rows,
    ).all()


def list_credentials(
    session: Session, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> Sequence[CredentialCatalog]:
    """Up to ``limit`` credentials in (created_at, id) order, after the keyset ``after``."""
    query = select(CredentialCatalog).order_by(CredentialCatalog.created_at, CredentialCatalog.id)
    if after is not None:
        query = query.where(
            tuple_(CredentialCatalog.created_at, CredentialCatalog.id) > tuple_(*after)
        )
    return session.scalars(query.limit(limit)).all()
