"""The webhook endpoints of the API in-process, on a real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from gradeflow.api.app import create_app
from tests.integration.api_helpers import Key, add_client, api_settings

BODY = {"url": "https://93.184.216.34/hook", "event_types": ["assessment.completed"]}


@pytest.fixture
def http(database_url: str, redis_url: str) -> Iterator[TestClient]:
    with TestClient(
        create_app(api_settings(database_url, redis_url)), raise_server_exceptions=False
    ) as client:
        yield client


@pytest.fixture
def submitter(engine: Engine) -> Key:
    return add_client(engine, "submitter")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.1/hook",
        "https://172.16.5.4/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/hook",
        "https://224.0.0.1/hook",
        "https://[fc00::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::1]/hook",
        "https://0.0.0.0/hook",
        "http://93.184.216.34/hook",
        "ftp://93.184.216.34/hook",
    ],
)
def test_unsafe_urls_are_refused_at_registration(
    http: TestClient, submitter: Key, url: str
) -> None:
    answer = http.post(
        "/v1/webhook-endpoints", headers=submitter.headers, json={**BODY, "url": url}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"][0]["field"] == "url"


def test_create_shows_the_secret_once_and_lists_without_it(
    http: TestClient, submitter: Key, engine: Engine
) -> None:
    created = http.post("/v1/webhook-endpoints", headers=submitter.headers, json=BODY)
    assert created.status_code == 201, created.text
    assert created.json()["secret"].startswith("whsec_")
    listed = http.get("/v1/webhook-endpoints", headers=submitter.headers).json()["items"]
    assert [item["id"] for item in listed] == [created.json()["id"]]
    assert "secret" not in listed[0]
    with engine.connect() as conn:
        actions = conn.execute(text("SELECT action, metadata FROM audit_logs")).all()
    assert [a for a, _ in actions] == ["webhook_endpoint.create"]
    assert "whsec_" not in str(actions)


def test_rotation_returns_a_new_secret_and_an_overlap(http: TestClient, submitter: Key) -> None:
    created = http.post("/v1/webhook-endpoints", headers=submitter.headers, json=BODY).json()
    rotated = http.post(
        f"/v1/webhook-endpoints/{created['id']}/rotate-secret", headers=submitter.headers
    )
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != created["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None


def test_other_clients_get_404_and_delete_works(
    http: TestClient, submitter: Key, engine: Engine
) -> None:
    created = http.post("/v1/webhook-endpoints", headers=submitter.headers, json=BODY).json()
    stranger = add_client(engine, "submitter")
    path = f"/v1/webhook-endpoints/{created['id']}"
    assert http.delete(path, headers=stranger.headers).status_code == 404
    assert http.post(f"{path}/rotate-secret", headers=stranger.headers).status_code == 404
    recover = http.post(
        f"{path}/recover", params={"since": "2020-01-01T00:00:00Z"}, headers=stranger.headers
    )
    assert recover.status_code == 404
    assert http.delete(path, headers=submitter.headers).status_code == 204
    assert http.get("/v1/webhook-endpoints", headers=submitter.headers).json()["items"] == []
    assert http.delete(path, headers=submitter.headers).status_code == 404


def test_operators_may_list_events_submitters_only_their_own(
    http: TestClient, submitter: Key, engine: Engine
) -> None:
    from gradeflow.jobs.webhooks import emit_event

    created = http.post("/v1/webhook-endpoints", headers=submitter.headers, json=BODY).json()
    with engine.begin() as conn:
        jobs = emit_event(conn, submitter.client_id, "assessment.completed", {"id": "a"})
        assert emit_event(conn, submitter.client_id, "recommendation.ready", {"id": "a"}) == []
    assert len(jobs) == 1
    operator = add_client(engine, "operator")
    stranger = add_client(engine, "submitter")
    mine = http.get("/v1/webhook-events", headers=submitter.headers).json()["items"]
    assert [e["endpoint_id"] for e in mine] == [created["id"]]
    assert mine[0]["payload"]["data"] == {"id": "a"}
    everyone = http.get(
        "/v1/webhook-events", params={"status": "pending"}, headers=operator.headers
    )
    assert len(everyone.json()["items"]) == 1
    assert http.get("/v1/webhook-events", headers=stranger.headers).json()["items"] == []
    bad = http.get("/v1/webhook-events", params={"status": "lost"}, headers=operator.headers)
    assert bad.status_code == 422
    # Pending already: a redeliver queues nothing new.
    again = http.post(f"/v1/webhook-events/{mine[0]['id']}/redeliver", headers=operator.headers)
    assert again.status_code == 202 and again.json()["queued"] is False
