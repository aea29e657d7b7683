"""Webhook delivery by real workers to real receivers on loopback, which verify every
request with the ``standardwebhooks`` library."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from gradeflow.api.app import create_app
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.webhooks import emit_event
from gradeflow.jobs.webhooks.signing import message_id
from gradeflow.ops.bench_support import free_port
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.messages import send_messages
from tests.fakes.webhook_receiver import Receiver, Script, receiving
from tests.integration.api_helpers import Key, add_client, api_settings
from tests.support.processes import running, scheduler_argv, wait_for, worker_argv

#: Short retries, so a test waits seconds, not hours.
SCHEDULE = [0, 0.5, 1, 1, 1, 1, 1, 1]


@pytest.fixture
def http(database_url: str, redis_url: str) -> Iterator[TestClient]:
    settings = api_settings(
        database_url, redis_url, webhook_allow_http=True, webhook_allow_list=["127.0.0.1/32"]
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def worker_env(gradeflow_env: dict[str, str]) -> dict[str, str]:
    return {
        **gradeflow_env,
        "GRADEFLOW_WEBHOOK_ALLOW_HTTP": "1",
        "GRADEFLOW_WEBHOOK_ALLOW_LIST": '["127.0.0.1/32"]',
        "GRADEFLOW_WEBHOOK_RETRY_SCHEDULE": json.dumps(SCHEDULE),
        "GRADEFLOW_WEBHOOK_TIMEOUT_SECONDS": "1",
        "GRADEFLOW_WEBHOOK_ENDPOINT_IN_FLIGHT": "2",
    }


def register(http: TestClient, key: Key, port: int, path: str = "/hook") -> dict[str, Any]:
    answer = http.post(
        "/v1/webhook-endpoints",
        headers=key.headers,
        json={"url": f"http://127.0.0.1:{port}{path}", "event_types": ["assessment.completed"]},
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def emit(engine: Engine, redis_url: str, client_id: uuid.UUID, n: int = 1) -> list[uuid.UUID]:
    """Emit ``n`` events the way the pipeline does: rows and jobs in one transaction."""
    with engine.begin() as conn:
        jobs = [
            job
            for i in range(n)
            for job in emit_event(
                conn, client_id, "assessment.completed", {"id": str(uuid.uuid4()), "n": i}
            )
        ]
        inserted = insert_new_jobs(conn, jobs, 500)
    send_messages(build_broker(Settings(redis_url=redis_url)), inserted.messages)
    return [uuid.UUID(job.payload["event_id"]) for job in jobs]


def events(engine: Engine, endpoint_id: str) -> list[tuple[uuid.UUID, str, int]]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text("SELECT id, status, attempts FROM webhook_events WHERE endpoint_id = :e"),
                {"e": endpoint_id},
            )
        ]


def attempt_codes(engine: Engine, event_id: uuid.UUID) -> list[tuple[int | None, str | None]]:
    with engine.connect() as conn:
        return [
            (code, error)
            for code, error in conn.execute(
                text(
                    "SELECT response_code, error FROM webhook_attempts WHERE event_id = :e"
                    " ORDER BY created_at"
                ),
                {"e": event_id},
            )
        ]


def all_status(engine: Engine, endpoint_id: str, status: str) -> bool:
    found = events(engine, endpoint_id)
    return bool(found) and all(s == status for _, s, _ in found)


def audit_actions(engine: Engine, endpoint_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT action FROM audit_logs WHERE resource_id = :e ORDER BY created_at"),
                {"e": endpoint_id},
            ).scalars()
        )


def test_deliveries_verify_retry_disable_and_recover(
    engine: Engine,
    http: TestClient,
    redis_url: str,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    keys = {name: add_client(engine, "submitter") for name in
            ("ok", "flaky", "slow", "gone", "redirect", "rotated", "down", "stale")}  # fmt: skip
    log = tmp_path / "procs.log"
    with (
        receiving([]) as (ok, ok_port),
        receiving([], Script(statuses=[500, 200])) as (flaky, flaky_port),
        receiving([], Script(sleep_seconds=3)) as (slow, slow_port),
        receiving([], Script(statuses=[410, 200])) as (gone, gone_port),
        receiving([], Script(statuses=[302], headers={"location": "http://127.0.0.1:1/x"})) as (
            redirect,
            redirect_port,
        ),
        receiving([]) as (rotated, rotated_port),
        receiving([], Script(statuses=[500])) as (stale, stale_port),
        running(worker_argv(("webhooks",), threads=8), worker_env, log),
        running(scheduler_argv(), worker_env, log),
    ):
        endpoints: dict[str, dict[str, Any]] = {}
        receivers: dict[str, Receiver] = {
            "ok": ok, "flaky": flaky, "slow": slow, "gone": gone, "redirect": redirect,
            "rotated": rotated, "stale": stale,
        }  # fmt: skip
        ports = {
            "ok": ok_port, "flaky": flaky_port, "slow": slow_port, "gone": gone_port,
            "redirect": redirect_port, "rotated": rotated_port, "stale": stale_port,
        }  # fmt: skip
        for name, port in ports.items():
            endpoints[name] = register(http, keys[name], port)
            receivers[name].secrets = [endpoints[name]["secret"]]
        down_port = free_port()
        endpoints["down"] = register(http, keys["down"], down_port)
        # Rotation: the receiver checks the old and the new secret separately.
        old_secret = endpoints["rotated"]["secret"]
        answer = http.post(
            f"/v1/webhook-endpoints/{endpoints['rotated']['id']}/rotate-secret",
            headers=keys["rotated"].headers,
        )
        assert answer.status_code == 200, answer.text
        rotated.secrets = [old_secret, answer.json()["secret"]]
        # Stale: failing for longer than the disable span already.
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE webhook_endpoints SET failing_since = now() - interval '6 days'"
                     " WHERE id = :e"), {"e": endpoints["stale"]["id"]},
            )  # fmt: skip

        emitted = {name: emit(engine, redis_url, keys[name].client_id) for name in receivers}
        emitted["down"] = emit(engine, redis_url, keys["down"].client_id, n=5)

        # A verifying receiver gets the event once, signed, with the event's webhook-id.
        assert wait_for(lambda: all_status(engine, endpoints["ok"]["id"], "delivered"), 30), (
            log.read_text()
        )
        [event] = emitted["ok"]
        assert ok.ids() == [message_id(event)]
        assert ok.received[0].verified == [True]
        assert json.loads(ok.received[0].body)["type"] == "assessment.completed"

        # 500, then 200: two attempts, the same webhook-id, both verified.
        assert wait_for(lambda: all_status(engine, endpoints["flaky"]["id"], "delivered"), 30)
        assert [c for c, _ in attempt_codes(engine, emitted["flaky"][0])] == [500, 200]
        assert len(set(flaky.ids())) == 1 and all(r.verified == [True] for r in flaky.received)

        # Rotation: both the old and the new secret verify the same request.
        assert wait_for(lambda: rotated.count() == 1, 30)
        assert rotated.received[0].verified == [True, True]

        # 410: the endpoint is disabled at once, with an audit row; no retry.
        gone_id = endpoints["gone"]["id"]
        assert wait_for(lambda: all_status(engine, gone_id, "failed"), 30)
        assert "webhook_endpoint.disable" in audit_actions(engine, gone_id)
        listed = http.get("/v1/webhook-endpoints", headers=keys["gone"].headers).json()["items"]
        assert listed[0]["enabled"] is False
        # Recover: re-enabled (audited) and the failed event sent again; now 200.
        answer = http.post(
            f"/v1/webhook-endpoints/{gone_id}/recover",
            params={"since": "2000-01-01T00:00:00Z"},
            headers=keys["gone"].headers,
        )
        assert answer.json() == {"redelivered": 1, "enabled": True}
        assert wait_for(lambda: all_status(engine, gone_id, "delivered"), 30)
        assert audit_actions(engine, gone_id)[-1] == "webhook_endpoint.recover"
        assert len(set(gone.ids())) == 1

        # Failing continuously past the span: disabled after its next failure.
        assert wait_for(lambda: all_status(engine, endpoints["stale"]["id"], "failed"), 30)
        assert "webhook_endpoint.disable" in audit_actions(engine, endpoints["stale"]["id"])

        # A redirect is a failure and is never followed.
        assert wait_for(lambda: len(attempt_codes(engine, emitted["redirect"][0])) >= 2, 30)
        assert {c for c, _ in attempt_codes(engine, emitted["redirect"][0])} == {302}

        # Past the timeout: the attempt is recorded as timed out and retried.
        assert wait_for(lambda: len(attempt_codes(engine, emitted["slow"][0])) >= 2, 30)
        assert all("timed out" in (e or "") for _, e in attempt_codes(engine, emitted["slow"][0]))

        # Down, then back: every event arrives; each webhook-id once after de-duplication.
        assert wait_for(
            lambda: all(a >= 1 for _, _, a in events(engine, endpoints["down"]["id"])), 30
        )
        with receiving([endpoints["down"]["secret"]], port=down_port) as (down, _):
            assert wait_for(lambda: all_status(engine, endpoints["down"]["id"], "delivered"), 60)
            assert set(down.ids()) == {message_id(e) for e in emitted["down"]}
            assert all(r.verified == [True] for r in down.received)

        # The log lists deliveries with their attempts, only the caller's own.
        mine = http.get("/v1/webhook-events", headers=keys["flaky"].headers).json()["items"]
        assert [len(e["attempt_log"]) for e in mine] == [2]
        assert mine[0]["attempt_log"][0]["response_code"] == 500
        # Redeliver: one more attempt, manual, same webhook-id.
        answer = http.post(
            f"/v1/webhook-events/{mine[0]['id']}/redeliver", headers=keys["flaky"].headers
        )
        assert answer.status_code == 202 and answer.json()["queued"] is True
        assert wait_for(lambda: flaky.count() == 3, 30)
        assert len(set(flaky.ids())) == 1
        other = http.post(
            f"/v1/webhook-events/{mine[0]['id']}/redeliver", headers=keys["ok"].headers
        )
        assert other.status_code == 404
