"""``gradeflow demo``: a sample catalog, a client with a webhook endpoint, a burst of
assessments through the real API, and what came out.

It runs on ``gradeflow up``'s stack when one answers at ``GRADEFLOW_HOST:GRADEFLOW_PORT``,
else it starts the same processes itself (web, a worker per queue, the scheduler).
Without ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` essays are graded by the offline scorer
and recommendations ranked deterministically, so results say ``degraded``.
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
from gradeflow.jobs.essays.llm import llm_configured
from gradeflow.ops import bench_support, demo_data
from gradeflow.ops.bench_support import BenchError, free_port
from gradeflow.ops.fakes.webhook_receiver import Receiver
from gradeflow.ops.procfile import stack_processes
from gradeflow.ops.supervisor import Supervisor
from gradeflow.settings import Settings

#: Wide enough for the summary table when the output is not a terminal (rich's default is 80).
console = Console(width=None if sys.stdout.isatty() else 160)
EVENT_TYPES = ["assessment.completed", "assessment.failed", "recommendation.ready"]
#: Seconds to wait for the catalog's embeddings and for the assessments' results.
EMBED_TIMEOUT = 180.0
GRADE_TIMEOUT = 300.0


class DemoFailed(Exception):
    """The demo cannot go on; the message says why in one line."""


@dataclass
class Keys:
    admin: str
    submitter: str
    operator: str

    @staticmethod
    def headers(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@dataclass
class Submitted:
    assessment_id: str
    user: str
    role: str
    at: float


@dataclass
class Run:
    """What the demo drives: the API, whether the stack is still up, the receiver."""

    http: httpx.Client
    alive: Callable[[], bool]
    receiver: Receiver | None = None
    submitted: list[Submitted] = field(default_factory=list)


def run_demo(
    settings: Settings, engine: Engine, env: dict[str, str], count: int, log: Path, keep: bool
) -> int:
    """Drive ``count`` assessments through a running stack, or one started here."""
    base = f"http://{settings.host}:{settings.port}"
    if api_answers(base):
        console.print(f"Using the stack that answers at {base} (gradeflow up).")
        return drive(settings, engine, base, count, alive=lambda: True, log=None)
    port = settings.port if port_free(settings.host, settings.port) else free_port()
    base = f"http://{settings.host}:{port}"
    # The demo's receiver listens on plain HTTP on loopback; a real endpoint never may.
    loopback_webhooks = {
        "GRADEFLOW_WEBHOOK_ALLOW_PRIVATE": "true",
        "GRADEFLOW_WEBHOOK_ALLOW_HTTP": "true",
    }
    env = {**env, "GRADEFLOW_PORT": str(port), **loopback_webhooks}
    console.print(f"Starting the stack (web on {base}); process logs: {log}")
    with log.open("w") as output:
        supervisor = Supervisor(stack_processes(1, 8), env, output=output)
        supervisor.start()
        try:
            code = drive(
                settings, engine, base, count, alive=lambda: supervisor.failed() is None, log=log
            )
        except BaseException:
            supervisor.stop(grace_seconds=settings.shutdown_grace_seconds)
            raise
        if code == 0 and keep:
            console.print("The stack keeps running for the dashboard: Ctrl-C stops it.")
            return supervisor.serve(grace_seconds=settings.shutdown_grace_seconds)
        supervisor.stop(grace_seconds=settings.shutdown_grace_seconds)
        return code


def drive(
    settings: Settings,
    engine: Engine,
    base: str,
    count: int,
    alive: Callable[[], bool],
    log: Path | None,
) -> int:
    where = f"; see {log}" if log else ""
    if not llm_configured(settings):
        console.print(
            "[yellow]No LLM configured (OPENAI_API_KEY / OPENAI_BASE_URL): essays are graded by "
            "the offline fallback scorer and recommendations ranked without a model, so every "
            "result says degraded.[/]"
        )
    keys = Keys(*(new_key(engine, f"demo-{role}", role) for role in ("admin", "submitter",
                                                                      "operator")))  # fmt: skip
    with httpx.Client(base_url=base, timeout=30) as http:
        run = Run(http, alive)
        try:
            wait_until("the API to answer", lambda: api_answers(base), alive, 60)
            roles = load_catalog(run, keys, engine, settings)
            run.receiver = subscribe(run, keys)
            submit_all(run, keys, roles, count)
            wait_for_results(run, engine)
            results = [fetch(run, keys, s) for s in run.submitted]
        except DemoFailed as exc:
            console.print(f"[red]error:[/] {exc}{where}")
            return 1
        finally:
            if run.receiver is not None:
                run.receiver.stop()
    show(run, results)
    console.print(
        f"\nDashboard: {base}/ops — log in with the operator key {keys.operator}\n"
        f"API: {base}/docs — submitter key {keys.submitter}"
    )
    return 0


# -- set-up ---------------------------------------------------------------------------------


def new_key(engine: Engine, name: str, role: str) -> str:
    issued = issue_api_key()
    with transaction(engine) as session:
        insert_client(
            session,
            name=f"{name}-{issued.key_prefix}",
            role=role,
            key_hash=issued.key_hash,
            key_prefix=issued.key_prefix,
        )
    return issued.key


def post(run: Run, path: str, key: str, body: Any) -> Any:
    response = run.http.post(path, headers=Keys.headers(key), json=body)
    if response.status_code >= 300:
        raise DemoFailed(f"POST {path} answered {response.status_code}: {response.text[:300]}")
    return response.json()


def load_catalog(
    run: Run, keys: Keys, engine: Engine, settings: Settings
) -> dict[str, list[dict[str, Any]]]:
    """Roles, their questions and the credentials, through the API; wait for embeddings."""
    roles: dict[str, list[dict[str, Any]]] = {}
    for role in demo_data.ROLES:
        role_id = post(run, "/v1/roles", keys.admin, role)["id"]
        roles[role_id] = [
            {**q, "id": post(run, "/v1/questions", keys.admin,
                             {**q, "role_id": role_id, "version": "1"})["id"]}
            for q in demo_data.questions_for(role["name"])
        ]  # fmt: skip
    created = post(run, "/v1/credentials", keys.admin, demo_data.credentials())
    ids = [c["id"] for c in created]
    console.print(f"Loaded {len(roles)} roles and {len(ids)} credentials.")
    with ProgressBar("embedding the catalog", len(ids)) as update:
        wait_until(
            "the catalog's embeddings",
            lambda: update(embedded(engine, ids, settings.embeddings)) >= len(ids),
            run.alive,
            EMBED_TIMEOUT,
        )
    return roles


def embedded(engine: Engine, credential_ids: list[str], provider: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM embedding_artifacts WHERE entity_type = 'credential'"
                    " AND provider = :p AND entity_id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"p": provider, "ids": credential_ids},
            ).scalar_one()
        )


def subscribe(run: Run, keys: Keys) -> Receiver | None:
    """A verifying receiver on loopback, registered as the submitter's endpoint."""
    receiver = Receiver([])
    port = receiver.start()
    response = run.http.post(
        "/v1/webhook-endpoints",
        headers=Keys.headers(keys.submitter),
        json={"url": f"http://127.0.0.1:{port}/hooks", "event_types": EVENT_TYPES},
    )
    if response.status_code != 201:
        receiver.stop()
        console.print(
            f"[yellow]No webhook receiver ({response.status_code}: "
            f"{response.json().get('error', {}).get('message', '')}); set "
            "GRADEFLOW_WEBHOOK_ALLOW_PRIVATE=true and GRADEFLOW_WEBHOOK_ALLOW_HTTP=true on the "
            "stack to deliver to a receiver on loopback. "
            "Latency is measured from the API instead.[/]"
        )
        return None
    receiver.secrets.append(response.json()["secret"])
    return receiver


# -- submitting and waiting -----------------------------------------------------------------


def submit_all(run: Run, keys: Keys, roles: dict[str, list[dict[str, Any]]], count: int) -> None:
    rng = random.Random(2026)
    plans = []
    for n in range(count):
        role_id = list(roles)[n % len(roles)]
        questions = roles[role_id]
        answers = demo_data.answers_for(questions, rng)
        plans.append((n, role_id, questions, answers))

    def one(plan: tuple[int, str, list[dict[str, Any]], list[Any]]) -> Submitted:
        n, role_id, questions, answers = plan
        user = f"demo-user-{n:03d}"
        at = time.time()
        body = {
            "user": {"external_id": user, "email": f"{user}@example.com"},
            "role_id": role_id,
            "responses": [
                {"question_id": q["id"], "answer": a}
                for q, a in zip(questions, answers, strict=True)
            ],
        }
        return Submitted(
            post(run, "/v1/assessments", keys.submitter, body)["id"], user, role_id, at
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        run.submitted = list(pool.map(one, plans))
    console.print(f"Submitted {len(run.submitted)} assessments.")


def finished_ids(run: Run, engine: Engine) -> set[str]:
    """Assessments whose result arrived: by webhook when subscribed, else by status."""
    if run.receiver is not None:
        return {str(event["data"]["id"]) for event in assessment_events(run.receiver)}
    with engine.connect() as conn:
        return {
            str(row)
            for row in conn.execute(
                text(
                    "SELECT id FROM assessments WHERE status <> 'awaiting_async'"
                    " AND id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": [s.assessment_id for s in run.submitted]},
            ).scalars()
        }


def assessment_events(receiver: Receiver) -> list[dict[str, Any]]:
    events = [json.loads(r.body) for r in list(receiver.received)]
    return [e for e in events if str(e.get("type", "")).startswith("assessment.")]


def wait_for_results(run: Run, engine: Engine) -> None:
    total = len(run.submitted)
    with ProgressBar("grading", total) as update:
        wait_until(
            "every result",
            lambda: update(len(finished_ids(run, engine))) >= total,
            run.alive,
            GRADE_TIMEOUT,
        )


def fetch(run: Run, keys: Keys, submitted: Submitted) -> dict[str, Any]:
    response = run.http.get(
        f"/v1/assessments/{submitted.assessment_id}", headers=Keys.headers(keys.submitter)
    )
    if response.status_code != 200:
        raise DemoFailed(f"GET assessment answered {response.status_code}")
    result: dict[str, Any] = response.json()
    return result


# -- showing ---------------------------------------------------------------------------------


def latencies_ms(run: Run, results: list[dict[str, Any]]) -> dict[str, float]:
    """Submission → webhook received, per assessment (→ completion when no receiver)."""
    if run.receiver is None:
        return {r["id"]: float(r["timings"]["duration_ms"] or 0) for r in results}
    arrived: dict[str, float] = {}
    for received in list(run.receiver.received):
        event = json.loads(received.body)
        if str(event.get("type", "")).startswith("assessment."):
            arrived.setdefault(str(event["data"]["id"]), received.at)
    sent = {s.assessment_id: s.at for s in run.submitted}
    return {aid: (at - sent[aid]) * 1000 for aid, at in arrived.items() if aid in sent}


def show(run: Run, results: list[dict[str, Any]]) -> None:
    latency = latencies_ms(run, results)
    users = {s.assessment_id: s.user for s in run.submitted}
    source = "webhook" if run.receiver else "completion"
    table = Table("user", "status", "score", "degraded", "top recommendation", "confidence",
                  f"submit → {source} (ms)", title="Assessments")  # fmt: skip
    for result in results:
        items = result["recommendations"]["items"]
        table.add_row(
            users[result["id"]],
            result["status"],
            "-" if result["total_score"] is None else f"{result['total_score']:.1f}",
            "yes" if result["degraded"] or result["recommendations"]["degraded"] else "no",
            items[0]["title"] if items else "-",
            f"{items[0]['confidence']:.2f}" if items else "-",
            f"{latency.get(result['id'], 0):.0f}",
        )
    console.print(table)
    values = sorted(latency.values())
    completed = sum(r["status"] == "completed" for r in results)
    degraded = sum(bool(r["degraded"]) for r in results)
    line = f"{completed}/{len(results)} completed, {degraded} degraded"
    if values:
        p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
        line += f"; submit → {source}: median {statistics.median(values):.0f} ms, p95 {p95:.0f} ms"
    if run.receiver is not None:
        verified = sum(all(r.verified) for r in run.receiver.received)
        line += f"; {verified}/{run.receiver.count()} webhooks verified"
    console.print(line)


# -- helpers ---------------------------------------------------------------------------------


def api_answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_until(
    what: str, condition: Callable[[], bool], alive: Callable[[], bool], timeout: float
) -> None:
    """Poll ``condition`` (bench_support's loop); fail at once if the stack stops."""

    def stack_alive() -> None:
        if not alive():
            raise DemoFailed(f"a process of the stack stopped while waiting for {what}")

    try:
        bench_support.wait_until(condition, timeout, what, stack_alive, interval=0.3)
    except BenchError as exc:
        raise DemoFailed(str(exc)) from None


class ProgressBar:
    """A progress bar whose ``update(done)`` returns ``done``, for use inside conditions."""

    def __init__(self, label: str, total: int) -> None:
        self.progress = Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console,
        )  # fmt: skip
        self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> Callable[[int], int]:
        self.progress.start()

        def update(done: int) -> int:
            self.progress.update(self.task, completed=done)
            return done

        return update

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
