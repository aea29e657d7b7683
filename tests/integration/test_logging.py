"""Logs: real workers grade essays and deliver webhooks, and their stderr is read back —
every line JSON, every line of a job carrying its ids, and no key, secret or essay in it.

Also: the redaction net on its own, and an API request's lines carrying its client.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi import Depends
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from gradeflow.api.app import create_app
from gradeflow.api.auth import authenticate
from gradeflow.db.catalog import NewQuestion, insert_question, insert_role
from gradeflow.db.engine import transaction
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.webhooks import emit_event
from gradeflow.logs import CHATTY_LIBRARIES, REDACTED, Redactor, merge_request_ids, redact
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.messages import send_messages
from tests.fakes.openai_server import FakeOpenAI, fake_openai
from tests.fakes.webhook_receiver import Script, receiving
from tests.integration.api_helpers import Key, add_client, api_settings
from tests.support.processes import running, scheduler_argv, wait_for, worker_argv

MODEL = "fake-grader"
RUBRIC = {
    "criteria": [
        {
            "name": "accuracy",
            "description": "Explains how an index speeds up lookups.",
            "levels": [{"score": 0, "descriptor": "Wrong."}, {"score": 5, "descriptor": "Right."}],
            "keywords": ["b-tree"],
        }
    ],
    "skills": ["sql"],
}
#: The ids every line logged while a job runs carries.
JOB_IDS = ("job_id", "job_type", "assessment_id", "client_id")


# -- the redaction net -------------------------------------------------------------------------


def test_redact_blanks_keys_secrets_bearer_tokens_and_sql_parameters() -> None:
    key = "gf_" + secrets.token_urlsafe(32)
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
    line = (
        f"key {key}; secret {secret}; sk-proj-abcdefghijklmnop; Authorization: Bearer abc.def\n"
        "[SQL: INSERT INTO responses (answer) VALUES (%(answer)s)]\n"
        "[parameters: {'answer': 'My essay about b-trees ] and more'}]\n"
        "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
    )

    cleaned = redact(line)

    for leaked in (key, secret, "sk-proj-abcdefghijklmnop", "abc.def", "My essay"):
        assert leaked not in cleaned
    assert cleaned.count(REDACTED) == 5
    assert "[SQL: INSERT INTO responses (answer) VALUES (%(answer)s)]" in cleaned
    assert cleaned.endswith("(Background on this error at: https://sqlalche.me/e/20/gkpj)")


def test_the_redactor_cleans_nested_values_and_configured_literals() -> None:
    redactor = Redactor(["local-key-123456"])
    event = {
        "event": "boom local-key-123456",
        "error": {"message": "whsec_abc", "details": ["gf_" + "x" * 43, 42]},
        "count": 3,
    }

    cleaned = redactor(None, "warning", event)

    assert cleaned == {
        "event": f"boom {REDACTED}",
        "error": {"message": REDACTED, "details": [REDACTED, 42]},
        "count": 3,
    }


# -- an API request's lines -------------------------------------------------------------------


def test_lines_of_an_api_request_carry_its_client(
    database_url: str, redis_url: str, engine: Engine
) -> None:
    app = create_app(api_settings(database_url, redis_url))
    probe_log = structlog.get_logger("probe")

    # A route of the test's own, behind the real authentication: a sync endpoint runs in
    # another thread (and context) than the dependency that checked the key.
    @app.get("/_probe", dependencies=[Depends(authenticate)])
    def probe() -> dict[str, str]:
        probe_log.info("probing")
        return {}

    key = add_client(engine, "submitter")
    with (
        TestClient(app) as http,
        structlog.testing.capture_logs(processors=[merge_request_ids]) as lines,
    ):
        assert http.get("/_probe", headers=key.headers).status_code == 200
        assert http.get("/_probe").status_code == 401
        assert http.get("/_probe", headers=key.headers).status_code == 200

    probes = [line for line in lines if line["event"] == "probing"]
    assert [line.get("client_id") for line in probes] == [str(key.client_id)] * 2
    app.state.services.close()


# -- real workers ---------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as server:
        yield server


def submit_essays(http: TestClient, engine: Engine, key: Key, essays: list[str]) -> uuid.UUID:
    """An essay-only assessment submitted through the API with ``key``."""
    with transaction(engine) as session:
        role = insert_role(
            session, name="DBA", description=None, skills_profile={"sql": 80}, active=True
        )
        questions = [
            insert_question(
                session,
                NewQuestion(role.id, "essay", f"Explain ({i}).", None, RUBRIC, Decimal(2), "1"),
            )
            for i in range(len(essays))
        ]
    answer = http.post(
        "/v1/assessments",
        headers=key.headers,
        json={
            "user": {"external_id": "u-1", "email": "u@example.com"},
            "role_id": str(role.id),
            "responses": [
                {"question_id": str(q.id), "answer": essay}
                for q, essay in zip(questions, essays, strict=True)
            ],
        },
    )
    assert answer.status_code == 202, answer.text
    return uuid.UUID(answer.json()["id"])


def register(http: TestClient, key: Key, port: int) -> dict[str, Any]:
    answer = http.post(
        "/v1/webhook-endpoints",
        headers=key.headers,
        json={"url": f"http://127.0.0.1:{port}/hook", "event_types": ["assessment.completed"]},
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def json_lines(log: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The log's JSON lines, and its other lines."""
    parsed, other = [], []
    for line in log.read_text(errors="replace").splitlines():
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            other.append(line)
    return parsed, other


def scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def test_worker_logs_carry_ids_and_never_keys_secrets_or_essays(
    engine: Engine,
    database_url: str,
    redis_url: str,
    gradeflow_env: dict[str, str],
    server: FakeOpenAI,
    tmp_path: Path,
) -> None:
    openai_key = "sk-" + secrets.token_urlsafe(32)
    marker = uuid.uuid4().hex
    essays = [
        f"alpha {marker}: an index keeps sorted keys in a b-tree, my secret insight.",
        f"beta {marker}: indexes make writes slower, which nobody else should read.",
    ]
    env = {
        **gradeflow_env,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": openai_key,
        "GRADEFLOW_LLM_MODEL": MODEL,
        "GRADEFLOW_RETRY_BASE_SECONDS": "0.2",
        "GRADEFLOW_WEBHOOK_ALLOW_HTTP": "1",
        "GRADEFLOW_WEBHOOK_ALLOW_LIST": '["127.0.0.1/32"]',
        "GRADEFLOW_WEBHOOK_RETRY_SCHEDULE": "[0, 0.5, 0.5]",
    }
    settings = api_settings(
        database_url, redis_url, webhook_allow_http=True, webhook_allow_list=["127.0.0.1/32"]
    )
    # One essay breaks the schema once, then is graded; the other hits a spent quota (its
    # job dies, the offline scorer takes over).
    server.script({"kind": "schema_break"}, {"kind": "grade", "score": 4}, match="alpha")
    server.script({"kind": "quota"}, match="beta")
    key = add_client(engine, "submitter")
    log = tmp_path / "procs.log"
    with (
        TestClient(create_app(settings)) as http,
        receiving([]) as (_, ok_port),
        receiving([], Script(statuses=[410])) as (_, gone_port),
        running(worker_argv(("cpu", "llm", "webhooks")), env, log),
        running(scheduler_argv(), env, log),
    ):
        secrets_shown = [register(http, key, port)["secret"] for port in (ok_port, gone_port)]
        assessment_id = submit_essays(http, engine, key, essays)
        # A delivery per endpoint, about this assessment, its body quoting an essay.
        with engine.begin() as conn:
            jobs = emit_event(
                conn,
                key.client_id,
                "assessment.completed",
                {"quote": essays[0]},
                assessment_id=assessment_id,
            )
            messages = insert_new_jobs(conn, jobs, 500).messages
        send_messages(build_broker(Settings(redis_url=redis_url, _env_file=None)), messages)

        def done() -> bool:
            return (
                scalar(engine, "SELECT count(*) FROM essay_scores") == 2
                and scalar(engine, "SELECT count(*) FROM webhook_endpoints WHERE NOT enabled") == 1
                and scalar(engine, "SELECT count(*) FROM webhook_events WHERE status = 'delivered'")
                >= 1
                and any(e.get("event") == "webhook endpoint disabled" for e in json_lines(log)[0])
            )

        assert wait_for(done, timeout=90), log.read_text()[-5000:]

    text_logged = log.read_text(errors="replace")
    for leaked in (key.key, *secrets_shown, openai_key, marker, *essays):
        assert leaked not in text_logged

    lines, other = json_lines(log)
    # Only Dramatiq's parent process writes plain lines (it starts before gradeflow's logging).
    assert all("[dramatiq.MainProcess]" in line for line in other), other
    # The standard library's lines are JSON too (Dramatiq's worker process logs this one).
    assert any(e.get("event") == "Worker process is ready for action." for e in lines)
    # The HTTP client's line per model call stays below the worker's level.
    assert not [e for e in lines if e.get("logger") in CHATTY_LIBRARIES]

    def about_this(event: str, job_type: str) -> list[dict[str, Any]]:
        return [e for e in lines if e.get("event") == event and e.get("job_type") == job_type]

    graded = about_this("essay graded", "score_essay") + about_this(
        "essay graded", "score_essay_offline"
    )
    dead_essay = about_this("job is dead", "score_essay")
    disabled = about_this("webhook endpoint disabled", "deliver_webhook")
    dead_delivery = about_this("job is dead", "deliver_webhook")
    assert (len(graded), len(dead_essay), len(disabled), len(dead_delivery)) == (2, 1, 1, 1)
    for event in (*graded, *dead_essay, *disabled, *dead_delivery):
        assert event["assessment_id"] == str(assessment_id)
        assert event["client_id"] == str(key.client_id)
        assert uuid.UUID(event["job_id"])
    # Every line logged while a job ran carries all of its ids.
    for event in lines:
        if "job_id" in event:
            assert all(name in event for name in JOB_IDS), event
