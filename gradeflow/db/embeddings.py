"""``embedding_artifacts``: storing catalog vectors and searching them.

Writes run in the caller's transaction and never commit. Every read and write
names one provider: vectors of two providers live in different spaces, and a
query never compares them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, text
from sqlalchemy.dialects.postgresql import insert

from gradeflow.db.schema import CredentialCatalog, EmbeddingArtifact, RoleCatalog

CREDENTIAL = "credential"
ROLE = "role"

#: Candidates the HNSW graph search keeps (pgvector's default is 40). Measured by
#: ``gradeflow bench rag`` on 100,000 credentials: recall@10 0.91 at 40, 0.96 at 64,
#: 0.99 at 100 (BENCHMARKS.md); 100 leaves a margin for real embeddings.
DEFAULT_EF_SEARCH = 100


@dataclass(frozen=True)
class Artifact:
    """One entity's vector by one provider."""

    entity_type: str
    entity_id: uuid.UUID
    provider: str
    model: str
    vector: Sequence[float]


def upsert_artifacts(conn: Connection, artifacts: Sequence[Artifact]) -> None:
    """Write each artifact, replacing the entity's earlier vector by the same provider.

    Idempotent: an embed job that runs twice leaves one row with the same vector.
    ``created_at`` moves to now on replace, so it tells when the vector was made.
    """
    if not artifacts:
        return
    statement = insert(EmbeddingArtifact).values(
        [
            {
                "entity_type": a.entity_type,
                "entity_id": a.entity_id,
                "provider": a.provider,
                "model": a.model,
                "vector": list(a.vector),
            }
            for a in artifacts
        ]
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["entity_type", "entity_id", "provider"],
            set_={
                "model": statement.excluded.model,
                "vector": statement.excluded.vector,
                "created_at": func.now(),
            },
        )
    )


def artifact_vector(
    conn: Connection, entity_type: str, entity_id: uuid.UUID, provider: str
) -> list[float] | None:
    """The stored vector of one entity by one provider, if any."""
    found = conn.execute(
        select(EmbeddingArtifact.vector).where(
            EmbeddingArtifact.entity_type == entity_type,
            EmbeddingArtifact.entity_id == entity_id,
            EmbeddingArtifact.provider == provider,
        )
    ).scalar_one_or_none()
    return None if found is None else [float(x) for x in found]


# -- what gets embedded ----------------------------------------------------------------


@dataclass(frozen=True)
class CredentialForEmbedding:
    id: uuid.UUID
    title: str
    description: str | None
    skills: list[str]


@dataclass(frozen=True)
class RoleForEmbedding:
    id: uuid.UUID
    name: str
    description: str | None
    skills_profile: dict[str, Any]


def credential_for_embedding(
    conn: Connection, credential_id: uuid.UUID
) -> CredentialForEmbedding | None:
    row = conn.execute(
        select(
            CredentialCatalog.id,
            CredentialCatalog.title,
            CredentialCatalog.description,
            CredentialCatalog.skills,
        ).where(CredentialCatalog.id == credential_id)
    ).one_or_none()
    if row is None:
        return None
    return CredentialForEmbedding(row.id, row.title, row.description, list(row.skills or []))


def role_for_embedding(conn: Connection, role_id: uuid.UUID) -> RoleForEmbedding | None:
    row = conn.execute(
        select(
            RoleCatalog.id, RoleCatalog.name, RoleCatalog.description, RoleCatalog.skills_profile
        ).where(RoleCatalog.id == role_id)
    ).one_or_none()
    if row is None:
        return None
    return RoleForEmbedding(row.id, row.name, row.description, dict(row.skills_profile or {}))


def active_credential_ids(conn: Connection) -> list[uuid.UUID]:
    return list(
        conn.execute(
            select(CredentialCatalog.id)
            .where(CredentialCatalog.active.is_(True))
            .order_by(CredentialCatalog.created_at, CredentialCatalog.id)
        ).scalars()
    )


def active_role_ids(conn: Connection) -> list[uuid.UUID]:
    return list(
        conn.execute(
            select(RoleCatalog.id)
            .where(RoleCatalog.active.is_(True))
            .order_by(RoleCatalog.created_at, RoleCatalog.id)
        ).scalars()
    )


# -- retrieval -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Neighbour:
    credential_id: uuid.UUID
    #: Cosine similarity in [-1, 1]: 1 - pgvector's cosine distance.
    similarity: float
    #: The ``embedding_artifacts`` row that matched (what a RAG trace points at).
    artifact_id: uuid.UUID


#: Top-k over the HNSW index, filtered to active credentials of one provider. With
#: ``relaxed_order`` iterative scans, pgvector keeps walking the graph until k rows
#: pass the filter (up to ``hnsw.max_scan_tuples``), so a selective filter still
#: yields k rows; the rows may come slightly out of order, hence the outer sort.
_NEAREST = text(
    """
    WITH candidates AS MATERIALIZED (
        SELECT a.id, a.entity_id, a.vector <=> CAST(:query AS vector) AS distance
        FROM embedding_artifacts AS a
        JOIN credential_catalog AS c ON c.id = a.entity_id
        WHERE a.provider = :provider AND a.entity_type = 'credential' AND c.active
        ORDER BY a.vector <=> CAST(:query AS vector)
        LIMIT :k
    )
    SELECT id, entity_id, distance FROM candidates ORDER BY distance, entity_id
    """
)


def nearest_credentials(
    conn: Connection,
    vector: Sequence[float],
    provider: str,
    k: int,
    *,
    ef_search: int = DEFAULT_EF_SEARCH,
) -> list[Neighbour]:
    """The ``k`` active credentials nearest ``vector`` among ``provider``'s vectors.

    Sets its index-scan options with ``SET LOCAL``: they last until the caller's
    transaction ends and never leak into a pooled connection's next user.
    """
    set_search_options(conn, ef_search)
    rows = conn.execute(
        _NEAREST, {"query": vector_literal(vector), "provider": provider, "k": k}
    ).all()
    return [
        Neighbour(entity_id, 1.0 - float(distance), artifact_id)
        for artifact_id, entity_id, distance in rows
    ]


def explain_nearest(
    conn: Connection,
    vector: Sequence[float],
    provider: str,
    k: int,
    *,
    ef_search: int = DEFAULT_EF_SEARCH,
) -> str:
    """The plan of :func:`nearest_credentials`' query (benchmarks check it uses the index)."""
    set_search_options(conn, ef_search)
    rows = conn.execute(
        text("EXPLAIN " + _NEAREST.text),
        {"query": vector_literal(vector), "provider": provider, "k": k},
    ).scalars()
    return "\n".join(str(row) for row in rows)


def set_search_options(conn: Connection, ef_search: int) -> None:
    # set_config(..., is_local => true) is SET LOCAL with bind parameters.
    conn.execute(
        text(
            "SELECT set_config('hnsw.ef_search', :ef, true),"
            " set_config('hnsw.iterative_scan', 'relaxed_order', true)"
        ),
        {"ef": str(ef_search)},
    )


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text form, ``[x,y,…]``: the query vector as one bind parameter."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"
