"""Keys, roles, the error shape and health, in-process on a real PostgreSQL and Redis."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from gradeflow.api.app import create_app
from gradeflow.api.auth import OperatorClient
from gradeflow.db.clients import revoke_client
from gradeflow.db.engine import transaction
from gradeflow.workers.redis_server import free_port
from tests.integration.api_helpers import (
    Key,
    add_client,
    api_settings,
    credential_body,
    multiple_choice_body,
    role_body,
)

BODY_LIMIT = 4096


def serve(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def app(database_url: str, redis_url: str) -> Iterator[FastAPI]:
    app = create_app(api_settings(database_url, redis_url, max_body_bytes=BODY_LIMIT))
    yield app
    app.state.services.close()


@pytest.fixture
def http(app: FastAPI) -> TestClient:
    return serve(app)


@pytest.fixture
def admin(engine: Engine) -> Key:
    return add_client(engine, "admin")


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return dict(body["error"])


# -- keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer gf_short",
        "Bearer gf_" + "a" * 20 + " extra",
        "Bearer gf_" + "x" * 43,  # well formed, unknown
    ],
)
def test_missing_malformed_or_unknown_keys_are_401(
    http: TestClient, admin: Key, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = http.get("/v1/roles", headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_only_the_keys_hash_and_prefix_are_stored(engine: Engine) -> None:
    key = add_client(engine, "submitter")
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT key_hash, key_prefix, row_to_json(c)::text AS everything"
                 " FROM api_clients c WHERE id = :id"),
            {"id": key.client_id},
        ).one()  # fmt: skip
    assert key.key.startswith("gf_") and len(key.key) == 46
    assert row.key_hash == hashlib.sha256(key.key.encode()).hexdigest()
    assert row.key_prefix == key.key[:10]
    assert key.key not in row.everything


def test_a_revoked_key_stops_working_at_once(http: TestClient, engine: Engine) -> None:
    key = add_client(engine, "operator")
    assert http.get("/v1/roles", headers=key.headers).status_code == 200
    with transaction(engine) as session:
        assert revoke_client(session, key.client_id) is not None
    error = assert_error(http.get("/v1/roles", headers=key.headers), 401, "unauthorized")
    assert "revoked" in error["message"]
    with transaction(engine) as session:  # revoking twice is a no-op, reported as such
        assert revoke_client(session, key.client_id) is None


def test_an_admin_may_do_what_an_operator_may_a_submitter_may_not(
    app: FastAPI, engine: Engine
) -> None:
    @app.get("/v1/test-operator-only")
    def operator_only(client: OperatorClient) -> dict[str, str]:
        return {"role": client.role}

    http = serve(app)
    for role, status in (("operator", 200), ("admin", 200), ("submitter", 403)):
        response = http.get("/v1/test-operator-only", headers=add_client(engine, role).headers)
        assert response.status_code == status, (role, response.text)
    assert_error(http.get("/v1/test-operator-only"), 401, "unauthorized")


def test_audit_rows_name_the_actor_and_hold_no_secret(
    http: TestClient, admin: Key, engine: Engine
) -> None:
    role_id = http.post("/v1/roles", json=role_body(), headers=admin.headers).json()["id"]
    http.post("/v1/questions", json=multiple_choice_body(role_id), headers=admin.headers)
    http.post(
        "/v1/credentials", json=[credential_body(0), credential_body(1)], headers=admin.headers
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM audit_logs"))]
        hashes = [h for (h,) in conn.execute(text("SELECT key_hash FROM api_clients"))]
    assert sorted(r["action"] for r in rows) == [
        "credential.create", "credential.create", "question.create", "role.create",
    ]  # fmt: skip
    assert {(r["actor_id"], r["actor_role"]) for r in rows} == {(admin.client_id, "admin")}
    dumped = json.dumps(rows, default=str)
    for secret in (admin.key, admin.key[3:], *hashes):
        assert secret not in dumped


# -- the error shape ------------------------------------------------------------------


def test_malformed_json_is_400(http: TestClient, admin: Key) -> None:
    headers = {**admin.headers, "Content-Type": "application/json"}
    for broken in (b'{"name": ', b"{'name': 'x'}", b'{"name": "x"} trailing', b"\xff\xfe\x00"):
        assert_error(http.post("/v1/roles", content=broken, headers=headers), 400, "malformed_json")


def test_a_missing_body_is_422(http: TestClient, admin: Key) -> None:
    error = assert_error(http.post("/v1/roles", headers=admin.headers), 422, "validation_error")
    assert error["details"] == [
        {"location": "body", "field": "body", "reason": "Field required", "type": "missing"}
    ]


def test_unknown_routes_and_methods(http: TestClient, admin: Key) -> None:
    assert_error(http.get("/v1/nothing-here", headers=admin.headers), 404, "not_found")
    assert_error(http.get("/nothing"), 404, "not_found")
    response = http.delete("/v1/roles", headers=admin.headers)
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


def test_bodies_over_the_limit_are_413(http: TestClient, admin: Key, engine: Engine) -> None:
    big = json.dumps(role_body(description="x" * BODY_LIMIT)).encode()
    headers = {**admin.headers, "Content-Type": "application/json"}
    declared = http.post("/v1/roles", content=big, headers=headers)
    assert_error(declared, 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    streamed = http.post("/v1/roles", content=chunks(), headers=headers)
    assert_error(streamed, 413, "payload_too_large")
    small = http.post("/v1/roles", json=role_body(), headers=admin.headers)
    assert small.status_code == 201
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM role_catalog")).scalar_one() == 1


def test_the_body_limit_defaults_to_one_mebibyte(database_url: str, redis_url: str) -> None:
    assert api_settings(database_url, redis_url).max_body_bytes == 1024 * 1024


# -- health and the spec ------------------------------------------------------------


def test_ready_when_database_and_redis_answer(http: TestClient) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_not_ready_names_what_is_down(database_url: str, redis_url: str) -> None:
    down = f"postgresql://gradeflow@127.0.0.1:{free_port()}/gradeflow"
    cases = [
        (down, redis_url, {"database"}),
        (database_url, f"redis://127.0.0.1:{free_port()}/0", {"redis"}),
        (down, f"redis://127.0.0.1:{free_port()}/0", {"database", "redis"}),
    ]
    for db, rd, expected in cases:
        app = create_app(api_settings(db, rd))
        try:
            http = serve(app)
            assert http.get("/healthz").status_code == 200  # liveness needs neither
            error = assert_error(http.get("/readyz"), 503, "not_ready")
            assert {d["component"] for d in error["details"]} == expected
            assert "127.0.0.1" not in json.dumps(error)  # no hosts or URLs to strangers
        finally:
            app.state.services.close()


def test_the_openapi_document_describes_every_route_and_error(http: TestClient) -> None:
    spec = http.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {"ErrorResponse", "RoleIn", "QuestionIn", "CredentialsIn", "MultipleChoiceRubric",
            "EssayRubric", "ProfileRubric", "CredentialPage"} <= set(schemas)  # fmt: skip
    assert "HTTPValidationError" not in schemas  # 422 uses the one error shape too
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    expected = {
        ("/v1/roles", "post"): {"400", "401", "403", "413", "422"},
        ("/v1/roles", "get"): {"401", "403", "422"},
        ("/v1/questions", "post"): {"400", "401", "403", "409", "413", "422"},
        ("/v1/questions", "get"): {"401", "403", "422"},
        ("/v1/credentials", "post"): {"400", "401", "403", "413", "422"},
        ("/v1/credentials", "get"): {"401", "403", "422"},
        ("/readyz", "get"): {"503"},
    }
    for (path, method), errors in expected.items():
        responses = spec["paths"][path][method]["responses"]
        assert set(responses) - {"200", "201"} == errors, (path, method)
        for status in errors:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ErrorResponse"
    assert "/healthz" in spec["paths"]
    params = {p["name"] for p in spec["paths"]["/v1/credentials"]["get"]["parameters"]}
    assert params == {"limit", "cursor"}
