"""500 assessments from three clients through the whole stack, as real processes.

The API under uvicorn, a Dramatiq worker group per queue (cpu, llm, webhooks) and
the scheduler run as subprocesses on real PostgreSQL and Redis; essays and the
recommendations' re-ranking go through the openai SDK to the fake LLM (answering
at once); each client's webhook endpoint is a receiver on loopback verifying
signatures with the ``standardwebhooks`` library. The catalog is loaded with
``gradeflow catalog load`` and embedded by the workers; the submissions go
through ``POST /v1/assessments``, concurrently. Then, from Postgres and the
receivers (:mod:`gradeflow.ops.e2e.checks`): every assessment completed, each
score and recommendation present once, every event delivered and verified, no
job left queued or running; and no log line of any process carries a key, a
secret or an essay.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gradeflow.ops.e2e.checks import check_run, leaks
from gradeflow.ops.e2e.stack import E2EStack
from gradeflow.ops.e2e.workload import (
    Submission,
    Workload,
    make_submissions,
    prepare_workload,
    submit_and_settle,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ASSESSMENTS = 500
CLIENTS = 3
CREDENTIALS = 60
#: Submissions in flight at once: enough to queue work faster than it drains.
CONCURRENCY = 8
SETTLE_TIMEOUT_SECONDS = 600.0


@pytest.fixture
def stack(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[E2EStack]:
    with E2EStack(database_url, redis_url, tmp_path / "stack") as running:
        running.start()
        yield running


@pytest.fixture
def workload(stack: E2EStack, engine: Engine) -> Iterator[Workload]:
    prepared = prepare_workload(stack, engine, clients=CLIENTS, credentials=CREDENTIALS)
    yield prepared
    prepared.close()


def test_500_assessments_from_three_clients_each_complete_once_with_every_event_delivered(
    stack: E2EStack, engine: Engine, workload: Workload
) -> None:
    submissions = make_submissions(workload, ASSESSMENTS, "load")
    report = submit_and_settle(
        stack, engine, submissions, concurrency=CONCURRENCY, timeout=SETTLE_TIMEOUT_SECONDS
    )
    check = check_run(
        engine, report.accepted, workload.tenants, workload.questions.count, submitted=ASSESSMENTS
    )

    assert check.problems == [], check.figures
    figures = check.figures
    assert figures["completed"] == ASSESSMENTS and figures["lost"] == 0
    assert figures["recommendations_ready"] == ASSESSMENTS
    # The LLM answered every call at once: nothing fell back to the offline paths.
    assert figures["degraded"] == 0 and figures["recommendations_degraded"] == 0
    assert figures["events"] == figures["events_delivered"] == 2 * ASSESSMENTS
    assert figures["duplicate_rows"] == 0
    assert figures["dead_jobs"] == {}
    assert stack.exits == [], "a worker group exited on its own"
    assert_no_log_carries_a_secret_or_an_essay(stack, workload, submissions)


def assert_no_log_carries_a_secret_or_an_essay(
    stack: E2EStack, workload: Workload, submissions: list[Submission]
) -> None:
    logs = {path.name for path in stack.logs()}
    assert logs >= {
        "api.log", "scheduler.log", "worker-cpu.log", "worker-llm.log", "worker-webhooks.log",
        "catalog-load.log",
    }  # fmt: skip
    assert leaks(stack, workload, submissions) == []
