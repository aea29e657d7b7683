"""``gradeflow bench intake``: submissions against the real API server, beside its ``/healthz``.

One run, one server (``gradeflow api`` in a subprocess, on real PostgreSQL and
Redis), one load generator:

1. **ceiling** — ``GET /healthz`` from ``concurrency`` keep-alive connections as
   fast as the server answers: what the framework alone can do on this machine;
2. **intake** — ``POST /v1/assessments`` of 10 answers (8 multiple choice, 2
   essays), the same way: submissions per second and latency; every answer must
   be a 202 and every assessment must be in the database afterwards;
3. **steady load** — submissions at a fixed ``rate`` (100/s by default), each
   timed from its scheduled send time, so a slow server cannot hide its queueing
   (no coordinated omission): the p99 a client sees at that rate.

The load generator speaks HTTP/1.1 over raw asyncio streams with pre-built
requests: a few microseconds of CPU per request, so on a 2-core machine nearly
all of the CPU is left to the server and PostgreSQL.

No worker runs: the scoring jobs are written and their messages sent, which is
intake's whole cost. Runs in a database ``gradeflow_bench_intake`` and Redis db
14, never in the user's data.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shlex
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import redis
import typer
from sqlalchemy import Engine, text

from gradeflow.api.keys import issue_api_key
from gradeflow.db.catalog import NewQuestion, insert_question, insert_role
from gradeflow.db.clients import insert_client
from gradeflow.db.engine import make_engine, transaction
from gradeflow.ops.bench_support import (
    BenchError,
    Processes,
    bench_database_url,
    child_env,
    free_port,
    gradeflow_argv,
    machine,
    percentile,
    redis_url_with_db,
    report,
    wait_until,
)
from gradeflow.ops.context import err, fail, stack
from gradeflow.settings import Settings

BENCH_DATABASE = "gradeflow_bench_intake"
BENCH_REDIS_DB = 14
SECTION_HEADING = "## Intake API (`gradeflow bench intake`)"
TARGET_SUBMISSIONS_PER_S = 300.0
TARGET_P99_MS = 100.0
#: Distinct request bodies cycled through (distinct users, same questions).
BODY_POOL = 500
TABLES = (
    "async_jobs, assessment_responses, assessment_question_snapshots, assessments, users,"
    " idempotency_keys, questions, role_catalog, audit_logs, api_clients"
)


# -- the load generator ----------------------------------------------------------------


@dataclass
class Tally:
    latencies_ms: list[float]
    statuses: dict[int, int]

    @classmethod
    def empty(cls) -> Tally:
        return cls([], {})

    def add(self, status: int, latency_ms: float) -> None:
        self.latencies_ms.append(latency_ms)
        self.statuses[status] = self.statuses.get(status, 0) + 1


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", *(f"{k}: {v}" for k, v in headers.items())]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one request on a keep-alive connection; return the response's status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def closed_loop(
    port: int, requests: Sequence[bytes], connections: int, seconds: float
) -> tuple[Tally, float]:
    """``connections`` clients, each sending its next request as soon as it has an answer."""
    tally = Tally.empty()
    pool = itertools.cycle(requests)
    stop_at = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                status = await exchange(reader, writer, next(pool))
                tally.add(status, (time.perf_counter() - start) * 1000)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return tally, time.perf_counter() - began


async def open_loop(
    port: int, requests: Sequence[bytes], connections: int, rate: float, seconds: float
) -> Tally:
    """Requests at a fixed ``rate``, each timed from when it was due to be sent."""
    tally = Tally.empty()
    pool = itertools.cycle(requests)
    slots = itertools.count()
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (slot := next(slots)) < total:
                due = start + slot / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                status = await exchange(reader, writer, next(pool))
                tally.add(status, (time.perf_counter() - due) * 1000)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return tally


# -- the workload -------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    api_key: str
    role_id: uuid.UUID
    choice_questions: list[uuid.UUID]
    essay_questions: list[uuid.UUID]

    def body(self, user: int) -> dict[str, Any]:
        essay = "An index keeps keys sorted in a b-tree, so lookups take log n steps. " * 6
        return {
            "user": {"external_id": f"bench-{user}", "email": f"bench-{user}@example.com"},
            "role_id": str(self.role_id),
            "responses": [{"question_id": str(q), "answer": "a"} for q in self.choice_questions]
            + [{"question_id": str(q), "answer": essay} for q in self.essay_questions],
            "metadata": {"source": "bench"},
        }


def seed(engine: Engine) -> Workload:
    """A fresh role with 8 multiple-choice and 2 essay questions, and a submitter key."""
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} CASCADE"))
    issued = issue_api_key()
    with transaction(engine) as session:
        insert_client(
            session,
            name="bench",
            role="submitter",
            key_hash=issued.key_hash,
            key_prefix=issued.key_prefix,
        )
        role = insert_role(
            session,
            name="Bench role",
            description=None,
            skills_profile={"sql": 80},
            active=True,
        )
        choices = [{"id": c, "text": f"choice {c}"} for c in "abcd"]
        mc_rubric = {"correct": ["a"], "multi_select": False, "skills": ["sql"]}
        essay_rubric = {
            "criteria": [
                {
                    "name": "accuracy",
                    "description": "Is it right?",
                    "levels": [
                        {"score": 0, "descriptor": "wrong"},
                        {"score": 4, "descriptor": "ok"},
                    ],
                }
            ],
            "skills": ["sql"],
        }
        mc = [
            insert_question(
                session,
                NewQuestion(role.id, "multiple_choice", f"Q{i}", choices, mc_rubric, 1, "1"),  # type: ignore[arg-type]
            ).id
            for i in range(8)
        ]
        essays = [
            insert_question(
                session,
                NewQuestion(role.id, "essay", f"E{i}", None, essay_rubric, 2, "1"),  # type: ignore[arg-type]
            ).id
            for i in range(2)
        ]
    return Workload(issued.key, role.id, mc, essays)


# -- the run ----------------------------------------------------------------------------------


def run_intake_benchmark(
    database_url: str,
    redis_url: str,
    *,
    seconds: float,
    connections: int,
    rate: float,
    api_workers: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Measure the ceiling, intake throughput, and latency at ``rate``; truncates the
    catalog, assessment and job tables of ``database_url`` and flushes ``redis_url``."""
    engine = make_engine(database_url, pool_size=None)
    broker_redis = redis.Redis.from_url(redis_url)
    work_dir = Path(tempfile.mkdtemp(prefix="gradeflow-bench-intake-"))
    processes = Processes(child_env(database_url, redis_url), work_dir)
    try:
        broker_redis.flushdb()
        workload = seed(engine)
        port = free_port()
        server = processes.start(
            "api",
            gradeflow_argv("api", "--port", str(port), "--workers", str(api_workers)),
        )
        wait_until(
            lambda: healthy(port),
            60,
            "the API server to answer",
            lambda: processes.check_alive(server),
        )
        auth = {"Authorization": f"Bearer {workload.api_key}"}
        healthz = [http_request("GET", "/healthz", {})]
        submissions = [
            http_request("POST", "/v1/assessments", auth, json.dumps(workload.body(i)).encode())
            for i in range(BODY_POOL)
        ]
        progress("warming up")
        asyncio.run(closed_loop(port, submissions, connections, 1.0))
        progress(f"GET /healthz, {connections} connections, {seconds:g} s")
        ceiling, ceiling_s = asyncio.run(closed_loop(port, healthz, connections, seconds))
        with engine.connect() as conn:
            before = conn.execute(text("SELECT count(*) FROM assessments")).scalar_one()
        progress(f"POST /v1/assessments, {connections} connections, {seconds:g} s")
        intake, intake_s = asyncio.run(closed_loop(port, submissions, connections, seconds))
        progress(f"POST /v1/assessments at {rate:g}/s, {seconds:g} s")
        steady = asyncio.run(open_loop(port, submissions, connections, rate, seconds))
        with engine.connect() as conn:
            after = conn.execute(text("SELECT count(*) FROM assessments")).scalar_one()
            jobs, sent = conn.execute(
                text(
                    "SELECT count(*), count(sent_at) FROM async_jobs"
                    " WHERE assessment_id IS NOT NULL"
                )
            ).one()
        accepted = intake.statuses.get(202, 0) + steady.statuses.get(202, 0)
        if accepted != sum(intake.statuses.values()) + sum(steady.statuses.values()):
            raise BenchError(f"some submissions were refused: {intake.statuses} {steady.statuses}")
        if after - before != accepted:
            raise BenchError(f"{accepted} submissions accepted but {after - before} stored")
        return {
            "connections": connections,
            "seconds": seconds,
            "api_workers": api_workers,
            "healthz_per_s": len(ceiling.latencies_ms) / ceiling_s,
            "healthz_p50_ms": percentile(ceiling.latencies_ms, 0.50),
            "healthz_p99_ms": percentile(ceiling.latencies_ms, 0.99),
            "submissions_per_s": len(intake.latencies_ms) / intake_s,
            "p50_ms": percentile(intake.latencies_ms, 0.50),
            "p99_ms": percentile(intake.latencies_ms, 0.99),
            "rate_per_s": rate,
            "p50_ms_at_100_rps": percentile(steady.latencies_ms, 0.50),
            "p99_ms_at_100_rps": percentile(steady.latencies_ms, 0.99),
            "submissions": accepted,
            "jobs": jobs,
            "messages_sent": sent,
            # The server runs on the defaults (child_env drops GRADEFLOW_* tuning).
            "dispatch_window": Settings.model_fields["dispatch_window"].default,
            "load_avg_end": round(os.getloadavg()[0], 2),
        }
    finally:
        processes.close()
        broker_redis.flushdb()
        broker_redis.close()
        engine.dispose()


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


# -- the record ---------------------------------------------------------------------------------


def section(result: dict[str, Any], box: dict[str, str], command: str, when: datetime) -> str:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    r = result
    return "\n".join(
        [
            SECTION_HEADING,
            "",
            f"Measured {when:%Y-%m-%d %H:%M} UTC on {box['nproc']} CPUs ({box['cpu']}), "
            f"{box['memory']} RAM; Python {box['python']}, PostgreSQL {box['postgres']}, "
            f"{box['broker']}; load average (1 min) {r['load_avg_end']} at the end.",
            "",
            f"Command: `{command}` — one `gradeflow api` server ({r['api_workers']} uvicorn "
            f"worker(s)), {r['connections']} keep-alive connections, {r['seconds']:g} s per "
            "phase; each submission has 10 answers (8 multiple choice, 2 essays) and writes "
            "its user, assessment, 10 snapshots, 10 answers and 3 jobs in one statement, "
            "then sends the messages its client's dispatch window has room for.",
            "",
            "| | GET /healthz (ceiling) | POST /v1/assessments | target |",
            "|---|---:|---:|---|",
            f"| requests/s, closed loop | {r['healthz_per_s']:.0f} | "
            f"{r['submissions_per_s']:.0f} | ≥ {TARGET_SUBMISSIONS_PER_S:.0f} "
            f"({verdict(r['submissions_per_s'] >= TARGET_SUBMISSIONS_PER_S)}) |",
            f"| latency p50 / p99 (ms), closed loop | {r['healthz_p50_ms']:.1f} / "
            f"{r['healthz_p99_ms']:.1f} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} | |",
            f"| latency p50 / p99 (ms) at {r['rate_per_s']:g} submissions/s, from the "
            f"scheduled send | | {r['p50_ms_at_100_rps']:.1f} / {r['p99_ms_at_100_rps']:.1f} | "
            f"p99 < {TARGET_P99_MS:.0f} ({verdict(r['p99_ms_at_100_rps'] < TARGET_P99_MS)}) |",
            "",
            f"{r['submissions']} submissions, every one answered 202 and found in the database "
            f"afterwards, with {r['jobs']} jobs. No worker runs, so the one client's window "
            f"({r['dispatch_window']} messages in flight per queue) fills early: "
            f"{r['messages_sent']} messages went out at intake, the other jobs wait in "
            "Postgres for the dispatcher, as in any burst. The load generator is raw "
            "HTTP/1.1 over asyncio streams with pre-built requests, in the benchmark's own "
            "process.",
            "",
        ]
    )


def intake_command(
    seconds: Annotated[float, typer.Option(min=1.0, help="Seconds per phase.")] = 10.0,
    connections: Annotated[int, typer.Option(min=1, help="Concurrent connections.")] = 16,
    rate: Annotated[float, typer.Option(min=1.0, help="Submissions/s, steady phase.")] = 100.0,
    api_workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 2,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on the last line.")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write/--no-write", help="Record the figures in BENCHMARKS.md.")
    ] = True,
) -> None:
    """The intake API: submissions/s and latency, beside the same server's /healthz.

    Runs in a database gradeflow_bench_intake next to the configured (or embedded)
    one and in Redis logical db 14: your data is never touched.
    """
    command = "gradeflow " + shlex.join(sys.argv[1:])
    when = datetime.now(UTC)
    with stack() as resolved:
        try:
            database_url = bench_database_url(resolved.database_url, BENCH_DATABASE)
            redis_url = redis_url_with_db(resolved.redis_url, BENCH_REDIS_DB)
            result = run_intake_benchmark(
                database_url,
                redis_url,
                seconds=seconds,
                connections=connections,
                rate=rate,
                api_workers=api_workers,
                progress=lambda line: err.print(line, highlight=False),
            )
            box = machine(database_url, redis_url)
        except BenchError as exc:
            raise fail(str(exc)) from None
    body = section(result, box, command, when)
    report(body, SECTION_HEADING, result, box, command, write=write, as_json=as_json)
