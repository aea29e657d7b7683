"""What assessments are made of: roles, questions, credentials, and their embeddings."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gradeflow.db.base import Base, timestamp_now, uuid_pk

QUESTION_TYPES = ("multiple_choice", "essay", "profile")
#: Every embedding is 384-d, whichever provider made it (DESIGN.md, "embeddings").
EMBEDDING_DIMENSIONS = 384


class RoleCatalog(Base):
    __tablename__ = "role_catalog"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    skills_profile: Mapped[dict[str, Any] | None]
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = timestamp_now()


class Question(Base):
    """A question of a role. A new version is a new row of the same lineage; the row it
    supersedes is deactivated and kept, because assessment snapshots copied it."""

    __tablename__ = "questions"
    __table_args__ = (
        CheckConstraint(f"question_type IN {QUESTION_TYPES!r}", name="question_type"),
        Index("idx_questions_role", "role_id"),
        # Addition: each version string appears once per lineage ...
        UniqueConstraint("lineage_id", "version"),
        # ... and a lineage has at most one active version.
        Index(
            "uq_questions_active_lineage",
            "lineage_id",
            unique=True,
            postgresql_where=text("active"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    role_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("role_catalog.id"))
    question_type: Mapped[str] = mapped_column(String(32), nullable=False)
    prompt: Mapped[str] = mapped_column(Text, nullable=False)
    #: A list of ``{"id", "text"}`` objects (JSONB).
    choices: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    rubric: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    weight: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False)
    version: Mapped[str] = mapped_column(String(32), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = timestamp_now()
    #: Addition: the id of the lineage's first version, shared by every later version.
    lineage_id: Mapped[uuid.UUID | None]
    #: Addition: the version this row replaced (NULL for a lineage's first version).
    supersedes_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("questions.id"))


class CredentialCatalog(Base):
    __tablename__ = "credential_catalog"
    #: Addition: the keyset order of ``GET /v1/credentials``.
    __table_args__ = (Index("idx_credential_catalog_created_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    title: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    skills: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    provider: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = timestamp_now()


class EmbeddingArtifact(Base):
    __tablename__ = "embedding_artifacts"
    __table_args__ = (
        UniqueConstraint("entity_type", "entity_id", "provider"),
        Index("idx_embedding_artifacts_provider", "provider"),
        # Cosine HNSW: the only index retrieval uses (pgvector >= 0.5).
        Index(
            "idx_embedding_artifacts_vector_hnsw",
            "vector",
            postgresql_using="hnsw",
            postgresql_ops={"vector": "vector_cosine_ops"},
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    entity_type: Mapped[str] = mapped_column(String(32), nullable=False)
    entity_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    #: Addition: the model behind the provider (e.g. all-MiniLM-L6-v2).
    model: Mapped[str | None] = mapped_column(String(128))
    vector: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIMENSIONS), nullable=True)
    raw_embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = timestamp_now()
