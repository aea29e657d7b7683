"""``gradeflow bench webhooks``: deliveries per second, and a slow endpoint kept apart.

Two runs with real ``gradeflow worker --queues webhooks`` processes and a
``gradeflow scheduler``, delivering to receivers on loopback in this process:

1. **fast only**: N events to an endpoint that answers 200 at once.
2. **fast with slow**: S events to a second endpoint that answers after 5 s,
   then N more to the fast one. The fast endpoint's throughput must stay at
   least 90 % of run 1's: the slow one holds only its in-flight limit of
   worker threads, and its other deliveries wait in Postgres.

Throughput is N ÷ (last ``completed_at`` - first ``started_at``) of the fast
endpoint's delivery jobs. Database ``gradeflow_bench_webhooks`` (truncated),
Redis db 15 (flushed).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import redis
import typer
from sqlalchemy import Engine, text

from gradeflow.db.engine import make_engine
from gradeflow.db.webhooks import insert_endpoint
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.webhooks import emit_event
from gradeflow.jobs.webhooks.signing import new_secret
from gradeflow.ops.bench_support import (
    BenchError,
    Processes,
    bench_database_url,
    child_env,
    gradeflow_argv,
    machine,
    redis_url_with_db,
    report,
    wait_until,
)
from gradeflow.ops.context import err, fail, stack
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.maintenance import EPOCH_KEY
from gradeflow.workers.messages import send_messages

BENCH_DATABASE = "gradeflow_bench_webhooks"
BENCH_REDIS_DB = 15
SECTION_HEADING = "## Webhook delivery (`gradeflow bench webhooks`)"
TARGET_RATIO = 0.9
#: A 1-minute load average above this before the run marks the figures preliminary.
BUSY_LOAD = 1.0
SLOW_SECONDS = 5.0
EVENT = "assessment.completed"
RESET = "TRUNCATE async_jobs, webhook_attempts, webhook_events, webhook_endpoints CASCADE"
Progress = Callable[[str], None]


@contextmanager
def receiver(delay: float) -> Iterator[int]:
    """A loopback receiver answering 204 after ``delay`` seconds; yields its port."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            if delay:
                time.sleep(delay)
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Setup:
    engine: Engine
    redis_url: str
    fast_client: uuid.UUID
    slow_client: uuid.UUID


def add_endpoint(engine: Engine, port: int) -> uuid.UUID:
    """A client (submitter) with one endpoint at ``port``; return the client's id."""
    with engine.begin() as conn:
        client = conn.execute(
            text(
                "INSERT INTO api_clients (name, role, key_hash, key_prefix)"
                " VALUES (:name, 'submitter', :hash, 'gf_bench') RETURNING id"
            ),
            {"name": f"bench-{uuid.uuid4().hex[:8]}", "hash": uuid.uuid4().hex * 2},
        ).scalar_one()
        insert_endpoint(conn, client, f"http://127.0.0.1:{port}/hook", [EVENT], new_secret())
    return uuid.UUID(str(client))


def emit(setup: Setup, client_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    """``count`` events with their jobs, the pipeline's way; return the job ids."""
    broker = build_broker(Settings(redis_url=setup.redis_url))
    with setup.engine.begin() as conn:
        jobs = [j for i in range(count) for j in emit_event(conn, client_id, EVENT, {"n": i})]
        inserted = insert_new_jobs(conn, jobs, 500)
    send_messages(broker, inserted.messages)
    broker.close()
    return inserted.job_ids


def finished(engine: Engine, job_ids: list[uuid.UUID]) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM async_jobs WHERE id = ANY(:ids)"
                    " AND status IN ('succeeded', 'dead')"
                ),
                {"ids": job_ids},
            ).scalar_one()
        )


def rate(engine: Engine, job_ids: list[uuid.UUID]) -> tuple[float, float, int]:
    """Deliveries per second, the span (s), and how many were delivered."""
    with engine.connect() as conn:
        span, delivered = conn.execute(
            text(
                "SELECT extract(epoch FROM max(completed_at) - min(started_at))::float8,"
                " count(*) FILTER (WHERE status = 'succeeded')"
                " FROM async_jobs WHERE id = ANY(:ids)"
            ),
            {"ids": job_ids},
        ).one()
    return len(job_ids) / max(float(span), 1e-6), float(span), int(delivered)


def drain(setup: Setup, procs: Processes, job_ids: list[uuid.UUID], timeout: float) -> None:
    wait_until(
        lambda: finished(setup.engine, job_ids) == len(job_ids),
        timeout,
        "the deliveries to finish",
        lambda: procs.check_alive(*[p for _, p in procs.started]),
    )


def run_webhooks_benchmark(
    database_url: str,
    redis_url: str,
    *,
    events: int = 1500,
    slow_events: int = 40,
    processes: int = 2,
    threads: int = 8,
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    """Both runs against ``database_url`` and ``redis_url`` (both emptied); the figures."""
    work_dir = Path(tempfile.mkdtemp(prefix="gradeflow-bench-webhooks-"))
    engine = make_engine(database_url, pool_size=4, application_name="gradeflow-bench")
    with engine.begin() as conn:
        conn.execute(text(RESET))
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.set(EPOCH_KEY, "bench")
    client.close()
    env = {
        **child_env(database_url, redis_url),
        "GRADEFLOW_WEBHOOK_ALLOW_HTTP": "1",
        "GRADEFLOW_WEBHOOK_ALLOW_LIST": '["127.0.0.1/32"]',
    }
    procs = Processes(env, work_dir)
    result: dict[str, Any] = {
        "events": events, "slow_events": slow_events, "processes": processes,
        "threads": threads, "load_avg_start": round(os.getloadavg()[0], 2),
    }  # fmt: skip
    ok = False
    try:
        with receiver(0.0) as fast_port, receiver(SLOW_SECONDS) as slow_port:
            setup = Setup(
                engine, redis_url, add_endpoint(engine, fast_port), add_endpoint(engine, slow_port)
            )
            procs.start("scheduler", gradeflow_argv("scheduler"))
            procs.start("worker", gradeflow_argv(
                "worker", "--queues", "webhooks", "--processes", str(processes),
                "--threads", str(threads)))  # fmt: skip
            drain(setup, procs, emit(setup, setup.fast_client, 20), 120)  # warm-up
            progress(f"fast only: {events} deliveries")
            fast = emit(setup, setup.fast_client, events)
            drain(setup, procs, fast, 600)
            result["fast_only_per_s"], result["fast_only_span_s"], _ = rate(engine, fast)
            progress(f"  {result['fast_only_per_s']:.1f}/s")
            progress(
                f"fast with slow: {slow_events} to a {SLOW_SECONDS:g} s endpoint, then {events}"
            )
            slow = emit(setup, setup.slow_client, slow_events)
            time.sleep(1.0)  # the slow endpoint's first deliveries are in flight
            fast = emit(setup, setup.fast_client, events)
            drain(setup, procs, fast, 600)
            result["fast_with_slow_per_s"], result["fast_with_slow_span_s"], _ = rate(engine, fast)
            result["slow_finished_during_run"] = finished(engine, slow)
            progress(f"  {result['fast_with_slow_per_s']:.1f}/s")
            drain(setup, procs, slow, SLOW_SECONDS * slow_events + 120)
        result["isolation_ratio"] = round(
            result["fast_with_slow_per_s"] / result["fast_only_per_s"], 3
        )
        for key in ("fast_only_per_s", "fast_with_slow_per_s"):
            result[key] = round(result[key], 1)
        ok = True
    finally:
        procs.close()
        engine.dispose()
        if ok:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            progress(f"process logs kept in {work_dir}")
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    return result


def section(result: dict[str, Any], box: dict[str, str], command: str, when: datetime) -> str:
    r = result
    met = "met" if r["isolation_ratio"] >= TARGET_RATIO else "**missed**"
    return "\n".join(
        [
            SECTION_HEADING,
            "",
            f"Measured {when:%Y-%m-%d %H:%M} UTC on {box['nproc']} CPUs ({box['cpu']}), "
            f"{box['memory']} RAM; Python {box['python']}, PostgreSQL {box['postgres']}, "
            f"{box['broker']}. Load average (1 min) {r['load_avg_start']} before the run, "
            f"{r['load_avg_end']} after it."
            + (
                " The machine was busy with other work (CPU-starved: the loopback receiver"
                " and the workers share 2 cores with it): treat these figures as preliminary."
                if r["load_avg_start"] > BUSY_LOAD
                else ""
            ),
            "",
            f"Command: `{command}` — {r['processes']} worker process(es) x {r['threads']} threads "
            "on the webhooks queue, receivers on loopback.",
            "",
            "| | fast only | fast with a slow endpoint | target |",
            "|---|---:|---:|---|",
            f"| deliveries per second to the fast endpoint ({r['events']} events) | "
            f"{r['fast_only_per_s']:.1f} | {r['fast_with_slow_per_s']:.1f} | |",
            f"| span, first start → last finish (s) | {r['fast_only_span_s']:.2f} | "
            f"{r['fast_with_slow_span_s']:.2f} | |",
            f"| isolation ratio (with slow ÷ fast only) | | {r['isolation_ratio']:.3f} | "
            f"≥ {TARGET_RATIO} ({met}) |",
            "",
            f"How: signed deliveries (`deliver_webhook` jobs, SSRF guard, one attempt row each) "
            f"to a receiver answering 204 at once; in the second run {r['slow_events']} events "
            f"first go to a second endpoint answering after {SLOW_SECONDS:g} s "
            f"({r['slow_finished_during_run']} of them had finished when the fast run did): "
            "it keeps at most `GRADEFLOW_WEBHOOK_ENDPOINT_IN_FLIGHT` (4) threads, the rest "
            "snooze in Postgres.",
            "",
        ]
    )


def webhooks_command(
    events: Annotated[
        int, typer.Option(min=10, help="Events to the fast endpoint per run.")
    ] = 1500,
    slow_events: Annotated[int, typer.Option(min=1, help="Events to the slow endpoint.")] = 40,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    threads: Annotated[int, typer.Option(min=1, help="Threads per worker process.")] = 8,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on the last line.")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write/--no-write", help="Record the figures in BENCHMARKS.md.")
    ] = True,
) -> None:
    """Deliveries per second to a fast endpoint, alone and next to a slow one.
    Runs in database gradeflow_bench_webhooks and Redis db 15: your data is never touched.
    """
    command = "gradeflow " + shlex.join(sys.argv[1:])
    when = datetime.now(UTC)
    with stack() as resolved:
        try:
            database_url = bench_database_url(resolved.database_url, BENCH_DATABASE)
            redis_url = redis_url_with_db(resolved.redis_url, BENCH_REDIS_DB)
            result = run_webhooks_benchmark(
                database_url, redis_url, events=events, slow_events=slow_events,
                processes=processes, threads=threads,
                progress=lambda line: err.print(line, highlight=False),
            )  # fmt: skip
            box = machine(database_url, redis_url)
        except BenchError as exc:
            raise fail(str(exc)) from None
    body = section(result, box, command, when)
    report(body, SECTION_HEADING, result, box, command, write=write, as_json=as_json)
