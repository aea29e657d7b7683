"""Secrets at rest: API keys are stored only as their SHA-256, webhook secrets only in
the columns that sign with them, and neither is ever shown again after it is issued.

Keys are issued the way an operator issues them (``gradeflow clients create``), then
used for everything a key can do: the catalog, a submission with an Idempotency-Key,
webhook endpoints, the dead-letter desk, a dashboard login. Then every column of every
table (and every value in Redis) is searched for them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from gradeflow.api.keys import DISPLAY_PREFIX_LENGTH
from gradeflow.jobs.webhooks import emit_event
from tests.e2e.test_api_server import cli, create_client
from tests.integration.api_helpers import (
    Key,
    add_client,
    credential_body,
    essay_body,
    multiple_choice_body,
    role_body,
)
from tests.security.world import PUBLIC_HOOK, Answer, created, table_names, unique

#: (table, column): where a value is found.
Place = tuple[str, str]


# -- searching the database and Redis ------------------------------------------------------


def column_texts(engine: Engine) -> dict[Place, list[str]]:
    """Every value of every column of every table, as text (JSON for structured values)."""
    found: dict[Place, list[str]] = {}
    with engine.connect() as conn:
        for table in table_names(conn):
            for (row,) in conn.execute(text(f'SELECT to_jsonb(t) FROM "{table}" t')):
                for column, value in row.items():
                    shown = value if isinstance(value, str) else json.dumps(value)
                    found.setdefault((table, column), []).append(shown)
    return found


def places(texts: Mapping[Place, list[str]], needle: str) -> set[Place]:
    return {place for place, values in texts.items() if any(needle in v for v in values)}


def redis_text(url: str) -> str:
    """Every key and value of the test's Redis database, as one text."""
    client = redis.Redis.from_url(url)
    try:
        return "\n".join(f"{key!r} {redis_value(client, key)!r}" for key in client.scan_iter())
    finally:
        client.close()


def redis_value(client: redis.Redis, key: bytes) -> object:
    kind = client.type(key)
    readers: dict[bytes, Callable[[bytes], object]] = {
        b"string": client.get,
        b"hash": client.hgetall,
        b"list": lambda k: client.lrange(k, 0, -1),
        b"set": client.smembers,
        b"zset": lambda k: client.zrange(k, 0, -1),
    }
    return readers[kind](key) if isinstance(kind, bytes) and kind in readers else kind


def forms_of_a_key(key: str) -> list[str]:
    """The key, its secret part (after the stored display prefix), and its hex bytes."""
    return [key, key[DISPLAY_PREFIX_LENGTH:], key.encode().hex()]


# -- API keys ----------------------------------------------------------------------------


@pytest.fixture
def issued_keys(gradeflow_env: dict[str, str], engine: Engine) -> dict[str, str]:
    """A key of each role and a revoked one. The admin's is made by ``gradeflow clients
    create`` and the revoked one revoked by ``gradeflow clients revoke`` (both write audit
    rows); the others by the same functions, in-process."""
    admin = create_client(gradeflow_env, "admin-app", "admin")["api_key"]
    others = {role: add_client(engine, role) for role in ("submitter", "operator")}
    others["revoked"] = add_client(engine, "submitter", "retired-app")
    result = cli(gradeflow_env, "clients", "revoke", str(others["revoked"].client_id))
    assert result.returncode == 0, result.stderr
    return {"admin": admin, **{name: key.key for name, key in others.items()}}


def use_every_kind_of_key(http: TestClient, keys: Mapping[str, str]) -> None:
    """Everything the keys may do, so every path that handles a key has run."""
    admin, submitter, operator = (bearer(keys[r]) for r in ("admin", "submitter", "operator"))
    role_id = created(http.post("/v1/roles", json=role_body(), headers=admin))["id"]
    mc = created(http.post("/v1/questions", json=multiple_choice_body(role_id), headers=admin))
    essay = created(http.post("/v1/questions", json=essay_body(role_id), headers=admin))
    created(http.post("/v1/credentials", json=[credential_body(0)], headers=admin))
    submission = {
        "user": {"external_id": "u-1", "email": "u-1@example.com"},
        "role_id": role_id,
        "responses": [
            {"question_id": mc["id"], "answer": "a"},
            {"question_id": essay["id"], "answer": "An index is a b-tree."},
        ],
    }
    headers = {**submitter, "Idempotency-Key": unique("submission")}
    created(http.post("/v1/assessments", json=submission, headers=headers), 202)
    endpoint = {"url": f"{PUBLIC_HOOK}/keys", "event_types": ["assessment.completed"]}
    created(http.post("/v1/webhook-endpoints", json=endpoint, headers=submitter))
    assert http.get("/v1/jobs", headers=operator).status_code == 200
    assert http.get("/v1/roles", headers=bearer(keys["revoked"])).status_code == 401
    assert http.post("/v1/roles", json=role_body(), headers=submitter).status_code == 403
    for key in (keys["operator"], keys["submitter"], "gf_" + "Z" * 43):
        dashboard_login(http, key)


def dashboard_login(http: TestClient, key: str) -> Answer:
    return http.post(
        "/ops/login",
        data={"api_key": key, "next": "/ops"},
        headers={"Origin": str(http.base_url).rstrip("/")},
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_api_keys_are_stored_nowhere_but_as_their_hash(
    issued_keys: dict[str, str], http: TestClient, engine: Engine, redis_url: str
) -> None:
    keys = issued_keys
    use_every_kind_of_key(http, keys)
    login = dashboard_login(http, keys["admin"])

    texts = column_texts(engine)
    stored_anywhere = {
        (name, form): places(texts, form)
        for name, key in keys.items()
        for form in forms_of_a_key(key)
        if places(texts, form)
    }
    hashes = {
        name: places(texts, hashlib.sha256(k.encode()).hexdigest()) for name, k in keys.items()
    }

    assert stored_anywhere == {}
    # The search covers the table that holds them: each hash is there, and only there.
    assert hashes == {name: {("api_clients", "key_hash")} for name in keys}
    assert places(texts, "dashboard.login") == {("audit_logs", "action")}
    assert login.status_code == 303 and keys["admin"] not in login.headers["set-cookie"]
    in_redis = redis_text(redis_url)
    assert in_redis, "the submission's messages should be in Redis"
    assert [name for name, key in keys.items() if key[DISPLAY_PREFIX_LENGTH:] in in_redis] == []


def test_a_stored_hash_is_not_a_key(http: TestClient, engine: Engine) -> None:
    """Someone who reads api_clients cannot call the API with what is stored there."""
    key = add_client(engine, "admin")
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT key_hash, key_prefix FROM api_clients WHERE id = :id"),
            {"id": key.client_id},
        ).one()
    for presented in (stored.key_hash, f"gf_{stored.key_hash}", stored.key_prefix):
        answer = http.get("/v1/roles", headers=bearer(presented))
        assert answer.status_code == 401, presented
    assert http.get("/v1/roles", headers=key.headers).status_code == 200


# -- webhook secrets -------------------------------------------------------------------------


@pytest.fixture
def submitter(engine: Engine) -> Key:
    return add_client(engine, "submitter")


def answers_after_creation(http: TestClient, submitter: Key, operator: Key) -> list[Any]:
    """Every answer that shows an endpoint or its events, other than create and rotate."""
    listed = http.get("/v1/webhook-endpoints", headers=submitter.headers)
    recover = f"/v1/webhook-endpoints/{listed.json()['items'][0]['id']}/recover"
    return [
        listed,
        http.get("/v1/webhook-events", headers=submitter.headers),
        http.get("/v1/webhook-events", headers=operator.headers),
        http.post(recover, params={"since": "2020-01-01T00:00:00Z"}, headers=submitter.headers),
        http.get("/v1/jobs", headers=operator.headers),
    ]


def shows(answer: Answer, secret: str) -> bool:
    return secret in answer.text or secret.removeprefix("whsec_") in answer.text


def test_a_webhook_secret_is_shown_once_and_kept_only_where_signing_needs_it(
    http: TestClient, engine: Engine, submitter: Key
) -> None:
    operator = add_client(engine, "operator")
    body = {"url": f"{PUBLIC_HOOK}/secrets", "event_types": ["assessment.completed"]}
    endpoint = created(http.post("/v1/webhook-endpoints", json=body, headers=submitter.headers))
    first = endpoint["secret"]
    with engine.begin() as conn:
        assert emit_event(conn, submitter.client_id, "assessment.completed", {"n": 1})

    shown_again = answers_after_creation(http, submitter, operator)
    rotate = f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret"
    rotated = created(http.post(rotate, headers=submitter.headers), 200)
    second = rotated["secret"]
    shown_again += answers_after_creation(http, submitter, operator)

    assert first.startswith("whsec_") and second.startswith("whsec_") and first != second
    assert first not in json.dumps(rotated)  # a rotation shows only the new secret
    assert [a.status_code for a in shown_again] == [200] * len(shown_again)
    assert [a.request.url for a in shown_again if shows(a, first) or shows(a, second)] == []
    assert all("secret" not in item for item in shown_again[0].json()["items"])
    # At rest: the new secret signs; the old one signs too until its overlap ends.
    texts = column_texts(engine)
    assert places(texts, second) == {("webhook_endpoints", "secret")}
    assert places(texts, first) == {("webhook_endpoints", "previous_secret")}

    third = created(http.post(rotate, headers=submitter.headers), 200)["secret"]
    texts = column_texts(engine)
    assert places(texts, first) == set()  # two rotations on, the first is gone
    assert places(texts, second) == {("webhook_endpoints", "previous_secret")}

    deleted = http.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=submitter.headers)
    assert deleted.status_code == 204
    texts = column_texts(engine)
    assert places(texts, second) == set() and places(texts, third) == set()


# -- the spec --------------------------------------------------------------------------------


def property_names(
    schema: Any, spec: dict[str, Any], seen: frozenset[str] = frozenset()
) -> set[str]:
    """Every property name anywhere inside ``schema``, following ``$ref``s."""
    if isinstance(schema, list):
        return set().union(*(property_names(item, spec, seen) for item in schema))
    if not isinstance(schema, dict):
        return set()
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            return set()
        target = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        return property_names(target, spec, seen | {ref})
    names = set(schema.get("properties", {}))
    return names.union(*(property_names(value, spec, seen) for value in schema.values()))


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_only_create_and_rotate_may_answer_with_a_secret_and_nothing_with_a_key(
    app: FastAPI,
) -> None:
    spec = app.openapi()
    answering: dict[str, set[tuple[str, str]]] = {}
    for method, path, operation in operations(spec):
        names = property_names(operation.get("responses", {}), spec)
        for name in names & {"secret", "previous_secret", "api_key", "key", "key_hash"}:
            answering.setdefault(name, set()).add((method, path))
    assert answering == {
        "secret": {
            ("POST", "/v1/webhook-endpoints"),
            ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"),
        }
    }


def test_column_search_finds_a_planted_value(engine: Engine) -> None:
    """The search the tests above rely on does see inside JSON and text columns."""
    planted = uuid.uuid4().hex
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_logs (action, resource_type, metadata)"
                " VALUES ('probe', 'probe', CAST(:meta AS jsonb))"
            ),
            {"meta": json.dumps({"nested": [{"value": planted}]})},
        )
    assert places(column_texts(engine), planted) == {("audit_logs", "metadata")}
