"""The API as a client meets it: `gradeflow api` in a subprocess on a loopback port, keys
from `gradeflow clients`, real HTTP, a real PostgreSQL and Redis."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from gradeflow.db.engine import libpq_url
from gradeflow.workers.redis_server import EmbeddedValkey, free_port
from tests.integration.api_helpers import (
    credential_body,
    essay_body,
    multiple_choice_body,
    role_body,
)
from tests.support.processes import gradeflow_argv, running, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
BODY_LIMIT = 65536


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        gradeflow_argv(*args), env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )


def create_client(env: dict[str, str], name: str, role: str) -> dict[str, str]:
    result = cli(env, "clients", "create", name, "--role", role, "--json")
    assert result.returncode == 0, result.stderr
    created: dict[str, str] = json.loads(result.stdout)
    return created


@pytest.fixture
def server(gradeflow_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """Base URL of a running `gradeflow api`."""
    yield from serve({**gradeflow_env, "GRADEFLOW_MAX_BODY_BYTES": str(BODY_LIMIT)}, tmp_path)


def serve(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / f"api-{port}.log"
    with running(gradeflow_argv("api", "--port", str(port)), env, log) as process:
        up = wait_for(lambda: process.poll() is not None or answers(base), timeout=60)
        assert up and process.poll() is None, log.read_text()
        yield base


def answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(sql).fetchall()


def test_catalog_over_http_with_keys_from_the_cli(
    server: str, gradeflow_env: dict[str, str], database_url: str
) -> None:
    admin = create_client(gradeflow_env, "catalog-admin", "admin")
    submitter = create_client(gradeflow_env, "upstream-app", "submitter")
    assert set(admin) == {"id", "name", "role", "api_key"} and admin["api_key"].startswith("gf_")

    with httpx.Client(base_url=server, headers=bearer(admin["api_key"]), timeout=30) as http:
        assert http.get("/readyz").json()["status"] == "ready"
        role = http.post("/v1/roles", json=role_body())
        assert role.status_code == 201, role.text
        role_id = role.json()["id"]
        v1 = http.post("/v1/questions", json=multiple_choice_body(role_id)).json()
        v2 = http.post(
            "/v1/questions",
            json=multiple_choice_body(role_id, version="2", supersedes=v1["id"]),
        )
        assert v2.status_code == 201, v2.text
        assert http.post("/v1/questions", json=essay_body(role_id)).status_code == 201
        listed = http.get("/v1/questions", params={"role_id": role_id}).json()["items"]
        assert {(q["question_type"], q["version"]) for q in listed} == {
            ("multiple_choice", "2"), ("essay", "1"),
        }  # fmt: skip

        created = http.post("/v1/credentials", json=[credential_body(i) for i in range(5)])
        assert created.status_code == 201, created.text
        ids = {c["id"] for c in created.json()}
        page = http.get("/v1/credentials", params={"limit": 3}).json()
        rest = http.get("/v1/credentials", params={"cursor": page["next_cursor"]}).json()
        assert {c["id"] for c in page["items"] + rest["items"]} == ids
        assert rest["next_cursor"] is None

        as_submitter = bearer(submitter["api_key"])
        assert http.get("/v1/roles", headers=as_submitter).status_code == 200
        refused = http.post("/v1/roles", json=role_body(), headers=as_submitter)
        assert refused.status_code == 403 and error_code(refused) == "forbidden"

    jobs = query(
        database_url,
        "SELECT payload->>'credential_id', status FROM async_jobs"
        " WHERE job_type = 'embed_credential'",
    )
    assert {j[0] for j in jobs} == ids and {j[1] for j in jobs} == {"queued"}
    actions = query(database_url, "SELECT action, actor_role FROM audit_logs")
    assert sorted(actions) == sorted(
        [("client.create", "cli")] * 2
        + [("role.create", "admin")]
        + [("question.create", "admin")] * 3
        + [("question.deactivate", "admin")]
        + [("credential.create", "admin")] * 5
    )
    everything = json.dumps(query(database_url, "SELECT row_to_json(a) FROM audit_logs a"))
    assert admin["api_key"] not in everything and submitter["api_key"] not in everything


def test_clients_ls_and_revoke_through_the_cli(server: str, gradeflow_env: dict[str, str]) -> None:
    operator = create_client(gradeflow_env, "ops-desk", "operator")
    headers = bearer(operator["api_key"])
    assert httpx.get(f"{server}/v1/roles", headers=headers).status_code == 200

    listed = cli(gradeflow_env, "clients", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == operator["id"] and row["role"] == "operator" and row["revoked_at"] is None
    assert row["key_prefix"] == operator["api_key"][:10]
    assert "api_key" not in row and operator["api_key"] not in listed.stdout

    revoked = cli(gradeflow_env, "clients", "revoke", operator["id"])
    assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
    refused = httpx.get(f"{server}/v1/roles", headers=headers)
    assert refused.status_code == 401 and error_code(refused) == "unauthorized"
    (row,) = [
        json.loads(x) for x in cli(gradeflow_env, "clients", "ls", "--json").stdout.splitlines()
    ]
    assert row["revoked_at"] is not None
    table = cli(gradeflow_env, "clients", "ls")
    assert table.returncode == 0 and "ops-desk" in table.stdout
    assert operator["api_key"] not in table.stdout

    again = cli(gradeflow_env, "clients", "revoke", operator["id"])
    assert again.returncode == 1 and "already revoked" in again.stderr


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["clients", "create", "x", "--role", "root"], 2, "unknown role 'root'"),
        (["clients", "create", " ", "--role", "admin"], 2, "name must be"),
        (["clients", "revoke", "not-a-uuid"], 2, "not a client id"),
        (["clients", "revoke", "00000000-0000-0000-0000-000000000001"], 1, "no client"),
    ],
)
def test_bad_cli_input_is_one_line_and_a_non_zero_exit(
    gradeflow_env: dict[str, str], args: list[str], code: int, fragment: str
) -> None:
    result = cli(gradeflow_env, *args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], lines


def test_bad_requests_over_the_wire(server: str, gradeflow_env: dict[str, str]) -> None:
    admin = bearer(create_client(gradeflow_env, "admin", "admin")["api_key"])
    json_headers = {**admin, "Content-Type": "application/json"}
    with httpx.Client(base_url=server, timeout=30) as http:
        assert error_code(http.post("/v1/roles", json=role_body())) == "unauthorized"
        broken = http.post("/v1/roles", content=b'{"name": "x",', headers=json_headers)
        assert broken.status_code == 400 and error_code(broken) == "malformed_json"
        unknown = http.post("/v1/roles", json=role_body(level=3), headers=admin)
        assert unknown.status_code == 422
        assert unknown.json()["error"]["details"][0]["field"] == "level"
        assert http.get("/v1/missing", headers=admin).status_code == 404
        assert http.put("/v1/roles", headers=admin).status_code == 405

        too_big = json.dumps(role_body(description="x" * BODY_LIMIT)).encode()
        declared = http.post("/v1/roles", content=too_big, headers=json_headers)
        assert declared.status_code == 413 and error_code(declared) == "payload_too_large"
        chunked = http.post(
            "/v1/roles", content=iter([too_big[:40000], too_big[40000:]]), headers=json_headers
        )
        assert chunked.status_code == 413 and error_code(chunked) == "payload_too_large"
        assert http.post("/v1/roles", json=role_body(), headers=admin).status_code == 201

        spec = http.get("/openapi.json").json()
        assert {"/v1/roles", "/v1/questions", "/v1/credentials", "/healthz", "/readyz"} <= set(
            spec["paths"]
        )


def test_a_declared_oversized_body_is_refused_before_it_is_sent(server: str) -> None:
    """413 comes back as soon as the headers announce too much; the body is never read."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/roles HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {BODY_LIMIT * 100}\r\n\r\n".encode()
        )
        received = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its answer
            received += chunk
        answer = received.decode()
    assert answer.startswith("HTTP/1.1 413"), answer
    assert '"payload_too_large"' in answer


def test_readyz_turns_503_when_redis_goes_away(
    gradeflow_env: dict[str, str], tmp_path: Path
) -> None:
    valkey = EmbeddedValkey(tmp_path / "valkey")
    env = {**gradeflow_env, "REDIS_URL": valkey.start()}
    try:
        for base in serve(env, tmp_path):
            assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
            valkey.stop()
            deadline = time.monotonic() + 30
            while (down := httpx.get(f"{base}/readyz", timeout=10)).status_code == 200:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert down.status_code == 503, down.text
            assert error_code(down) == "not_ready"
            assert [d["component"] for d in down.json()["error"]["details"]] == ["redis"]
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    finally:
        valkey.stop()
