"""``gradeflow demo``: the stack on embedded defaults, a burst of jobs, one assessment
graded through the real API, and what happened.

Every process is the real one (``gradeflow api``, a worker per queue, the scheduler).
The assessment's essay is graded by the offline scorer unless an LLM is configured
(``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``), so the result says ``degraded``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, text

from gradeflow.api.keys import issue_api_key
from gradeflow.db.clients import insert_client
from gradeflow.db.engine import transaction
from gradeflow.jobs.registry import NewJob
from gradeflow.ops.bench_support import free_port
from gradeflow.ops.procfile import stack_processes
from gradeflow.ops.supervisor import Supervisor
from gradeflow.settings import Settings
from gradeflow.workers.broker import get_broker
from gradeflow.workers.enqueue import enqueue

console = Console()


def job_counts(engine: Engine, since: float) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT status, count(*) FROM async_jobs"
                " WHERE queued_at >= to_timestamp(:since) GROUP BY status"
            ),
            {"since": since},
        )
        return {status: count for status, count in rows}


def run_demo(settings: Settings, engine: Engine, env: dict[str, str], jobs: int, log: Path) -> int:
    """Start the stack's processes, push ``jobs`` no-op jobs and one assessment through,
    print a summary."""
    port = free_port()
    env = {**env, "GRADEFLOW_PORT": str(port)}
    with log.open("w") as output:
        supervisor = Supervisor(stack_processes(1, 8), env, output=output)
        supervisor.start()
        try:
            code = drive(settings, engine, supervisor, jobs, log)
            return code or grade_one(engine, f"http://127.0.0.1:{port}", supervisor, log)
        finally:
            supervisor.stop(grace_seconds=settings.shutdown_grace_seconds)


def new_key(engine: Engine, name: str, role: str) -> dict[str, str]:
    issued = issue_api_key()
    with transaction(engine) as session:
        insert_client(
            session, name=name, role=role, key_hash=issued.key_hash, key_prefix=issued.key_prefix
        )
    return {"Authorization": f"Bearer {issued.key}"}


DEMO_QUESTIONS: list[dict[str, Any]] = [
    {
        "question_type": "multiple_choice",
        "prompt": "Which SQL statement reads rows?",
        "choices": [{"id": "a", "text": "SELECT"}, {"id": "b", "text": "DROP"}],
        "rubric": {"correct": ["a"], "skills": ["sql"]},
        "weight": 1,
        "version": "1",
    },
    {
        "question_type": "essay",
        "prompt": "Explain what an index is for.",
        "rubric": {
            "criteria": [
                {
                    "name": "accuracy",
                    "description": "Explains lookups and their cost.",
                    "levels": [
                        {"score": 0, "descriptor": "wrong or missing"},
                        {"score": 4, "descriptor": "sorted keys make lookups fast"},
                    ],
                    "keywords": ["sorted", "lookup", "b-tree"],
                }
            ],
            "skills": ["sql"],
        },
        "weight": 2,
        "version": "1",
    },
    {
        "question_type": "profile",
        "prompt": "How often do you write SQL?",
        "choices": [{"id": "never", "text": "Never"}, {"id": "daily", "text": "Daily"}],
        "rubric": {"skill": "sql", "mapping": {"never": 0, "daily": 90}},
        "weight": 1,
        "version": "1",
    },
]
DEMO_ANSWERS = ["a", "An index keeps keys sorted in a b-tree, so a lookup is fast.", "daily"]


def grade_one(engine: Engine, base: str, supervisor: Supervisor, log: Path) -> int:
    """Catalog, submission and result through the HTTP API, as an upstream app sees them."""
    admin, app = new_key(engine, "demo-admin", "admin"), new_key(engine, "demo-app", "submitter")
    with httpx.Client(base_url=base, timeout=10) as http:
        if not wait_until(lambda: answers(http), supervisor):
            console.print(f"[red]the API did not come up; see {log}[/]")
            return 1
        role = http.post(
            "/v1/roles", headers=admin, json={"name": "Data analyst", "skills_profile": {"sql": 80}}
        ).json()["id"]
        ids = [
            http.post("/v1/questions", headers=admin, json={**q, "role_id": role}).json()["id"]
            for q in DEMO_QUESTIONS
        ]
        accepted = http.post(
            "/v1/assessments",
            headers=app,
            json={
                "user": {"external_id": "demo-user", "email": "demo@example.com"},
                "role_id": role,
                "responses": [
                    {"question_id": i, "answer": a} for i, a in zip(ids, DEMO_ANSWERS, strict=True)
                ],
            },
        )
        link = accepted.json()["links"]["self"]
        console.print(f"POST /v1/assessments → {accepted.status_code}; polling {link}")
        result: dict[str, Any] = {}

        def finished() -> bool:
            result.update(http.get(link, headers=app).json())
            return bool(result["status"] != "awaiting_async")

        if not wait_until(finished, supervisor):
            console.print(f"[red]the assessment was not graded in time; see {log}[/]")
            return 1
    show(result)
    return 0


def answers(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition: Callable[[], bool], supervisor: Supervisor, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and supervisor.failed() is None:
        if condition():
            return True
        time.sleep(0.2)
    return False


def show(result: dict[str, Any]) -> None:
    table = Table("question", "graded by", "score", "explanation", title="One assessment")
    for question in result["questions"]:
        table.add_row(
            question["question_type"],
            question["graded_by"] or "-",
            f"{question['score']} / {question['max_score']}",
            question["explanation"] or "",
        )
    console.print(table)
    console.print(
        f"status {result['status']}, total {result['total_score']} %, skills "
        f"{result['skill_scores']}, degraded {result['degraded']} "
        f"({result['timings']['duration_ms']} ms from submission to result)"
    )


def drive(settings: Settings, engine: Engine, supervisor: Supervisor, jobs: int, log: Path) -> int:
    started = time.time()
    enqueue(
        engine,
        get_broker(settings),
        [NewJob("noop") for _ in range(jobs)],
        settings.dispatch_window,
    )
    with Progress(
        TextColumn("jobs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("jobs", total=jobs)
        while True:
            done = job_counts(engine, started - 1).get("succeeded", 0)
            progress.update(task, completed=done)
            if done >= jobs:
                break
            crashed = supervisor.failed()
            if crashed is not None:
                console.print(f"[red]{crashed.name} stopped; see {log}[/]")
                return 1
            time.sleep(0.2)
    elapsed = time.time() - started
    table = Table("status", "jobs", title="What happened")
    for status, count in sorted(job_counts(engine, started - 1).items()):
        table.add_row(status, str(count))
    console.print(table)
    console.print(
        f"{jobs} jobs through the full lifecycle in {elapsed:.1f} s, worker start-up included. "
        f"Process logs: {log}"
    )
    return 0
