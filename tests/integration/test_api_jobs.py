"""The jobs endpoints (the dead-letter desk) in-process, on a real PostgreSQL and Redis,
with a real worker where a retried job has to run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from gradeflow.api.app import create_app
from tests.dashboard.seeds import SeedJob, dead_job, insert_job, job_status
from tests.integration.api_helpers import Key, add_client, api_settings
from tests.support.jobs import TEST_TABLES_DDL
from tests.support.processes import running, wait_for, worker_argv


@pytest.fixture
def http(database_url: str, redis_url: str) -> Iterator[TestClient]:
    with TestClient(
        create_app(api_settings(database_url, redis_url)), raise_server_exceptions=False
    ) as client:
        yield client


@pytest.fixture
def operator(engine: Engine) -> Key:
    return add_client(engine, "operator")


def prepare(engine: Engine) -> None:
    with engine.begin() as conn:
        for ddl in TEST_TABLES_DDL:
            conn.execute(text(ddl))


def runs_of(engine: Engine, job_id: uuid.UUID) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM test_job_runs WHERE job_id = :id"), {"id": job_id}
            ).scalar_one()
        )


def test_a_retried_dead_job_runs_on_a_real_worker_and_succeeds(
    http: TestClient,
    operator: Key,
    engine: Engine,
    gradeflow_env: dict[str, str],
    tmp_path: Path,
) -> None:
    prepare(engine)
    job_id = dead_job(engine)
    log = tmp_path / "worker.log"
    with running(worker_argv(), gradeflow_env, log):
        answer = http.post(f"/v1/jobs/{job_id}/retry", headers=operator.headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "queued" and body["attempts"] == 0
        assert body["last_error"].startswith("upstream answered 503")
        # No scheduler runs here: the message went out when the request committed.
        assert wait_for(lambda: job_status(engine, job_id) == "succeeded", timeout=30), (
            log.read_text()
        )
    assert runs_of(engine, job_id) == 1
    listed = http.get("/v1/jobs", params={"status": "succeeded"}, headers=operator.headers)
    assert [j["id"] for j in listed.json()["items"]] == [str(job_id)]
    assert listed.json()["items"][0]["attempts"] == 1
    with engine.connect() as conn:
        audit = conn.execute(text("SELECT action, resource_id, actor_id FROM audit_logs")).all()
    assert audit == [("job.retry", job_id, operator.client_id)]


def test_retry_dead_queues_every_dead_job_of_a_type_and_the_worker_runs_them(
    http: TestClient,
    operator: Key,
    engine: Engine,
    gradeflow_env: dict[str, str],
    tmp_path: Path,
) -> None:
    prepare(engine)
    effects = [dead_job(engine) for _ in range(3)]
    other = dead_job(engine, job_type="test.always_fail")
    with running(worker_argv(), gradeflow_env, tmp_path / "worker.log"):
        answer = http.post(
            "/v1/jobs/retry-dead", params={"job_type": "test.effect"}, headers=operator.headers
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"retried": 3}
        assert wait_for(
            lambda: all(job_status(engine, j) == "succeeded" for j in effects), timeout=30
        )
    assert job_status(engine, other) == "dead"
    nothing = http.post(
        "/v1/jobs/retry-dead", params={"job_type": "test.effect"}, headers=operator.headers
    )
    assert nothing.json() == {"retried": 0}
    everything = http.post("/v1/jobs/retry-dead", headers=operator.headers)
    assert everything.json() == {"retried": 1}
    assert job_status(engine, other) == "queued"


def test_states_that_forbid_a_move_get_409_and_unknown_jobs_404(
    http: TestClient, operator: Key, engine: Engine
) -> None:
    succeeded = insert_job(engine, SeedJob(status="succeeded", attempts=1))
    queued = insert_job(engine, SeedJob(status="queued"))
    missing = uuid.uuid4()

    refused = http.post(f"/v1/jobs/{succeeded}/retry", headers=operator.headers)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "job_not_retryable"
    assert "it is succeeded" in error["message"] and "dead or cancelled" in error["message"]
    assert error["details"][0]["field"] == "status"
    uncancellable = http.post(f"/v1/jobs/{succeeded}/cancel", headers=operator.headers)
    assert uncancellable.status_code == 409
    assert uncancellable.json()["error"]["code"] == "job_not_cancellable"
    for verb in ("retry", "cancel"):
        gone = http.post(f"/v1/jobs/{missing}/{verb}", headers=operator.headers)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"

    cancelled = http.post(f"/v1/jobs/{queued}/cancel", headers=operator.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["completed_at"] is not None
    again = http.post(f"/v1/jobs/{queued}/cancel", headers=operator.headers)
    assert again.status_code == 409
    # A cancelled job may be retried.
    revived = http.post(f"/v1/jobs/{queued}/retry", headers=operator.headers)
    assert revived.status_code == 200 and revived.json()["status"] == "queued"


def test_listing_filters_and_pages_without_gaps_or_repeats(
    http: TestClient, operator: Key, engine: Engine
) -> None:
    dead = {dead_job(engine) for _ in range(5)}
    queued = insert_job(engine, SeedJob(status="queued"))
    other_type = dead_job(engine, job_type="score_rules")

    seen: list[str] = []
    cursor = None
    while True:
        params = {"status": "dead", "job_type": "test.effect", "limit": 2}
        page = http.get(
            "/v1/jobs", params={**params, **({"cursor": cursor} if cursor else {})},
            headers=operator.headers,
        )  # fmt: skip
        assert page.status_code == 200, page.text
        seen += [job["id"] for job in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(str(j) for j in dead) and len(seen) == len(set(seen))

    everything = http.get("/v1/jobs", headers=operator.headers).json()["items"]
    assert {j["id"] for j in everything} == {str(j) for j in {*dead, queued, other_type}}
    stamps = [j["queued_at"] for j in everything]
    assert stamps == sorted(stamps, reverse=True)
    first = everything[0]
    assert set(first) >= {"id", "job_type", "queue", "status", "attempts", "last_error"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "exploded"}, "status"),
        ({"limit": 0}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"job_type": "x" * 33}, "job_type"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_queries_are_422_naming_the_field(
    http: TestClient, operator: Key, params: dict[str, object], field: str
) -> None:
    answer = http.get("/v1/jobs", params=params, headers=operator.headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"][0]["field"] == field


def test_only_operators_and_admins_may_use_the_desk(
    http: TestClient, engine: Engine, operator: Key
) -> None:
    job_id = dead_job(engine)
    submitter = add_client(engine, "submitter")
    admin = add_client(engine, "admin")
    for method, path in [
        ("GET", "/v1/jobs"),
        ("POST", f"/v1/jobs/{job_id}/retry"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
        ("POST", "/v1/jobs/retry-dead"),
    ]:
        assert http.request(method, path).status_code == 401
        forbidden = http.request(method, path, headers=submitter.headers)
        assert forbidden.status_code == 403, path
    assert job_status(engine, job_id) == "dead"
    assert http.get("/v1/jobs", headers=admin.headers).status_code == 200
    assert http.post(f"/v1/jobs/{job_id}/retry", headers=admin.headers).status_code == 200
