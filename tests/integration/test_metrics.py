"""Metrics: ``/metrics`` scraped through the real app after real workers ran real jobs, the
``snapshot_metrics`` job's rows from known job states, and an assessment's rows at its end.

Job rows are seeded with times relative to the database's clock, so every figure
(ages, percentiles, counts over the last minute) has one exact expected value.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, Engine, text

import tests.support.jobs  # noqa: F401  (registers the test job types in this process too)
from gradeflow.api.app import create_app
from gradeflow.db import metrics as db_metrics
from gradeflow.db.assessments import (
    NewAssessment,
    Progress,
    finish_assessment,
    insert_assessment,
    lock_progress,
)
from gradeflow.db.catalog import NewQuestion, insert_question, insert_role
from gradeflow.db.engine import transaction
from gradeflow.db.jobs import database_now
from gradeflow.db.metrics import minute_figures, record_assessment_metrics
from gradeflow.db.scores import NewEssayScore, upsert_essay_score
from gradeflow.jobs import metric_names as names
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.pipeline import Finish, scoring_jobs, take_step
from gradeflow.jobs.registry import JobContext, NewJob
from gradeflow.jobs.snapshots import SNAPSHOT_METRICS, snapshot_metrics, snapshot_rows
from gradeflow.jobs.webhooks import emit_event
from gradeflow.metrics import clear_multiprocess_dir
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.messages import send_messages
from tests.fakes.openai_server import FakeOpenAI, fake_openai
from tests.fakes.webhook_receiver import Script, receiving
from tests.integration.api_helpers import Key, add_client, api_settings
from tests.support.jobs import TEST_TABLES_DDL
from tests.support.processes import running, scheduler_argv, wait_for, worker_argv

MODEL = "fake-grader"
PRICE = {"input_per_mtok": 10_000, "output_per_mtok": 20_000, "as_of": "2026-01-01"}
RUBRIC = {
    "criteria": [
        {
            "name": "accuracy",
            "description": "Explains how an index speeds up lookups.",
            "levels": [{"score": 0, "descriptor": "Wrong."}, {"score": 5, "descriptor": "Right."}],
        }
    ],
    "skills": ["sql"],
}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- helpers -----------------------------------------------------------------------------


def seed_job(
    conn: Connection,
    now: datetime,
    job_type: str,
    status: str,
    *,
    queue: str = "cpu",
    due: float = -10.0,
    started: float | None = None,
    completed: float | None = None,
    errors_at: Sequence[float] = (),
) -> None:
    """One ``async_jobs`` row in ``status``, its times ``now`` + the given seconds."""

    def at(seconds: float | None) -> datetime | None:
        return None if seconds is None else now + timedelta(seconds=seconds)

    errors = [
        {
            "attempt": i + 1,
            "at": (now + timedelta(seconds=s)).isoformat(),
            "type": "Error",
            "message": "boom",
        }
        for i, s in enumerate(errors_at)
    ]
    conn.execute(
        text(
            "INSERT INTO async_jobs (job_type, queue_name, status, attempts, queued_at,"
            " next_run_at, started_at, completed_at, locked_by, locked_until, error_payload)"
            " VALUES (:type, :queue, :status, 1, :queued, :due, :started, :completed,"
            " :locked_by, :locked_until, CAST(:errors AS jsonb))"
        ),
        {
            "type": job_type,
            "queue": queue,
            "status": status,
            "queued": now + timedelta(seconds=min(due, 0)),
            "due": at(due),
            "started": at(started),
            "completed": at(completed),
            "locked_by": "test:1:a" if status == "running" else None,
            "locked_until": at(60) if status == "running" else None,
            "errors": json.dumps({"errors": errors}) if errors else None,
        },
    )


def seed_minute(conn: Connection) -> None:
    """Jobs whose figures over the last minute are known exactly (see each comment)."""
    now = database_now(conn)
    # cpu / t.a: 3 queued (2 due: the oldest for 30 s; 1 in an hour), 1 running,
    # 2 succeeded in the window (1 s and 3 s of run time), 1 long ago, 1 cancelled.
    seed_job(conn, now, "t.a", "queued", due=-30)
    seed_job(conn, now, "t.a", "queued", due=-5)
    seed_job(conn, now, "t.a", "queued", due=3600)
    seed_job(conn, now, "t.a", "running", due=-4, started=-2)  # pickup 2 s
    seed_job(conn, now, "t.a", "succeeded", due=-11, started=-10, completed=-9)  # 1 s, 1 s
    seed_job(conn, now, "t.a", "succeeded", due=-23, started=-20, completed=-17)  # 3 s, 3 s
    seed_job(conn, now, "t.a", "succeeded", due=-200, started=-190, completed=-120)
    seed_job(conn, now, "t.a", "cancelled", due=-5, started=-4, completed=-3)
    # llm / t.b: dead after two failures in the window; a retry waiting, failed 3 s ago;
    # an old failure of a job due long ago is outside the window.
    seed_job(
        conn, now, "t.b", "dead", queue="llm", due=-6, started=-6, completed=-5, errors_at=[-30, -5]
    )
    seed_job(conn, now, "t.b", "queued", queue="llm", due=100, errors_at=[-3])
    seed_job(conn, now, "t.b", "running", queue="llm", due=-200, started=-190, errors_at=[-300])


def figures_of(engine: Engine) -> db_metrics.MinuteFigures:
    with engine.begin() as conn:
        return minute_figures(conn, ("cpu", "llm", "webhooks"), cap=1000)


def scrape(http: TestClient) -> Samples:
    answer = http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name{labels}``; absent is an error, not 0."""
    key = (name, frozenset(labels.items()))
    assert key in samples, (
        f"{name}{labels} not scraped: {sorted(k for k in samples if k[0] == name)}"
    )
    return samples[key]


def snapshot_table(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT assessment_id, metric_type, value, context, captured_at"
                " FROM metric_snapshots ORDER BY metric_type, context::text"
            )
        ).mappings()
        return [dict(row) for row in rows]


def essay_assessment(engine: Engine, client_id: uuid.UUID, essays: Sequence[str]) -> Any:
    """An awaiting essay-only assessment, its answers ``essays``; returns what was inserted."""
    with transaction(engine) as session:
        role = insert_role(
            session, name="DBA", description=None, skills_profile={"sql": 80}, active=True
        )
        questions = [
            insert_question(
                session,
                NewQuestion(
                    role.id, "essay", f"Explain an index ({i}).", None, RUBRIC, Decimal(2), "1"
                ),
            )
            for i in range(len(essays))
        ]
        inserted = insert_assessment(
            session,
            NewAssessment(
                client_id,
                f"u-{uuid.uuid4().hex[:8]}",
                f"{uuid.uuid4().hex[:8]}@example.com",
                role.id,
                None,
                answers=[(q.id, e) for q, e in zip(questions, essays, strict=True)],
            ),
        )
    return inserted, [inserted.snapshot_ids[q.id] for q in questions]


def essay_score(
    assessment_id: uuid.UUID, snapshot_id: uuid.UUID, cents: str | None, tokens: tuple[int, int]
) -> NewEssayScore:
    cost = {"prompt_tokens": tokens[0], "completion_tokens": tokens[1], "estimated": False}
    return NewEssayScore(
        assessment_id=assessment_id,
        snapshot_id=snapshot_id,
        score=Decimal("1.00"),
        model=MODEL,
        prompt_version="essay-v1",
        latency_ms=5,
        cost_cents=None if cents is None else Decimal(cents),
        response_payload={"grader": "llm", "cost": cost},
    )


def send(engine: Engine, redis_url: str, jobs: Sequence[NewJob]) -> None:
    with engine.begin() as conn:
        messages = insert_new_jobs(conn, jobs, 500).messages
    broker = build_broker(Settings(redis_url=redis_url, _env_file=None))
    try:
        send_messages(broker, messages)
    finally:
        broker.close()


# -- the names ------------------------------------------------------------------------------


def test_db_spells_the_per_assessment_metric_types_as_metric_names_does() -> None:
    assert (db_metrics._E2E_MS, db_metrics._LLM_COST_CENTS, db_metrics._LLM_TOKENS) == (
        names.ASSESSMENT_E2E_MS,
        names.ASSESSMENT_LLM_COST_CENTS,
        names.ASSESSMENT_LLM_TOKENS,
    )


def test_clearing_the_directory_deletes_metric_files_only(tmp_path: Path) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("mine")

    clear_multiprocess_dir(tmp_path)

    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# -- snapshot_metrics -------------------------------------------------------------------------


def test_the_minute_figures_come_from_the_job_rows(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_minute(conn)

    figures = figures_of(engine)

    assert figures.jobs.counts == {
        ("cpu", "t.a", "queued"): 3,
        ("cpu", "t.a", "running"): 1,
        ("llm", "t.b", "queued"): 1,
        ("llm", "t.b", "running"): 1,
    }
    assert figures.jobs.capped == frozenset()
    assert figures.oldest_due_seconds.keys() == {"cpu"}
    assert 30 <= figures.oldest_due_seconds["cpu"] < 35
    assert figures.succeeded == {("cpu", "t.a"): 2}
    assert figures.failed_attempts == {("llm", "t.b"): 3}
    # cpu pickups 1000, 2000 (running), 3000 ms; llm: the dead job's 0 (its running one
    # started long ago). percentile_cont interpolates: 2000 + 0.9 x 1000.
    assert figures.pickup_p95_ms == {"cpu": pytest.approx(2900), "llm": pytest.approx(0)}
    # cpu run times 1000 and 3000 ms (the cancelled one is not a run); llm's dead one 1000.
    assert figures.duration_p95_ms == {
        ("cpu", "t.a"): pytest.approx(2900),
        ("llm", "t.b"): pytest.approx(1000),
    }


def test_a_count_that_reaches_the_cap_says_so(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_minute(conn)
        counts = db_metrics.job_counts(conn, ("queued", "running"), cap=2)
    assert counts.capped == frozenset({"queued", "running"})
    assert sum(n for (_, _, s), n in counts.counts.items() if s == "queued") == 2


def test_snapshot_rows_fill_known_series_with_zeros_and_keep_percentiles_with_samples(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        seed_minute(conn)
    figures = figures_of(engine)

    rows = snapshot_rows(figures, [("cpu", "t.a"), ("webhooks", "t.c")], ("cpu", "llm", "webhooks"))
    by_key = {(r.metric_type, json.dumps(r.context, sort_keys=True)): r.value for r in rows}

    def get(metric_type: str, **context: str) -> Decimal:
        return by_key.pop((metric_type, json.dumps(context, sort_keys=True)))

    for queue, job_type, depth, running_, done, failed in (
        ("cpu", "t.a", 3, 1, 2, 0),
        ("llm", "t.b", 1, 1, 0, 3),
        ("webhooks", "t.c", 0, 0, 0, 0),
    ):
        assert get(names.QUEUE_DEPTH, queue=queue, job_type=job_type) == depth
        assert get(names.RUNNING, queue=queue, job_type=job_type) == running_
        assert get(names.THROUGHPUT, queue=queue, job_type=job_type) == done
        assert get(names.FAILURES, queue=queue, job_type=job_type) == failed
    assert get(names.DURATION_P95_MS, queue="cpu", job_type="t.a") == Decimal("2900.000")
    assert get(names.DURATION_P95_MS, queue="llm", job_type="t.b") == Decimal("1000.000")
    assert 30 <= get(names.OLDEST_QUEUED_S, queue="cpu") < 35
    assert get(names.OLDEST_QUEUED_S, queue="llm") == 0
    assert get(names.OLDEST_QUEUED_S, queue="webhooks") == 0
    assert get(names.PICKUP_P95_MS, queue="cpu") == Decimal("2900.000")
    assert get(names.PICKUP_P95_MS, queue="llm") == 0
    assert by_key == {}  # nothing else: no percentile without samples


def test_the_snapshot_job_writes_the_minute_once_and_prunes_old_rows(engine: Engine) -> None:
    if time.time() % 60 > 50:  # both runs must fall in one minute
        time.sleep(61 - time.time() % 60)
    with engine.begin() as conn:
        seed_minute(conn)
        conn.execute(
            text(
                "INSERT INTO metric_snapshots (metric_type, value, context, captured_at)"
                " VALUES ('queue_depth', 7, '{}', now() - interval '30 days'),"
                " ('queue_depth', 8, '{}', now() - interval '1 day')"
            )
        )
    context = JobContext(uuid.uuid4(), SNAPSHOT_METRICS, 1, {}, None, None, engine)

    snapshot_metrics(context)
    first = snapshot_table(engine)
    snapshot_metrics(context)

    assert snapshot_table(engine) == first
    stamps = {row["captured_at"] for row in first if row["value"] not in (7, 8)}
    assert len(stamps) == 1 and next(iter(stamps)).second == 0  # the minute
    assert [row["value"] for row in first if row["value"] in (7, 8)] == [8]  # 30 days: pruned
    mine = {
        (row["metric_type"], row["context"].get("job_type"), row["context"]["queue"]): row["value"]
        for row in first
        if row["context"]
        and row["context"].get("job_type", "t.").startswith("t.")
        and row["context"]["queue"] in ("cpu", "llm")
        and row["value"] not in (7, 8)
    }
    assert mine[names.QUEUE_DEPTH, "t.a", "cpu"] == 3
    assert mine[names.FAILURES, "t.b", "llm"] == 3
    assert mine[names.THROUGHPUT, "t.a", "cpu"] == 2
    assert mine[names.PICKUP_P95_MS, None, "cpu"] == Decimal("2900.000")
    assert all(row["assessment_id"] is None for row in first)
    # The rows' contexts are exactly what metric_names documents.
    for row in first:
        if row["value"] in (7, 8):
            continue
        expected = (
            {"queue"}
            if row["metric_type"] in (names.OLDEST_QUEUED_S, names.PICKUP_P95_MS)
            else {"queue", "job_type"}
        )
        assert set(row["context"]) == expected, row


# -- per assessment ------------------------------------------------------------------------------


def test_an_assessment_leaves_its_latency_cost_and_tokens_when_it_finishes(
    engine: Engine,
) -> None:
    client_id = add_client(engine, "submitter").client_id
    priced, [first, second] = essay_assessment(engine, client_id, ["one", "two"])
    unpriced, [only] = essay_assessment(engine, client_id, ["three"])
    with engine.begin() as conn:
        upsert_essay_score(conn, essay_score(priced.id, first, "1.25", (100, 20)))
        upsert_essay_score(conn, essay_score(priced.id, second, "0.50", (50, 5)))
        upsert_essay_score(conn, essay_score(unpriced.id, only, None, (10, 1)))
        conn.execute(
            text(
                "UPDATE assessments SET created_at = now() - interval '1.5 seconds'"
                " WHERE id IN (:a, :b)"
            ),
            {"a": priced.id, "b": unpriced.id},
        )
        # The pipeline's own finish writes the priced one's rows; the other is finished here.
        progress = db_locked_progress(conn, priced.id)
        take_step(conn, priced.id, progress, Finish("completed", "test"))
        assert finish_assessment(
            conn,
            unpriced.id,
            status="completed",
            degraded=False,
            total_score=None,
            skill_scores={},
        )
        assert record_assessment_metrics(conn, unpriced.id) == 2

    rows = {
        (row["assessment_id"], row["metric_type"]): row["value"] for row in snapshot_table(engine)
    }
    assert rows == {
        (priced.id, names.ASSESSMENT_E2E_MS): Decimal("1500.000"),
        (priced.id, names.ASSESSMENT_LLM_COST_CENTS): Decimal("1.750"),
        (priced.id, names.ASSESSMENT_LLM_TOKENS): Decimal("175.000"),
        # An essay without a price: no cost row, rather than a cost of 0.
        (unpriced.id, names.ASSESSMENT_E2E_MS): Decimal("1500.000"),
        (unpriced.id, names.ASSESSMENT_LLM_TOKENS): Decimal("11.000"),
    }


def db_locked_progress(conn: Connection, assessment_id: uuid.UUID) -> Progress:
    progress = lock_progress(conn, assessment_id)
    assert progress is not None
    return progress


def test_an_assessment_not_finished_leaves_nothing(engine: Engine) -> None:
    client_id = add_client(engine, "submitter").client_id
    inserted, _ = essay_assessment(engine, client_id, ["one"])
    with engine.begin() as conn:
        assert record_assessment_metrics(conn, inserted.id) == 0
    assert snapshot_table(engine) == []


# -- /metrics: what Postgres holds ---------------------------------------------------------


@pytest.fixture
def http(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = api_settings(database_url, redis_url, home=tmp_path / "home")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def seed_endpoints(engine: Engine, client_id: uuid.UUID) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO webhook_endpoints (client_id, url, secret, event_types, enabled,"
                " failing_since, deleted_at) VALUES"
                " (:c, 'https://a.example/h', 'whsec_a', '{assessment.completed}', true,"
                "  NULL, NULL),"
                " (:c, 'https://b.example/h', 'whsec_b', '{assessment.completed}', true,"
                "  now() - interval '90 seconds', NULL),"
                " (:c, 'https://c.example/h', 'whsec_c', '{assessment.completed}', true,"
                "  now() - interval '10 seconds', NULL),"
                " (:c, 'https://d.example/h', 'whsec_d', '{assessment.completed}', false,"
                "  now() - interval '9 days', NULL),"
                " (:c, 'https://e.example/h', 'whsec_e', '{assessment.completed}', true,"
                "  now() - interval '9 days', now())"
            ),
            {"c": client_id},
        )


def test_metrics_reads_jobs_and_endpoint_health_from_postgres(
    engine: Engine, http: TestClient
) -> None:
    with engine.begin() as conn:
        seed_minute(conn)
        seed_job(conn, database_now(conn), "score_rules", "dead", completed=-1, started=-2)
    seed_endpoints(engine, add_client(engine, "submitter").client_id)

    samples = scrape(http)

    assert value(samples, "gradeflow_metrics_database_up") == 1
    jobs = "gradeflow_jobs"
    assert value(samples, jobs, queue="cpu", job_type="t.a", state="queued") == 3
    assert value(samples, jobs, queue="cpu", job_type="t.a", state="running") == 1
    assert value(samples, jobs, queue="llm", job_type="t.b", state="dead") == 1
    assert value(samples, jobs, queue="cpu", job_type="score_rules", state="dead") == 1
    # Every registered job type has its series, 0 when it has no jobs.
    assert value(samples, jobs, queue="webhooks", job_type="deliver_webhook", state="queued") == 0
    assert value(samples, "gradeflow_jobs_count_capped", state="queued") == 0
    assert 30 <= value(samples, "gradeflow_oldest_queued_job_age_seconds", queue="cpu") < 35
    assert value(samples, "gradeflow_oldest_queued_job_age_seconds", queue="llm") == 0
    endpoints = "gradeflow_webhook_endpoints"
    assert value(samples, endpoints, state="healthy") == 1
    assert value(samples, endpoints, state="failing") == 2
    assert value(samples, endpoints, state="disabled") == 1  # the deleted one is not counted
    assert 90 <= value(samples, "gradeflow_webhook_endpoint_longest_failing_seconds") < 95


def test_metrics_is_open_to_anyone_and_not_in_the_spec(http: TestClient) -> None:
    assert http.get("/metrics").status_code == 200
    assert "/metrics" not in http.get("/openapi.json").json()["paths"]
    assert http.post("/metrics").status_code == 405


# -- /metrics: what real workers recorded ------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as server:
        yield server


def worker_env(gradeflow_env: dict[str, str], server: FakeOpenAI) -> dict[str, str]:
    return {
        **gradeflow_env,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "GRADEFLOW_LLM_MODEL": MODEL,
        "GRADEFLOW_LLM_TIMEOUT_SECONDS": "2",
        "GRADEFLOW_LLM_PRICES": json.dumps({MODEL: PRICE}),
        "GRADEFLOW_RETRY_BASE_SECONDS": "0.2",
        "GRADEFLOW_WEBHOOK_ALLOW_HTTP": "1",
        "GRADEFLOW_WEBHOOK_ALLOW_LIST": '["127.0.0.1/32"]',
        "GRADEFLOW_WEBHOOK_RETRY_SCHEDULE": json.dumps([0, 0.5, 0.5, 0.5]),
        "GRADEFLOW_WEBHOOK_TIMEOUT_SECONDS": "2",
        "GRADEFLOW_METRICS_SNAPSHOT_SECONDS": "60",
    }


def register_endpoint(http: TestClient, key: Key, port: int) -> None:
    answer = http.post(
        "/v1/webhook-endpoints",
        headers=key.headers,
        json={"url": f"http://127.0.0.1:{port}/hook", "event_types": ["assessment.completed"]},
    )
    assert answer.status_code == 201, answer.text


def count_where(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def test_metrics_adds_up_what_real_workers_recorded(
    engine: Engine,
    redis_url: str,
    database_url: str,
    gradeflow_env: dict[str, str],
    server: FakeOpenAI,
    tmp_path: Path,
) -> None:
    with engine.begin() as conn:
        for ddl in TEST_TABLES_DDL:
            conn.execute(text(ddl))
    env = worker_env(gradeflow_env, server)
    settings = api_settings(
        database_url,
        redis_url,
        home=Path(env["GRADEFLOW_HOME"]),
        webhook_allow_http=True,
        webhook_allow_list=["127.0.0.1/32"],
    )
    grader = add_client(engine, "submitter")
    listener = add_client(engine, "submitter")
    server.script({"kind": "status", "status": 500}, {"kind": "grade", "score": 4}, match="alpha")
    log = tmp_path / "procs.log"
    with (
        TestClient(create_app(settings), raise_server_exceptions=False) as http,
        receiving([]) as (_, ok_port),
        receiving([], Script(statuses=[500, 200])) as (_, flaky_port),
        running(worker_argv(("cpu", "llm", "webhooks")), env, log),
        running(scheduler_argv(), env, log),
    ):
        register_endpoint(http, listener, ok_port)
        register_endpoint(http, listener, flaky_port)
        send(
            engine,
            redis_url,
            [
                *(NewJob("test.effect", payload={"sleep": 0.3}) for _ in range(3)),
                NewJob("test.always_fail"),
                NewJob("test.snooze_once"),
            ],
        )
        assessment, [snapshot] = essay_assessment(engine, grader.client_id, ["alpha: a b-tree"])
        send(engine, redis_url, scoring_jobs(assessment.id, grader.client_id, {snapshot: "essay"}))
        with engine.begin() as conn:
            deliveries = emit_event(conn, listener.client_id, "assessment.completed", {"n": 1})
        send(engine, redis_url, deliveries)

        def settled() -> bool:
            return (
                count_where(
                    engine,
                    "SELECT count(*) FROM async_jobs WHERE job_type LIKE 'test.%'"
                    " AND status IN ('succeeded', 'dead')",
                )
                == 5
                and count_where(engine, "SELECT count(*) FROM essay_scores") == 1
                and count_where(
                    engine, "SELECT count(*) FROM webhook_events WHERE status = 'delivered'"
                )
                == 2
                and count_where(
                    engine,
                    "SELECT count(*) FROM metric_snapshots WHERE metric_type = 'queue_depth'",
                )
                > 0
            )

        assert wait_for(settled, timeout=90), log.read_text()[-5000:]
        # Dramatiq counts a message after the job's outcome is written: let it land. (It
        # counts messages, not jobs: the relay may send a job's message again at start.)
        assert wait_for(
            lambda: (
                value(
                    scrape(http),
                    "dramatiq_messages_total",
                    queue_name="cpu",
                    actor_name="test.effect",
                )
                >= 3
            ),
            timeout=10,
        ), log.read_text()[-5000:]
        samples = scrape(http)

    def attempts(job_type: str, outcome: str) -> float:
        return value(
            samples, "gradeflow_job_attempts_total", queue="cpu", job_type=job_type, outcome=outcome
        )

    assert attempts("test.effect", "succeeded") == 3
    assert (attempts("test.always_fail", "retried"), attempts("test.always_fail", "dead")) == (2, 1)
    assert attempts("test.snooze_once", "snoozed") == attempts("test.snooze_once", "succeeded") == 1
    effect = {"queue": "cpu", "job_type": "test.effect"}
    assert value(samples, "gradeflow_job_duration_seconds_count", **effect) == 3
    assert value(samples, "gradeflow_job_duration_seconds_sum", **effect) >= 0.9
    assert value(samples, "gradeflow_job_duration_seconds_bucket", **effect, le="0.25") == 0
    assert value(samples, "gradeflow_job_pickup_seconds_count", **effect) == 3
    assert value(samples, "gradeflow_job_pickup_seconds_bucket", **effect, le="+Inf") == 3

    payload = essay_payload_cost(engine)
    assert value(samples, "gradeflow_llm_requests_total", model=MODEL, outcome="ok") == 1
    assert (
        value(samples, "gradeflow_llm_requests_total", model=MODEL, outcome="LlmUnavailable") == 1
    )
    tokens = "gradeflow_llm_tokens_total"
    assert value(samples, tokens, model=MODEL, kind="prompt") == payload["prompt_tokens"] > 0
    assert value(samples, tokens, model=MODEL, kind="completion") == payload["completion_tokens"]
    assert value(samples, "gradeflow_llm_cost_usd_total", model=MODEL) == pytest.approx(
        float(payload["usd"])
    )

    hooks = "gradeflow_webhook_attempts_total"
    assert value(samples, hooks, outcome="delivered", status_class="2xx") == 2
    assert value(samples, hooks, outcome="retrying", status_class="5xx") == 1

    # Dramatiq's own worker metrics, from the same files.
    assert (
        value(samples, "dramatiq_messages_total", queue_name="cpu", actor_name="test.effect") >= 3
    )
    assert (
        value(
            samples,
            "dramatiq_message_duration_milliseconds_count",
            queue_name="cpu",
            actor_name="test.effect",
        )
        >= 3
    )
    # And Postgres's figures, read at the scrape.
    assert (
        value(samples, "gradeflow_jobs", queue="cpu", job_type="test.always_fail", state="dead")
        == 1
    )
    assert value(samples, "gradeflow_webhook_endpoints", state="healthy") == 2


def essay_payload_cost(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        cost: dict[str, Any] = conn.execute(
            text("SELECT response_payload->'cost' FROM essay_scores")
        ).scalar_one()
    return cost
