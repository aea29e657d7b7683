"""The embedding job types: one catalog item per job, and the whole catalog again.

Each embed job writes two artifacts: one by the configured provider, and one by
``hash`` (microseconds, no dependency), so the degraded retrieval path always
has a complete catalog to search even when the configured provider is down.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

import structlog
from sqlalchemy import Connection

from gradeflow.db.embeddings import (
    CREDENTIAL,
    ROLE,
    Artifact,
    active_credential_ids,
    active_role_ids,
    credential_for_embedding,
    role_for_embedding,
    upsert_artifacts,
)
from gradeflow.jobs.embeddings.hashing import HashEmbedder
from gradeflow.jobs.embeddings.providers import Embedder, check_vectors, embedder_for
from gradeflow.jobs.embeddings.texts import credential_text, role_text
from gradeflow.jobs.errors import PermanentError
from gradeflow.jobs.registry import JobContext, JobType, NewJob, register
from gradeflow.settings import get_settings

log = structlog.get_logger(__name__)

EMBED_CREDENTIAL = "embed_credential"
EMBED_ROLE = "embed_role"
REEMBED_CATALOG = "reembed_catalog"

T = TypeVar("T")


def payload_id(ctx: JobContext, key: str) -> uuid.UUID:
    """The UUID under ``key`` of the payload; a job without one can never succeed."""
    try:
        return uuid.UUID(str(ctx.payload[key]))
    except (KeyError, ValueError):
        raise PermanentError(f"payload needs {key!r} as a UUID, got {ctx.payload!r}") from None


def embed_entity(
    ctx: JobContext,
    entity_type: str,
    key: str,
    load: Callable[[Connection, uuid.UUID], T | None],
    to_text: Callable[[T], str],
) -> None:
    entity_id = payload_id(ctx, key)
    with ctx.engine.connect() as conn:
        entity = load(conn, entity_id)
    if entity is None:  # deleted since: nothing to embed, and retrying will not change it
        log.info("nothing to embed", entity_type=entity_type, entity_id=str(entity_id))
        return
    text = to_text(entity)
    # The fallback's vector first, in its own transaction: it is kept even when the
    # configured provider is down or misconfigured and this job is retried or dies.
    store(ctx, entity_type, entity_id, HashEmbedder(), text)
    configured = embedder_for(get_settings())
    if configured.name != HashEmbedder.name:
        store(ctx, entity_type, entity_id, configured, text)


def store(
    ctx: JobContext, entity_type: str, entity_id: uuid.UUID, embedder: Embedder, text: str
) -> None:
    [vector] = embed_checked(embedder, text)
    with ctx.engine.begin() as conn:
        upsert_artifacts(
            conn, [Artifact(entity_type, entity_id, embedder.name, embedder.model, vector)]
        )


def embed_checked(embedder: Embedder, text: str) -> list[list[float]]:
    vectors = embedder.embed([text])
    check_vectors(embedder, [text], vectors)
    return vectors


def embed_credential(ctx: JobContext) -> None:
    """Embed a credential's title, description and skills (payload ``credential_id``)."""
    embed_entity(ctx, CREDENTIAL, "credential_id", credential_for_embedding, credential_text)


def embed_role(ctx: JobContext) -> None:
    """Embed a role's name, description and skill profile (payload ``role_id``)."""
    embed_entity(ctx, ROLE, "role_id", role_for_embedding, role_text)


def reembed_catalog(ctx: JobContext) -> None:
    """Enqueue an embed job per active credential and role, with this job's completion.

    The follow-ups run with the workers' current provider, so after a change of
    ``GRADEFLOW_EMBEDDINGS`` this fills that provider's vectors for the whole catalog.
    """
    with ctx.engine.connect() as conn:
        credentials = active_credential_ids(conn)
        roles = active_role_ids(conn)
    for credential_id in credentials:
        ctx.enqueue(
            NewJob(EMBED_CREDENTIAL, {"credential_id": str(credential_id)}, client_id=ctx.client_id)
        )
    for role_id in roles:
        ctx.enqueue(NewJob(EMBED_ROLE, {"role_id": str(role_id)}, client_id=ctx.client_id))
    log.info("catalog re-embed enqueued", credentials=len(credentials), roles=len(roles))


EMBED_CREDENTIAL_JOB = register(JobType(EMBED_CREDENTIAL, embed_credential, queue="cpu"))
EMBED_ROLE_JOB = register(JobType(EMBED_ROLE, embed_role, queue="cpu"))
REEMBED_CATALOG_JOB = register(JobType(REEMBED_CATALOG, reembed_catalog, queue="cpu"))
