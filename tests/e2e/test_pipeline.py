"""One assessment through the whole system as a client meets it: `gradeflow api`, a
worker on every queue and the scheduler as subprocesses, real HTTP, real PostgreSQL and
Redis. No LLM is configured, so essays are graded by the offline scorer: the
assessment completes, degraded, with every score explained, and a receiver on loopback
gets ``assessment.completed``, signed, carrying what ``GET`` returns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gradeflow.jobs.registry import QUEUES
from tests.e2e.test_api_server import bearer, create_client, serve
from tests.fakes.webhook_receiver import Receiver, receiving
from tests.integration.api_helpers import essay_body, multiple_choice_body, profile_body, role_body
from tests.support.processes import running, scheduler_argv, wait_for, worker_argv


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    """A webhook receiver on loopback; the test gives it the endpoint's secret."""
    with receiving([]) as (hooks, port):
        yield hooks, port


@pytest.fixture
def system(gradeflow_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """Base URL of the API, with a worker for every queue and the scheduler running."""
    env = {
        **gradeflow_env,
        "GRADEFLOW_EMBEDDINGS": "hash",
        "GRADEFLOW_WEBHOOK_ALLOW_HTTP": "1",
        "GRADEFLOW_WEBHOOK_ALLOW_LIST": '["127.0.0.1/32"]',
    }
    with (
        running(worker_argv(QUEUES, threads=4), env, tmp_path / "worker.log"),
        running(scheduler_argv(), env, tmp_path / "scheduler.log"),
    ):
        yield from serve(env, tmp_path)


def test_an_assessment_is_scored_end_to_end(
    system: str, gradeflow_env: dict[str, str], tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    hooks, port = receiver
    admin = bearer(create_client(gradeflow_env, "ops", "admin")["api_key"])
    app = bearer(create_client(gradeflow_env, "platform", "submitter")["api_key"])
    http = httpx.Client(base_url=system, timeout=10)
    role = http.post("/v1/roles", json=role_body(), headers=admin).json()["id"]
    questions = {
        name: http.post("/v1/questions", json=body, headers=admin).json()["id"]
        for name, body in (
            ("mc", multiple_choice_body(role)),
            ("essay", essay_body(role)),
            ("profile", profile_body(role)),
        )
    }
    endpoint = http.post(
        "/v1/webhook-endpoints",
        headers=app,
        json={"url": f"http://127.0.0.1:{port}/hook", "event_types": ["assessment.completed"]},
    )
    assert endpoint.status_code == 201, endpoint.text
    hooks.secrets.append(endpoint.json()["secret"])
    essay = "A b-tree index keeps keys sorted, so a lookup reads few pages."
    submission = {
        "user": {"external_id": "u-1", "email": "ada@example.com"},
        "role_id": role,
        "responses": [
            {"question_id": questions["mc"], "answer": "a"},
            {"question_id": questions["essay"], "answer": essay},
            {"question_id": questions["profile"], "answer": "daily"},
        ],
    }

    accepted = http.post("/v1/assessments", json=submission, headers=app)
    assert accepted.status_code == 202, accepted.text
    link = accepted.json()["links"]["self"]

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = http.get(link, headers=app).json()
        return body if body["status"] != "awaiting_async" else None

    assert wait_for(lambda: finished() is not None, timeout=90), (
        tmp_path / "worker.log"
    ).read_text()[-3000:]
    result = finished()
    assert result is not None
    assert result["status"] == "completed"
    assert result["degraded"] is True
    by_question = {q["question_id"]: q for q in result["questions"]}
    assert by_question[questions["mc"]]["graded_by"] == "rules"
    assert by_question[questions["mc"]]["score"] == 1.5
    assert by_question[questions["essay"]]["graded_by"] == "fallback"
    assert by_question[questions["profile"]]["score"] == 0.9
    assert all(q["explanation"] for q in result["questions"])
    assert result["total_score"] is not None
    assert set(result["skill_scores"]) == {"sql"}
    assert result["timings"]["duration_ms"] >= 0

    assert wait_for(lambda: hooks.count() == 1, timeout=60)
    (event,) = hooks.received
    assert event.verified == [True]
    delivered = json.loads(event.body)
    assert delivered["type"] == "assessment.completed"
    assert delivered["data"] == result
