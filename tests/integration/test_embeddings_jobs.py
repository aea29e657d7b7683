"""Embed jobs end to end: the API or a job enqueues them, a real worker process embeds with
the configured provider, and the nearest-credential search finds what was embedded."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gradeflow.api.app import create_app
from gradeflow.db.catalog import NewCredential, insert_credentials, insert_role
from gradeflow.db.embeddings import (
    CREDENTIAL,
    ROLE,
    CredentialForEmbedding,
    RoleForEmbedding,
    artifact_vector,
    nearest_credentials,
)
from gradeflow.jobs.embeddings import EMBED_CREDENTIAL, EMBED_ROLE, REEMBED_CATALOG
from gradeflow.jobs.embeddings.hashing import hash_vector
from gradeflow.jobs.embeddings.texts import credential_text, role_text
from gradeflow.jobs.registry import NewJob
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.enqueue import enqueue
from tests.fakes.openai_server import embedding, fake_openai
from tests.integration.api_helpers import add_client, api_settings, credential_body
from tests.support.processes import running, wait_for, worker_argv

WAIT_SECONDS = 60


@pytest.fixture
def submit(engine: Engine, redis_url: str) -> Iterator[Any]:
    """Enqueue jobs as any producer does: rows in one transaction, then messages."""
    broker = build_broker(Settings(_env_file=None, redis_url=redis_url))

    def send(*jobs: NewJob) -> list[uuid.UUID]:
        return enqueue(engine, broker, list(jobs), window=500)

    yield send
    broker.close()


def statuses(engine: Engine, job_type: str) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, count(*) FROM async_jobs WHERE job_type = :t GROUP BY 1"),
            {"t": job_type},
        )
        return dict(rows.all())


def artifacts(engine: Engine, provider: str) -> set[tuple[str, uuid.UUID]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT entity_type, entity_id FROM embedding_artifacts WHERE provider = :p"),
            {"p": provider},
        )
        return {(entity_type, entity_id) for entity_type, entity_id in rows}


def stored_vector(engine: Engine, entity_type: str, entity_id: uuid.UUID, provider: str) -> Any:
    with engine.connect() as conn:
        return artifact_vector(conn, entity_type, entity_id, provider)


def add_credentials(engine: Engine, *specs: tuple[str, list[str], bool]) -> list[uuid.UUID]:
    with Session(engine) as session, session.begin():
        rows = insert_credentials(
            session,
            [
                NewCredential(title, f"About {title}.", skills, None, None, active)
                for title, skills, active in specs
            ],
        )
        return [row.id for row in rows]


def add_role(engine: Engine, name: str, profile: dict[str, float]) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        return insert_role(
            session, name=name, description=None, skills_profile=profile, active=True
        ).id


def worker_env(gradeflow_env: dict[str, str], provider: str, **extra: str) -> dict[str, str]:
    return {**gradeflow_env, "GRADEFLOW_EMBEDDINGS": provider, **extra}


def test_a_credential_posted_to_the_api_is_embedded_and_found(
    engine: Engine, database_url: str, redis_url: str, gradeflow_env: dict[str, str], tmp_path: Path
) -> None:
    admin = add_client(engine, "admin").headers
    app = create_app(api_settings(database_url, redis_url))
    bodies = [
        credential_body(0, title="Kubernetes operations", skills=["kubernetes", "devops"]),
        credential_body(1, title="Watercolour painting", skills=["painting"]),
        credential_body(2, title="Statistics for analysts", skills=["statistics"]),
    ]
    try:
        with TestClient(app) as http:
            response = http.post("/v1/credentials", json=bodies, headers=admin)
    finally:
        app.state.services.close()
    assert response.status_code == 201, response.text
    ids = [uuid.UUID(item["id"]) for item in response.json()]

    log = tmp_path / "worker.log"
    with running(worker_argv(), worker_env(gradeflow_env, "hash"), log):
        assert wait_for(
            lambda: statuses(engine, EMBED_CREDENTIAL) == {"succeeded": 3}, WAIT_SECONDS
        ), log.read_text()
    assert artifacts(engine, "hash") == {(CREDENTIAL, i) for i in ids}

    first = CredentialForEmbedding(
        ids[0], bodies[0]["title"], bodies[0]["description"], bodies[0]["skills"]
    )
    with engine.begin() as conn:
        found = nearest_credentials(conn, hash_vector(credential_text(first)), "hash", k=3)
    assert found[0].credential_id == ids[0]
    assert found[0].similarity == pytest.approx(1.0, abs=1e-5)


def test_bad_payloads_die_and_vanished_items_are_skipped(
    engine: Engine, submit: Any, gradeflow_env: dict[str, str], tmp_path: Path
) -> None:
    [bad] = submit(NewJob(EMBED_CREDENTIAL, {"credential_id": "not-a-uuid"}))
    [gone] = submit(NewJob(EMBED_ROLE, {"role_id": str(uuid.uuid4())}))
    log = tmp_path / "worker.log"
    with running(worker_argv(), worker_env(gradeflow_env, "hash"), log):
        assert wait_for(
            lambda: (
                statuses(engine, EMBED_CREDENTIAL) == {"dead": 1}
                and statuses(engine, EMBED_ROLE) == {"succeeded": 1}
            ),
            WAIT_SECONDS,
        ), log.read_text()
    with engine.connect() as conn:
        attempts = conn.execute(
            text("SELECT attempts FROM async_jobs WHERE id = :id"), {"id": bad}
        ).scalar_one()
    assert attempts == 1  # a permanent error: no retry can fix the payload
    assert artifacts(engine, "hash") == set()
    assert gone


def test_reembed_after_a_provider_change_fills_the_new_providers_vectors(
    engine: Engine, submit: Any, gradeflow_env: dict[str, str], tmp_path: Path
) -> None:
    """Vectors by ``hash`` first; then the workers switch to ``local`` and one
    ``reembed_catalog`` job embeds every active credential and role again."""
    from gradeflow.jobs.embeddings.local import LocalEmbedder

    sql, painting, retired = add_credentials(
        engine,
        ("Relational databases and SQL", ["sql"], True),
        ("Oil painting techniques", ["painting"], True),
        ("Retired course", ["sql"], False),
    )
    analyst = add_role(engine, "Data analyst", {"sql": 80, "statistics": 60})
    submit(
        NewJob(EMBED_CREDENTIAL, {"credential_id": str(sql)}),
        NewJob(EMBED_CREDENTIAL, {"credential_id": str(painting)}),
        NewJob(EMBED_ROLE, {"role_id": str(analyst)}),
    )
    log = tmp_path / "worker.log"
    with running(worker_argv(), worker_env(gradeflow_env, "hash"), log):
        assert wait_for(lambda: len(artifacts(engine, "hash")) == 3, WAIT_SECONDS), log.read_text()
    assert artifacts(engine, "local") == set()

    [reembed] = submit(NewJob(REEMBED_CATALOG))
    with running(worker_argv(), worker_env(gradeflow_env, "local"), log):
        assert wait_for(
            lambda: (
                statuses(engine, REEMBED_CATALOG) == {"succeeded": 1}
                and statuses(engine, EMBED_CREDENTIAL) == {"succeeded": 4}
                and statuses(engine, EMBED_ROLE) == {"succeeded": 2}
            ),
            WAIT_SECONDS * 2,
        ), log.read_text()
    expected = {(CREDENTIAL, sql), (CREDENTIAL, painting), (ROLE, analyst)}
    assert artifacts(engine, "local") == expected
    assert artifacts(engine, "hash") == expected  # the fallback is kept up to date too
    assert (CREDENTIAL, retired) not in artifacts(engine, "local")
    with engine.connect() as conn:
        models = set(
            conn.execute(
                text("SELECT DISTINCT model FROM embedding_artifacts WHERE provider = 'local'")
            ).scalars()
        )
    assert models == {"all-MiniLM-L6-v2"}

    # The role's profile, embedded by the same model, retrieves the SQL credential first.
    local = LocalEmbedder.load()
    role_vector = stored_vector(engine, ROLE, analyst, "local")
    profile = RoleForEmbedding(analyst, "Data analyst", None, {"sql": 80, "statistics": 60})
    [expected_role] = local.embed([role_text(profile)])
    assert sum(a * b for a, b in zip(role_vector, expected_role, strict=True)) > 0.999
    with engine.begin() as conn:
        found = nearest_credentials(conn, role_vector, "local", k=5)
    assert [n.credential_id for n in found] == [sql, painting]
    assert reembed


def test_the_openai_provider_embeds_through_the_sdk(
    engine: Engine, submit: Any, gradeflow_env: dict[str, str], tmp_path: Path
) -> None:
    [credential] = add_credentials(engine, ("Cloud security", ["security", "cloud"], True))
    submit(NewJob(EMBED_CREDENTIAL, {"credential_id": str(credential)}))
    log = tmp_path / "worker.log"
    with fake_openai() as server:
        env = worker_env(
            gradeflow_env, "openai", OPENAI_API_KEY="sk-fake", OPENAI_BASE_URL=server.base_url
        )
        with running(worker_argv(), env, log):
            assert wait_for(
                lambda: statuses(engine, EMBED_CREDENTIAL) == {"succeeded": 1}, WAIT_SECONDS
            ), log.read_text()
        [request] = [r.body for r in server.requests if r.path.endswith("/embeddings")]
    text_sent = credential_text(
        CredentialForEmbedding(
            credential, "Cloud security", "About Cloud security.", ["security", "cloud"]
        )
    )
    assert request["input"] == [text_sent]
    assert (request["model"], request["dimensions"]) == ("text-embedding-3-small", 384)
    assert stored_vector(engine, CREDENTIAL, credential, "openai") == pytest.approx(
        embedding(text_sent, 384), abs=1e-6
    )
    with engine.connect() as conn:
        model = conn.execute(
            text("SELECT model FROM embedding_artifacts WHERE provider = 'openai'")
        ).scalar_one()
    assert model == "text-embedding-3-small"


def test_a_misconfigured_provider_kills_the_job_but_keeps_the_fallback_vector(
    engine: Engine, submit: Any, gradeflow_env: dict[str, str], tmp_path: Path
) -> None:
    [credential] = add_credentials(engine, ("Network design", ["networking"], True))
    [job] = submit(NewJob(EMBED_CREDENTIAL, {"credential_id": str(credential)}))
    log = tmp_path / "worker.log"
    with running(worker_argv(), worker_env(gradeflow_env, "openai"), log):  # no OPENAI_API_KEY
        assert wait_for(lambda: statuses(engine, EMBED_CREDENTIAL) == {"dead": 1}, WAIT_SECONDS), (
            log.read_text()
        )
    with engine.connect() as conn:
        attempts, error = conn.execute(
            text(
                "SELECT attempts, error_payload->'errors'->-1->>'message'"
                " FROM async_jobs WHERE id = :id"
            ),
            {"id": job},
        ).one()
    assert attempts == 1
    assert "OPENAI_API_KEY" in error
    assert artifacts(engine, "hash") == {(CREDENTIAL, credential)}
    assert artifacts(engine, "openai") == set()
