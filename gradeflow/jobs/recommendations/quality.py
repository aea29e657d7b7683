"""How well retrieval answers users' skill gaps: ranking metrics and their evaluation.

A labelled set (``tests/data/recommendation_quality``) pairs users (a role's
``skills_profile`` and their ``skill_scores``) with the credentials a reviewer
judged relevant, graded 1-3. The evaluation runs the product's path end to end:
the query text from :mod:`gradeflow.jobs.recommendations.gaps`, the credential
text from :func:`credential_text`, vectors stored with :func:`upsert_artifacts`
and searched with :func:`nearest_credentials`. Metrics are pure functions of a
ranking and the grades; one function writes the catalog.
"""

from __future__ import annotations

import json
import math
import statistics
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from gradeflow.db.catalog import NewCredential, insert_credentials
from gradeflow.db.embeddings import (
    CREDENTIAL,
    Artifact,
    CredentialForEmbedding,
    nearest_credentials,
    upsert_artifacts,
)
from gradeflow.jobs.embeddings.providers import Embedder, check_vectors
from gradeflow.jobs.embeddings.texts import credential_text, ranked_skills
from gradeflow.jobs.recommendations.gaps import query_text, skill_gaps

#: The cut-off of every figure: the recommendations a user sees first.
K = 5
CREDENTIALS_FILE = "credentials.jsonl"
QUERIES_FILE = "queries.jsonl"
#: Texts per ``embed`` call when the catalog is embedded.
EMBED_BATCH = 64


# -- the labelled set --------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledCredential:
    #: Stable across edits of the file (``metadata.key``): what labels refer to.
    key: str
    title: str
    description: str | None
    skills: list[str]
    #: Who awards it (not embedded: ``credential_text`` leaves it out).
    provider: str | None = None


@dataclass(frozen=True)
class LabelledQuery:
    id: str
    role: str
    skills_profile: dict[str, float]
    skill_scores: dict[str, float]
    #: Credential key → grade: 3 closes a largest gap, 2 another or part of one, 1 a little.
    relevant: dict[str, int]


@dataclass(frozen=True)
class LabelledSet:
    credentials: list[LabelledCredential]
    queries: list[LabelledQuery]


def read_labelled_set(directory: Path) -> LabelledSet:
    """The credentials and queries of ``directory``; ``ValueError`` on a bad label."""
    credentials = [credential_from(fields) for fields in json_lines(directory / CREDENTIALS_FILE)]
    queries = [query_from(fields) for fields in json_lines(directory / QUERIES_FILE)]
    check_labels(credentials, queries)
    return LabelledSet(credentials, queries)


def json_lines(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def credential_from(fields: Mapping[str, Any]) -> LabelledCredential:
    return LabelledCredential(
        key=str(fields["metadata"]["key"]),
        title=str(fields["title"]),
        description=fields.get("description"),
        skills=[str(skill) for skill in fields.get("skills", [])],
        provider=fields.get("provider"),
    )


def query_from(fields: Mapping[str, Any]) -> LabelledQuery:
    return LabelledQuery(
        id=str(fields["id"]),
        role=str(fields["role"]),
        skills_profile={k: float(v) for k, v in fields["skills_profile"].items()},
        skill_scores={k: float(v) for k, v in fields["skill_scores"].items()},
        relevant={k: int(v) for k, v in fields["relevant"].items()},
    )


def check_labels(
    credentials: Sequence[LabelledCredential], queries: Sequence[LabelledQuery]
) -> None:
    """Keys unique, every label naming a credential with a grade of 1 to 3."""
    keys = [c.key for c in credentials]
    if len(set(keys)) != len(keys):
        raise ValueError("credential keys must be unique")
    for query in queries:
        unknown = sorted(set(query.relevant) - set(keys))
        if unknown:
            raise ValueError(f"{query.id}: unknown credential keys {unknown}")
        if not query.relevant or any(g not in (1, 2, 3) for g in query.relevant.values()):
            raise ValueError(f"{query.id}: needs relevant credentials graded 1 to 3")


def search_text(query: LabelledQuery) -> str:
    """The text the product embeds for this user (gaps first, else the role's skills)."""
    gaps = skill_gaps(query.skills_profile, query.skill_scores)
    return query_text(gaps, role_skills=ranked_skills(query.skills_profile))


# -- metrics -------------------------------------------------------------------------------


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = K) -> float:
    """Relevant credentials among the first ``k``, over how many there could be.

    The denominator is ``min(k, len(relevant))``, so a ranking that fills its ``k``
    places with relevant credentials scores 1 even when more than ``k`` are relevant
    (and then equals precision@k). Grades do not count here: any grade is relevant.
    """
    if not relevant:
        return 0.0
    hits = sum(1 for key in ranked[:k] if relevant.get(key, 0) > 0)
    return hits / min(k, len(relevant))


def dcg_at_k(grades: Sequence[int], k: int = K) -> float:
    """Discounted cumulative gain of grades in ranked order: (2^g - 1) / log2(rank + 1)."""
    return sum(
        (2.0**grade - 1.0) / math.log2(rank + 1) for rank, grade in enumerate(grades[:k], start=1)
    )


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = K) -> float:
    """DCG of the ranking over the DCG of the best possible one (0 with nothing relevant)."""
    ideal = dcg_at_k(sorted(relevant.values(), reverse=True), k)
    if ideal == 0.0:
        return 0.0
    return dcg_at_k([relevant.get(key, 0) for key in ranked], k) / ideal


# -- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryOutcome:
    query_id: str
    text: str
    #: The keys retrieved, best first.
    ranked: list[str]
    recall: float
    ndcg: float


@dataclass(frozen=True)
class ProviderQuality:
    provider: str
    model: str
    k: int
    recall: float
    ndcg: float
    outcomes: list[QueryOutcome]


def store_catalog(
    engine: Engine, credentials: Sequence[LabelledCredential], embedders: Sequence[Embedder]
) -> dict[uuid.UUID, str]:
    """Insert the credentials and each embedder's vectors of them; returns id → key.

    Inserts with the catalog's own query and embeds :func:`credential_text`, as
    ``gradeflow catalog load`` and the embed jobs do, in one transaction. The embed
    jobs take one text at a time, this takes batches: ``local``'s vectors agree to a
    cosine above 0.9999 either way (``tests/unit/test_embeddings_local.py``).
    """
    with Session(engine) as session, session.begin():
        rows = insert_credentials(session, [new_credential(c) for c in credentials])
        keys = {row.id: c.key for row, c in zip(rows, credentials, strict=True)}
        texts = [
            credential_text(CredentialForEmbedding(row.id, c.title, c.description, c.skills))
            for row, c in zip(rows, credentials, strict=True)
        ]
        for embedder in embedders:
            vectors = embed_all(embedder, texts)
            upsert_artifacts(
                session.connection(),
                [
                    Artifact(CREDENTIAL, row.id, embedder.name, embedder.model, vector)
                    for row, vector in zip(rows, vectors, strict=True)
                ],
            )
    return keys


def new_credential(credential: LabelledCredential) -> NewCredential:
    return NewCredential(
        title=credential.title,
        description=credential.description,
        skills=credential.skills,
        provider=credential.provider,
        metadata={"key": credential.key},
        active=True,
    )


def embed_all(embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
    """Every text's vector, ``EMBED_BATCH`` texts per call, checked like the embed jobs'."""
    vectors: list[list[float]] = []
    for start in range(0, len(texts), EMBED_BATCH):
        batch = texts[start : start + EMBED_BATCH]
        found = embedder.embed(batch)
        check_vectors(embedder, batch, found)
        vectors.extend(found)
    return vectors


def evaluate(
    engine: Engine,
    embedder: Embedder,
    queries: Sequence[LabelledQuery],
    keys: Mapping[uuid.UUID, str],
    k: int = K,
) -> ProviderQuality:
    """Search the stored catalog for every query with ``embedder``; mean recall and nDCG."""
    texts = [search_text(query) for query in queries]
    vectors = embed_all(embedder, texts)
    with engine.connect() as conn:
        rankings = [ranked_keys(conn, vector, embedder.name, keys, k) for vector in vectors]
        conn.rollback()
    outcomes = [
        QueryOutcome(
            query.id,
            text,
            ranked,
            recall_at_k(ranked, query.relevant, k),
            ndcg_at_k(ranked, query.relevant, k),
        )
        for query, text, ranked in zip(queries, texts, rankings, strict=True)
    ]
    return ProviderQuality(
        provider=embedder.name,
        model=embedder.model,
        k=k,
        recall=statistics.fmean(o.recall for o in outcomes),
        ndcg=statistics.fmean(o.ndcg for o in outcomes),
        outcomes=outcomes,
    )


def ranked_keys(
    conn: Connection,
    vector: Sequence[float],
    provider: str,
    keys: Mapping[uuid.UUID, str],
    k: int,
) -> list[str]:
    """The production top-``k`` (HNSW, active credentials of ``provider``) as keys."""
    return [keys[n.credential_id] for n in nearest_credentials(conn, vector, provider, k)]


def evaluate_providers(
    engine: Engine, labelled: LabelledSet, embedders: Sequence[Embedder], k: int = K
) -> list[ProviderQuality]:
    """Store the labelled catalog with every embedder, then evaluate each one.

    ``engine``'s database must hold no other credentials: they would be found too.
    """
    keys = store_catalog(engine, labelled.credentials, embedders)
    return [evaluate(engine, embedder, labelled.queries, keys, k) for embedder in embedders]
