"""``gradeflow bench jobs``: the job engine measured against raw Dramatiq, side by side.

One run, one Redis, the same worker processes and threads on both sides:

1. **raw Dramatiq** — N messages for a no-op actor (:mod:`gradeflow.ops.bench_raw_actor`)
   are enqueued, then the real ``dramatiq`` CLI drains them;
2. **gradeflow** — N ``noop`` jobs are inserted as ``async_jobs`` rows and driven to
   ``succeeded`` by a real ``gradeflow worker`` and ``gradeflow scheduler``: send,
   claim transaction, run, finish transaction, dispatcher top-ups.

Both throughputs are timed the same way, from the first message processed to the
last one finished (worker start-up excluded; wall clock from worker start is
reported too). Then, with the same processes, jobs are enqueued one by one at half
the measured gradeflow throughput, and the pickup latency (due → claimed) is read
from the rows. Last, a worker child running slow jobs is SIGKILLed, a fresh worker
started, and the time until every orphaned job is claimed again is measured — with
the engine's default lease and heartbeat, so the figure is what production gets.

The core, :func:`run_jobs_benchmark`, takes explicit URLs and truncates
``async_jobs`` and flushes the Redis logical db it is given: pass disposable ones.
The command uses a database ``gradeflow_bench`` on the configured (or embedded)
server and Redis db 12, never the user's data.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import psutil
import redis
import typer
from sqlalchemy import Engine, text

from gradeflow.db.engine import make_engine
from gradeflow.jobs.registry import NewJob
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
from gradeflow.workers.maintenance import EPOCH_KEY

#: The database the command benchmarks in, on the configured or embedded server.
BENCH_DATABASE = "gradeflow_bench"
#: The Redis logical database the command benchmarks in (flushed before each phase).
BENCH_REDIS_DB = 12
SECTION_HEADING = "## Job engine (`gradeflow bench jobs`)"

#: Targets of the issue, on the reference 2-core machine.
TARGET_RATIO = 0.5
TARGET_P99_MS = 250.0
TARGET_RECOVERY_S = 30.0

#: A 1-minute load average above this before the run (other work) marks figures preliminary.
BUSY_LOAD = 1.0
#: Pickup latency is measured at this fraction of the measured gradeflow throughput.
LATENCY_LOAD = 0.5
#: The recovery phase's jobs sleep this long: far longer than the measurement.
RECOVERY_SLEEP_SECONDS = 600.0
RECOVERY_TIMEOUT_SECONDS = 120.0

Progress = Callable[[str], None]


# -- the benchmark's core ------------------------------------------------------------


def run_jobs_benchmark(
    database_url: str,
    redis_url: str,
    *,
    jobs: int = 5000,
    processes: int = 1,
    threads: int = 8,
    latency_seconds: float = 10.0,
    warmup_seconds: float = 1.0,
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    """Run every phase against ``database_url`` and ``redis_url``; return the figures.

    Destructive on purpose: ``async_jobs`` in that database is truncated and that
    Redis logical database is flushed before each phase.
    """
    work_dir = Path(tempfile.mkdtemp(prefix="gradeflow-bench-"))
    engine = make_engine(database_url, pool_size=4, application_name="gradeflow-bench")
    client = redis.Redis.from_url(redis_url)
    procs = Processes(child_env(database_url, redis_url), work_dir)
    defaults = Settings.model_construct()
    result: dict[str, Any] = {
        "jobs": jobs,
        "processes": processes,
        "threads": threads,
        "load_avg_start": round(os.getloadavg()[0], 2),
    }
    ok = False
    try:
        progress(f"raw Dramatiq: {jobs} no-op messages, {processes}x{threads} worker")
        result.update(raw_phase(client, redis_url, procs, jobs, processes, threads))
        progress(f"  {result['raw_jobs_per_s']:.0f} jobs/s")

        progress(f"gradeflow: {jobs} noop jobs through the full lifecycle")
        scheduler = procs.start("scheduler", gradeflow_argv("scheduler"))
        tracked, worker = tracked_phase(
            engine, client, redis_url, procs, scheduler, jobs, processes, threads, defaults
        )
        result.update(tracked)
        result["ratio"] = round(result["tracked_jobs_per_s"] / result["raw_jobs_per_s"], 3)
        progress(f"  {result['tracked_jobs_per_s']:.0f} jobs/s, ratio {result['ratio']:.2f}")

        rate = max(1.0, result["tracked_jobs_per_s"] * LATENCY_LOAD)
        progress(f"pickup latency: {rate:.0f} jobs/s for {latency_seconds:.0f} s")
        result.update(
            latency_phase(
                engine, redis_url, procs, (scheduler, worker), rate, latency_seconds,
                warmup_seconds, defaults,
            )
        )  # fmt: skip
        progress(f"  p50 {result['pickup_p50_ms']} ms, p99 {result['pickup_p99_ms']} ms")
        procs.stop(worker)

        progress("recovery: SIGKILL a worker running slow jobs (default lease settings)")
        result.update(
            recovery_phase(engine, redis_url, procs, scheduler, processes, threads, defaults)
        )
        progress(f"  every orphaned job claimed again after {result['recovery_s']} s")
        procs.stop(scheduler)
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE async_jobs"))
        client.flushdb()
        ok = True
    finally:
        procs.close()
        engine.dispose()
        client.close()
        if ok:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            progress(f"process logs kept in {work_dir}")
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    return result


def raw_phase(
    client: redis.Redis, redis_url: str, procs: Processes, jobs: int, processes: int, threads: int
) -> dict[str, Any]:
    """Enqueue ``jobs`` raw messages, start ``dramatiq``, time the drain."""
    import dramatiq

    from gradeflow.ops import bench_raw_actor as raw

    client.flushdb()
    broker = raw.build_raw_broker(redis_url)
    try:
        for _ in range(jobs):
            broker.enqueue(
                dramatiq.Message(
                    queue_name=raw.QUEUE, actor_name=raw.ACTOR, args=(jobs,), kwargs={}, options={}
                )
            )
    finally:
        broker.close()
    started = time.monotonic()
    worker = procs.start(
        "raw-dramatiq",
        [
            sys.executable, "-m", "dramatiq", "gradeflow.ops.bench_raw_actor:setup",
            "--processes", str(processes), "--threads", str(threads), "--queues", raw.QUEUE,
        ],
    )  # fmt: skip
    try:
        wait_until(
            lambda: int(client.get(raw.COUNT_KEY) or 0) >= jobs,
            drain_timeout(jobs),
            "raw Dramatiq to drain its queue",
            lambda: procs.check_alive(worker),
        )
        wall = time.monotonic() - started
        first = float(client.get(raw.FIRST_KEY) or 0)
        wait_until(lambda: client.get(raw.LAST_KEY) is not None, 10, "the last raw message")
        last = float(client.get(raw.LAST_KEY) or 0)
    finally:
        procs.stop(worker)
    return {
        "raw_jobs_per_s": round(jobs / max(last - first, 1e-6), 1),
        "raw_drain_s": round(last - first, 3),
        "raw_wall_s": round(wall, 3),
    }


def drain_timeout(jobs: int) -> float:
    return 60.0 + jobs / 20


def fresh_broker_db(client: redis.Redis) -> None:
    """Flush the bench Redis db, marked as not having lost data (no relay storm)."""
    client.flushdb()
    client.set(EPOCH_KEY, "gradeflow-bench")


def gradeflow_broker(redis_url: str) -> Any:
    from gradeflow.workers.broker import build_broker

    return build_broker(Settings.model_construct(redis_url=redis_url))


def worker_argv(processes: int, threads: int) -> list[str]:
    return gradeflow_argv(
        "worker", "--queues", "cpu", "--processes", str(processes), "--threads", str(threads)
    )


def status_counts(engine: Engine, ids: Sequence[uuid.UUID] | None = None) -> dict[str, int]:
    where = "" if ids is None else " WHERE id = ANY(:ids)"
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT status, count(*) FROM async_jobs{where} GROUP BY status"),
            {"ids": list(ids or [])},
        )
        return {status: count for status, count in rows}


def all_succeeded(engine: Engine, expected: int, ids: Sequence[uuid.UUID] | None = None) -> bool:
    counts = status_counts(engine, ids)
    failed = {s: n for s, n in counts.items() if s in ("dead", "cancelled")}
    if failed:
        raise BenchError(f"jobs did not succeed: {failed}")
    return counts.get("succeeded", 0) >= expected


def tracked_phase(
    engine: Engine,
    client: redis.Redis,
    redis_url: str,
    procs: Processes,
    scheduler: subprocess.Popen[bytes],
    jobs: int,
    processes: int,
    threads: int,
    defaults: Settings,
) -> tuple[dict[str, Any], subprocess.Popen[bytes]]:
    """Insert ``jobs`` noop rows, start a worker, time them all to ``succeeded``."""
    import gradeflow.jobs.builtin  # noqa: F401  (registers noop's queue)
    from gradeflow.workers.enqueue import enqueue

    with engine.begin() as conn:
        conn.execute(text("TRUNCATE async_jobs"))
    fresh_broker_db(client)
    broker = gradeflow_broker(redis_url)
    try:
        enqueue(engine, broker, [NewJob("noop") for _ in range(jobs)], defaults.dispatch_window)
    finally:
        broker.close()
    started = time.monotonic()
    worker = procs.start("worker", worker_argv(processes, threads))
    wait_until(
        lambda: all_succeeded(engine, jobs),
        drain_timeout(jobs),
        f"{jobs} gradeflow jobs to succeed",
        lambda: procs.check_alive(worker, scheduler),
    )
    wall = time.monotonic() - started
    with engine.connect() as conn:
        span = conn.execute(
            text(
                "SELECT extract(epoch FROM max(completed_at) - min(started_at))::float8"
                " FROM async_jobs WHERE status = 'succeeded'"
            )
        ).scalar_one()
    return {
        "tracked_jobs_per_s": round(jobs / max(float(span), 1e-6), 1),
        "tracked_drain_s": round(float(span), 3),
        "tracked_wall_s": round(wall, 3),
    }, worker


def latency_phase(
    engine: Engine,
    redis_url: str,
    procs: Processes,
    running: tuple[subprocess.Popen[bytes], ...],
    rate: float,
    seconds: float,
    warmup_seconds: float,
    defaults: Settings,
) -> dict[str, Any]:
    """Enqueue single jobs at ``rate`` per second; pickup latency percentiles from the rows.

    Jobs enqueued during the first ``warmup_seconds`` are not counted: they wake an
    idle consumer (Dramatiq backs off up to a second when its queue is empty).
    """
    from gradeflow.workers.enqueue import enqueue

    broker = gradeflow_broker(redis_url)
    measured: list[uuid.UUID] = []
    failure: list[BaseException] = []
    total = seconds + warmup_seconds

    def produce() -> None:
        try:
            start = time.monotonic()
            sent = 0
            while (elapsed := time.monotonic() - start) < total:
                due = int(elapsed * rate) + 1 - sent
                if due > 0:  # one job at a time; a batch only to catch up when behind
                    ids = enqueue(
                        engine, broker, [NewJob("noop") for _ in range(due)],
                        defaults.dispatch_window,
                    )  # fmt: skip
                    if elapsed >= warmup_seconds:
                        measured.extend(ids)
                    sent += due
                pause = start + sent / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        except BaseException as exc:
            failure.append(exc)

    producer = threading.Thread(target=produce, name="bench-producer", daemon=True)
    producer.start()
    producer.join(total + 60)
    broker.close()
    if failure:
        raise BenchError(f"the latency producer failed: {failure[0]!r}") from failure[0]
    if producer.is_alive():
        raise BenchError("the latency producer did not finish")
    wait_until(
        lambda: all_succeeded(engine, len(measured), measured),
        60.0 + len(measured) / 20,
        "the latency jobs to succeed",
        lambda: procs.check_alive(*running),
    )
    with engine.connect() as conn:
        quantiles, worst, achieved = conn.execute(
            text(
                "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms),"
                " max(ms), count(*) / NULLIF(extract(epoch FROM max(q) - min(q))::float8, 0)"
                " FROM (SELECT extract(epoch FROM started_at - next_run_at)::float8 * 1000 AS ms,"
                "   next_run_at AS q FROM async_jobs WHERE id = ANY(:ids)) AS pickups"
            ),
            {"ids": measured},
        ).one()
    p50, p95, p99 = quantiles
    return {
        "latency_target_rate_per_s": round(rate, 1),
        "latency_rate_per_s": round(float(achieved or 0.0), 1),
        "latency_jobs": len(measured),
        "pickup_p50_ms": round(p50, 1),
        "pickup_p95_ms": round(p95, 1),
        "pickup_p99_ms": round(p99, 1),
        "pickup_max_ms": round(worst, 1),
    }


def recovery_phase(
    engine: Engine,
    redis_url: str,
    procs: Processes,
    scheduler: subprocess.Popen[bytes],
    processes: int,
    threads: int,
    defaults: Settings,
) -> dict[str, Any]:
    """SIGKILL a worker child mid-job; time until its orphaned jobs are claimed again."""
    from gradeflow.workers.enqueue import enqueue

    slots = processes * threads
    doomed = procs.start("worker-doomed", worker_argv(processes, threads))
    broker = gradeflow_broker(redis_url)
    try:
        ids = enqueue(
            engine,
            broker,
            [NewJob("bench.sleep", {"seconds": RECOVERY_SLEEP_SECONDS}) for _ in range(slots)],
            defaults.dispatch_window,
        )
    finally:
        broker.close()
    wait_until(
        lambda: status_counts(engine, ids).get("running", 0) == slots,
        90,
        f"{slots} slow jobs to be running",
        lambda: procs.check_alive(doomed, scheduler),
    )
    with engine.connect() as conn:
        owners: dict[str, list[uuid.UUID]] = dict(
            conn.execute(
                text(
                    "SELECT locked_by, array_agg(id) FROM async_jobs"
                    " WHERE id = ANY(:ids) AND status = 'running' GROUP BY locked_by"
                ),
                {"ids": ids},
            ).all()
        )
    children = {child.pid for child in psutil.Process(doomed.pid).children(recursive=True)}
    by_process: dict[int, list[uuid.UUID]] = {}
    for owner, owned in owners.items():  # owner is host:pid[:attempt token]
        pid = next((int(p) for p in owner.split(":") if p.isdigit() and int(p) in children), None)
        if pid is None:
            raise BenchError(f"job owner {owner} is not a child of the worker {doomed.pid}")
        by_process.setdefault(pid, []).extend(owned)
    victim_pid, orphans = max(by_process.items(), key=lambda item: len(item[1]))
    with engine.connect() as conn:
        killed_at = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    os.kill(victim_pid, signal.SIGKILL)
    fresh = procs.start("worker-fresh", worker_argv(processes, threads))

    def reclaimed() -> bool:
        with engine.connect() as conn:
            count = conn.execute(
                text("SELECT count(*) FROM async_jobs WHERE id = ANY(:ids) AND started_at > :t"),
                {"ids": orphans, "t": killed_at},
            ).scalar_one()
        return bool(count == len(orphans))

    try:
        wait_until(
            reclaimed,
            RECOVERY_TIMEOUT_SECONDS,
            "the orphaned jobs to be claimed again",
            lambda: procs.check_alive(fresh, scheduler),
        )
        with engine.connect() as conn:
            recovery = conn.execute(
                text(
                    "SELECT extract(epoch FROM max(started_at) - :t)::float8"
                    " FROM async_jobs WHERE id = ANY(:ids)"
                ),
                {"ids": orphans, "t": killed_at},
            ).scalar_one()
    finally:
        # Their jobs sleep for minutes: no graceful shutdown to wait for.
        procs.kill(doomed)
        procs.kill(fresh)
    return {
        "recovery_s": round(float(recovery), 2),
        "recovery_jobs": len(orphans),
        "lease_seconds": defaults.lease_seconds,
        "heartbeat_seconds": defaults.heartbeat_seconds,
    }


# -- where the command benchmarks ----------------------------------------------------


# -- the record -----------------------------------------------------------------------


def section(result: dict[str, Any], box: dict[str, str], command: str, when: datetime) -> str:
    """The BENCHMARKS.md section for one run."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    r = result
    return "\n".join(
        [
            SECTION_HEADING,
            "",
            f"Measured {when:%Y-%m-%d %H:%M} UTC on {box['nproc']} CPUs ({box['cpu']}), "
            f"{box['memory']} RAM; Python {box['python']}, PostgreSQL {box['postgres']}, "
            f"{box['broker']}. Load average (1 min) {r['load_avg_start']} before the run, "
            f"{r['load_avg_end']} after it."
            + (
                " The machine was busy with other work: treat these figures as preliminary."
                if r["load_avg_start"] > BUSY_LOAD
                else ""
            ),
            "",
            f"Command: `{command}` — {r['jobs']} jobs, {r['processes']} worker process(es) x "
            f"{r['threads']} threads on both sides.",
            "",
            "| | raw Dramatiq | gradeflow | target |",
            "|---|---:|---:|---|",
            f"| throughput, first message → last (jobs/s) | {r['raw_jobs_per_s']:.0f} "
            f"| {r['tracked_jobs_per_s']:.0f} | |",
            f"| drain time of {r['jobs']} jobs (s) | {r['raw_drain_s']:.2f} "
            f"| {r['tracked_drain_s']:.2f} | |",
            f"| wall clock from worker start, boot included (s) | {r['raw_wall_s']:.2f} "
            f"| {r['tracked_wall_s']:.2f} | |",
            f"| ratio gradeflow / raw | | {r['ratio']:.2f} | ≥ {TARGET_RATIO} "
            f"({verdict(r['ratio'] >= TARGET_RATIO)}) |",
            f"| pickup latency p50 / p95 / p99 (ms), due → claimed, at "
            f"{r['latency_rate_per_s']:.0f} jobs/s | | {r['pickup_p50_ms']:.0f} / "
            f"{r['pickup_p95_ms']:.0f} / {r['pickup_p99_ms']:.0f} | p99 < {TARGET_P99_MS:.0f} "
            f"({verdict(r['pickup_p99_ms'] < TARGET_P99_MS)}) |",
            f"| recovery after SIGKILL (s), kill → {r['recovery_jobs']} orphaned jobs claimed "
            f"again | | {r['recovery_s']:.1f} | < {TARGET_RECOVERY_S:.0f} "
            f"({verdict(r['recovery_s'] < TARGET_RECOVERY_S)}) |",
            "",
            "How: both sides run the real worker CLI (`dramatiq …` / `gradeflow worker`) on the "
            "same Redis, with the same processes and threads, after their messages (raw) or rows "
            "(gradeflow, a scheduler running) are in place; throughput is timed from the first "
            "message processed to the last one finished (for gradeflow: first `started_at` → "
            "last `completed_at`). The raw actor counts itself in Redis (one round trip); the "
            "gradeflow job runs the whole lifecycle: message, guarded claim, run, guarded "
            "finish (one autocommit statement each), dispatcher top-ups past the window. "
            "Pickup latency is "
            "`started_at - next_run_at` of jobs enqueued one by one (intake's durable commit "
            f"included) at {LATENCY_LOAD:.0%} of the measured gradeflow throughput for the "
            "measured window, after a warm-up second. Recovery uses the default lease "
            f"({r['lease_seconds']:g} s) and heartbeat ({r['heartbeat_seconds']:g} s): a worker "
            "child is SIGKILLed mid-job and a fresh worker started; the rescuer takes the jobs "
            "back once their lease lapses.",
            "",
        ]
    )


# -- the command ------------------------------------------------------------------------


def jobs_command(
    jobs: Annotated[int, typer.Option(min=10, help="Jobs per throughput run.")] = 5000,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes (both sides).")] = 1,
    threads: Annotated[int, typer.Option(min=1, help="Threads per worker process.")] = 8,
    latency_seconds: Annotated[
        float, typer.Option(min=1.0, help="Seconds of steady load for pickup latency.")
    ] = 10.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on the last line.")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write/--no-write", help="Record the figures in BENCHMARKS.md.")
    ] = True,
) -> None:
    """The job engine against raw Dramatiq: throughput, pickup latency, recovery.

    Runs in a database gradeflow_bench next to the configured (or embedded) one
    and in Redis logical db 12: your data is never touched.
    """
    command = "gradeflow " + shlex.join(sys.argv[1:])
    when = datetime.now(UTC)
    with stack() as resolved:
        try:
            database_url = bench_database_url(resolved.database_url, BENCH_DATABASE)
            redis_url = redis_url_with_db(resolved.redis_url, BENCH_REDIS_DB)
            result = run_jobs_benchmark(
                database_url,
                redis_url,
                jobs=jobs,
                processes=processes,
                threads=threads,
                latency_seconds=latency_seconds,
                progress=lambda line: err.print(line, highlight=False),
            )
            box = machine(database_url, redis_url)
        except BenchError as exc:
            raise fail(str(exc)) from None
    body = section(result, box, command, when)
    report(body, SECTION_HEADING, result, box, command, write=write, as_json=as_json)
