"""``embedding_artifacts`` on a real PostgreSQL with pgvector: idempotent upserts, and the
filtered top-k over the HNSW index that still returns k rows (iterative index scans)."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gradeflow.db.catalog import NewCredential, insert_credentials
from gradeflow.db.embeddings import (
    CREDENTIAL,
    ROLE,
    Artifact,
    artifact_vector,
    explain_nearest,
    nearest_credentials,
    upsert_artifacts,
)
from gradeflow.jobs.embeddings.hashing import hash_vector

INDEX = "idx_embedding_artifacts_vector_hnsw"


def unit(values: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def random_unit(rng: random.Random) -> list[float]:
    return unit([rng.gauss(0, 1) for _ in range(384)])


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def add_credentials(
    engine: Engine, count: int, active: Sequence[bool] | None = None
) -> list[uuid.UUID]:
    with Session(engine) as session, session.begin():
        rows = insert_credentials(
            session,
            [
                NewCredential(
                    f"Credential {i}", None, [], None, None, active[i] if active else True
                )
                for i in range(count)
            ],
        )
        return [row.id for row in rows]


def artifact_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text(
                    "SELECT entity_type, entity_id, provider, model FROM embedding_artifacts"
                    " ORDER BY provider"
                )
            )
        ]


def test_upsert_is_idempotent_and_replaces_the_vector(engine: Engine) -> None:
    [credential] = add_credentials(engine, 1)
    first = Artifact(CREDENTIAL, credential, "hash", "v1", hash_vector("SQL basics"))
    for _ in range(2):
        with engine.begin() as conn:
            upsert_artifacts(conn, [first])
    assert artifact_rows(engine) == [(CREDENTIAL, credential, "hash", "v1")]

    replaced = Artifact(CREDENTIAL, credential, "hash", "v2", hash_vector("Advanced SQL"))
    with engine.begin() as conn:
        upsert_artifacts(conn, [replaced])
        stored = artifact_vector(conn, CREDENTIAL, credential, "hash")
    assert artifact_rows(engine) == [(CREDENTIAL, credential, "hash", "v2")]
    assert stored is not None
    assert cosine(stored, replaced.vector) > 0.9999


def test_one_row_per_provider_and_searches_never_mix_them(engine: Engine) -> None:
    first, second = add_credentials(engine, 2)
    rng = random.Random(1)
    local_vector = random_unit(rng)
    with engine.begin() as conn:
        upsert_artifacts(
            conn,
            [
                Artifact(CREDENTIAL, first, "hash", "h", hash_vector("cloud security")),
                Artifact(CREDENTIAL, first, "local", "m", local_vector),
                Artifact(CREDENTIAL, second, "local", "m", random_unit(rng)),
                # A role with the very same vector: a credential search must not return it.
                Artifact(ROLE, uuid.uuid4(), "local", "m", local_vector),
            ],
        )
    with engine.begin() as conn:
        by_hash = nearest_credentials(conn, local_vector, "hash", k=10)
        by_local = nearest_credentials(conn, local_vector, "local", k=10)
    assert [n.credential_id for n in by_hash] == [first]
    assert by_local[0].credential_id == first
    assert {n.credential_id for n in by_local} == {first, second}
    assert math.isclose(by_local[0].similarity, 1.0, abs_tol=1e-5)


def test_a_selective_filter_still_returns_k_rows_through_the_index(engine: Engine) -> None:
    """The 150 nearest credentials are inactive: a plain HNSW scan (ef_search 40) finds
    only inactive ones and returns nothing; the iterative scan walks on until k pass."""
    rng = random.Random(7)
    query = random_unit(rng)
    near = [unit([q + rng.gauss(0, 0.5 / math.sqrt(384)) * 3 for q in query]) for _ in range(400)]
    vectors = near + [random_unit(rng) for _ in range(1600)]
    ranked = sorted(range(len(vectors)), key=lambda i: -cosine(query, vectors[i]))
    inactive = set(ranked[:150])
    ids = add_credentials(engine, len(vectors), [i not in inactive for i in range(len(vectors))])
    with engine.begin() as conn:
        upsert_artifacts(
            conn, [Artifact(CREDENTIAL, ids[i], "local", "m", v) for i, v in enumerate(vectors)]
        )
        conn.execute(text("ANALYZE embedding_artifacts"))
        conn.execute(text("ANALYZE credential_catalog"))
    exact = [ids[i] for i in ranked if i not in inactive][:10]

    with engine.begin() as conn:
        assert INDEX in explain_nearest(conn, query, "local", 10, ef_search=40)
        found = nearest_credentials(conn, query, "local", 10, ef_search=40)
    assert len(found) == 10
    assert len({n.credential_id for n in found} & set(exact)) >= 9
    assert [n.similarity for n in found] == sorted((n.similarity for n in found), reverse=True)

    with engine.begin() as conn:  # the same search without iterative scans comes up short
        nearest_credentials(conn, query, "local", 10, ef_search=40)
        conn.execute(text("SELECT set_config('hnsw.iterative_scan', 'off', true)"))
        rows = conn.execute(
            text(
                "SELECT a.entity_id FROM embedding_artifacts a"
                " JOIN credential_catalog c ON c.id = a.entity_id"
                " WHERE a.provider = 'local' AND c.active"
                " ORDER BY a.vector <=> CAST(:q AS vector) LIMIT 10"
            ),
            {"q": str(query)},
        ).all()
    assert len(rows) < 10


def test_search_options_do_not_leak_past_the_transaction(engine: Engine) -> None:
    with engine.connect() as conn:
        with conn.begin():
            nearest_credentials(conn, hash_vector("x"), "hash", k=1, ef_search=123)
            assert conn.execute(text("SHOW hnsw.ef_search")).scalar_one() == "123"
        assert conn.execute(text("SHOW hnsw.ef_search")).scalar_one() == "40"
        assert conn.execute(text("SHOW hnsw.iterative_scan")).scalar_one() == "off"
