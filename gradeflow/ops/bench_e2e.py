"""``gradeflow bench e2e``: assessments per second through the whole pipeline, end to end.

One run, the stack of :mod:`gradeflow.ops.e2e` (API, a worker group per queue,
scheduler, the fake LLM, a verifying receiver per client):

1. **job engine alone** — the throughput phases of ``gradeflow bench jobs``
   (raw Dramatiq and gradeflow no-op jobs), on the same services, so the cost
   of the pipeline per assessment can be set against the bare engine;
2. **maximum load** — N assessments submitted at once from several clients;
   assessments per second = N ÷ (first submission → last ``assessment.completed``
   webhook received), with the fake LLM answering at once;
3. **slow LLM** — the same with every LLM answer taking ``--llm-latency`` (0.5 s);
4. **half load** — submissions at half the rate of run 2 for ``--load-seconds``,
   each timed from when it was due to when its ``assessment.completed`` arrived:
   p50/p95/p99;

while the peak resident memory of every process is sampled. Every run's
assessments are then checked (:func:`gradeflow.ops.e2e.checks.check_run`):
figures from a run that lost or doubled anything are not recorded.

Runs in database ``gradeflow_bench_e2e`` (emptied) next to the configured (or
embedded) one and in Redis logical db 11 (flushed): never in the user's data.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import redis
import typer
from sqlalchemy import Engine, text

from gradeflow.db.engine import make_engine
from gradeflow.ops.bench import fresh_broker_db, raw_phase, tracked_phase
from gradeflow.ops.bench_support import (
    BenchError,
    Processes,
    bench_database_url,
    child_env,
    gradeflow_argv,
    machine,
    percentile,
    redis_url_with_db,
    report,
)
from gradeflow.ops.context import err, fail, stack
from gradeflow.ops.e2e.checks import check_run, completion_times
from gradeflow.ops.e2e.stack import E2EStack, StackShape
from gradeflow.ops.e2e.workload import (
    Accepted,
    SubmitReport,
    Workload,
    make_submissions,
    prepare_workload,
    submit_and_settle,
)
from gradeflow.settings import Settings

BENCH_DATABASE = "gradeflow_bench_e2e"
BENCH_REDIS_DB = 11
SECTION_HEADING = "## End to end (`gradeflow bench e2e`)"
#: A 1-minute load average above this before the run (other work) marks figures preliminary.
BUSY_LOAD = 1.0
#: The latency run submits at this share of the maximum-load throughput.
LATENCY_LOAD = 0.5
WARMUP_ASSESSMENTS = 20
#: Every table the run writes (children cascade).
RESET = (
    "TRUNCATE async_jobs, assessments, users, questions, role_catalog, credential_catalog,"
    " webhook_endpoints, api_clients, audit_logs, idempotency_keys CASCADE"
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    assessments: int = 500
    clients: int = 4
    concurrency: int = 16
    llm_latency: float = 0.5
    load_seconds: float = 30.0
    credentials: int = 200
    jobs: int = 5000
    shape: StackShape = field(default_factory=StackShape)


# -- the job engine alone ------------------------------------------------------------------


def jobs_baseline(
    engine: Engine, database_url: str, redis_url: str, work_dir: Path, jobs: int
) -> dict[str, Any]:
    """The throughput phases of ``gradeflow bench jobs``: raw Dramatiq, then gradeflow's
    no-op jobs, 1 process x 8 threads each (that command's defaults)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    client = redis.Redis.from_url(redis_url)
    procs = Processes(child_env(database_url, redis_url), work_dir)
    try:
        raw = raw_phase(client, redis_url, procs, jobs, 1, 8)
        scheduler = procs.start("scheduler", gradeflow_argv("scheduler"))
        tracked, _ = tracked_phase(
            engine, client, redis_url, procs, scheduler, jobs, 1, 8, Settings.model_construct()
        )
    finally:
        procs.close()
        client.close()
    return {
        "jobs_raw_per_s": tracked["tracked_jobs_per_s"],
        "dramatiq_raw_per_s": raw["raw_jobs_per_s"],
        "jobs_baseline_jobs": jobs,
    }


def reset(engine: Engine, redis_url: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(RESET))
    client = redis.Redis.from_url(redis_url)
    try:
        fresh_broker_db(client)
    finally:
        client.close()


# -- the runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    report: SubmitReport
    #: Seconds from when each submission was due to its ``assessment.completed`` arriving.
    seconds: dict[Any, float]

    @property
    def per_s(self) -> float:
        """Assessments ÷ (first due submission → last ``assessment.completed`` received)."""
        first = min(a.due_at for a in self.report.accepted)
        last = max(a.due_at + self.seconds[a.assessment_id] for a in self.report.accepted)
        return len(self.report.accepted) / max(last - first, 1e-6)

    def percentile_ms(self, fraction: float) -> float:
        return round(percentile(list(self.seconds.values()), fraction) * 1000, 1)


def measured_run(
    stack: E2EStack,
    engine: Engine,
    workload: Workload,
    count: int,
    label: str,
    options: Options,
    rate: float | None = None,
) -> Run:
    submissions = make_submissions(workload, count, label)
    settle = 300.0 + count * (1.0 + options.llm_latency)
    report = submit_and_settle(
        stack, engine, submissions, concurrency=options.concurrency, timeout=settle, rate=rate
    )
    seconds = completion_times(engine, report.accepted, workload.tenants)
    if len(seconds) != len(report.accepted):
        raise BenchError(f"{label}: {len(report.accepted) - len(seconds)} webhooks never arrived")
    return Run(report, seconds)


def pipeline_runs(
    stack: E2EStack, engine: Engine, workload: Workload, options: Options, progress: Progress
) -> tuple[dict[str, Any], list[Accepted]]:
    """Warm-up, maximum load, slow LLM, half load; their figures and every assessment."""
    runs = [measured_run(stack, engine, workload, WARMUP_ASSESSMENTS, "warmup", options)]
    n = options.assessments
    progress(f"maximum load: {n} assessments at once, the LLM answering at once")
    runs.append(fast := measured_run(stack, engine, workload, n, "fast", options))
    progress(f"  {fast.per_s:.2f} assessments/s")
    progress(f"maximum load, the LLM answering after {options.llm_latency:g} s")
    stack.llm.configure(latency=options.llm_latency)
    runs.append(slow := measured_run(stack, engine, workload, n, "slow-llm", options))
    stack.llm.configure(latency=0.0)
    progress(f"  {slow.per_s:.2f} assessments/s")
    rate = fast.per_s * LATENCY_LOAD
    count = max(10, int(rate * options.load_seconds))
    progress(f"half load: {count} assessments at {rate:.2f}/s")
    runs.append(steady := measured_run(stack, engine, workload, count, "half", options, rate))
    progress(f"  p50 {steady.percentile_ms(0.5):.0f} ms, p99 {steady.percentile_ms(0.99):.0f} ms")
    figures = {
        "assessments_per_s": round(fast.per_s, 2),
        "assessments_per_s_llm_500ms": round(slow.per_s, 2),
        "latency_rate_per_s": round(rate, 2),
        "latency_assessments": count,
        "p50_ms": steady.percentile_ms(0.5),
        "p95_ms": steady.percentile_ms(0.95),
        "p99_ms": steady.percentile_ms(0.99),
        "max_load_p50_ms": fast.percentile_ms(0.5),
        "max_load_p99_ms": fast.percentile_ms(0.99),
        "submit_retries": sum(r.report.retried_requests for r in runs),
    }
    return figures, [a for r in runs for a in r.report.accepted]


def jobs_per_assessment(engine: Engine) -> float:
    with engine.connect() as conn:
        jobs, assessments = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM async_jobs WHERE assessment_id IS NOT NULL),"
                " (SELECT count(*) FROM assessments)"
            )
        ).one()
    return float(jobs) / max(int(assessments), 1)


def pipeline_benchmark(
    engine: Engine, database_url: str, redis_url: str, work_dir: Path, options: Options,
    progress: Progress,
) -> dict[str, Any]:  # fmt: skip
    """Runs 2 to 4 on a fresh stack; every assessment checked afterwards."""
    with E2EStack(database_url, redis_url, work_dir, options.shape) as running:
        running.start()
        workload = prepare_workload(
            running, engine, clients=options.clients, credentials=options.credentials
        )
        try:
            figures, accepted = pipeline_runs(running, engine, workload, options, progress)
            check = check_run(
                engine, accepted, workload.tenants, workload.questions.count,
                submitted=len(accepted),
            )  # fmt: skip
        finally:
            workload.close()
        figures["memory"] = running.memory.peaks_mib()
    exits = [f"worker-{e.queue} exited with code {e.code}" for e in running.exits]
    if check.problems or exits:
        raise BenchError("the runs did not hold up: " + "; ".join(check.problems + exits))
    figures["checked_assessments"] = len(accepted)
    figures["jobs_per_assessment"] = round(jobs_per_assessment(engine), 2)
    return figures


def run_e2e_benchmark(
    database_url: str, redis_url: str, options: Options, progress: Progress = lambda _: None
) -> dict[str, Any]:
    """Every run against ``database_url`` and ``redis_url`` (both emptied); the figures."""
    work_dir = Path(tempfile.mkdtemp(prefix="gradeflow-bench-e2e-"))
    engine = make_engine(database_url, pool_size=4, application_name="gradeflow-bench")
    result: dict[str, Any] = {
        "assessments": options.assessments,
        "clients": options.clients,
        "concurrency": options.concurrency,
        "llm_latency_s": options.llm_latency,
        "credentials": options.credentials,
        "threads": dict(options.shape.threads),
        "processes": options.shape.processes,
        "load_avg_start": round(os.getloadavg()[0], 2),
    }
    ok = False
    try:
        progress(f"job engine alone: {options.jobs} no-op jobs (raw Dramatiq, then gradeflow)")
        reset(engine, redis_url)
        result.update(jobs_baseline(engine, database_url, redis_url, work_dir / "jobs",
                                    options.jobs))  # fmt: skip
        progress(f"  {result['jobs_raw_per_s']:.0f} jobs/s")
        reset(engine, redis_url)
        result.update(
            pipeline_benchmark(engine, database_url, redis_url, work_dir / "stack", options,
                               progress)
        )  # fmt: skip
        ceiling = result["jobs_raw_per_s"] / max(result["jobs_per_assessment"], 1e-6)
        result["engine_ceiling_per_s"] = round(ceiling, 1)
        reset(engine, redis_url)
        ok = True
    finally:
        engine.dispose()
        if ok:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            progress(f"process logs kept in {work_dir}")
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    return result


# -- the record ----------------------------------------------------------------------------


def memory_rows(memory: dict[str, dict[str, float]]) -> list[str]:
    return [
        f"| {name} | {peak['largest_process_mib']:.0f} | {peak['tree_mib']:.0f} |"
        for name, peak in memory.items()
    ]


def section(result: dict[str, Any], box: dict[str, str], command: str, when: datetime) -> str:
    r = result
    threads = r["threads"]
    shape = ", ".join(f"{q} {r['processes']}x{threads[q]}" for q in ("cpu", "llm", "webhooks"))
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
            f"Command: `{command}` — {r['assessments']} assessments per run from "
            f"{r['clients']} clients ({r['concurrency']} submissions in flight), each of 4 "
            f"answers (2 multiple choice, 1 profile, 1 essay) against a catalog of "
            f"{r['credentials']} credentials; worker processes x threads: {shape}; one API "
            "process; every process on this machine.",
            "",
            "| | figure |",
            "|---|---:|",
            f"| assessments per second, first submission → last `assessment.completed` "
            f"received, the LLM answering at once | {r['assessments_per_s']:.2f} |",
            f"| the same, every LLM answer after {r['llm_latency_s']:g} s | "
            f"{r['assessments_per_s_llm_500ms']:.2f} |",
            f"| submit → `assessment.completed` received, p50 / p95 / p99 (ms), "
            f"{r['latency_assessments']} assessments at {r['latency_rate_per_s']:.2f}/s "
            f"(half the maximum) | {r['p50_ms']:.0f} / {r['p95_ms']:.0f} / {r['p99_ms']:.0f} |",
            f"| job engine alone: no-op jobs per second (`gradeflow bench jobs`' throughput "
            f"phase, {r['jobs_baseline_jobs']} jobs) / raw Dramatiq | "
            f"{r['jobs_raw_per_s']:.0f} / {r['dramatiq_raw_per_s']:.0f} |",
            f"| jobs per assessment / the engine's ceiling for that many no-op jobs "
            f"(assessments/s) | {r['jobs_per_assessment']:.2f} / {r['engine_ceiling_per_s']:.0f} |",
            "",
            "Peak resident memory (MiB), sampled every 0.5 s over the runs:",
            "",
            "| process | largest single process | the process and its children |",
            "|---|---:|---:|",
            *memory_rows(r["memory"]),
            "",
            "How: the API (`gradeflow api`, uvicorn), `gradeflow worker --queues Q` for each "
            "queue, `gradeflow scheduler` and the fake OpenAI-compatible server run as "
            "processes; the load generator and the webhook receivers (one per client, "
            "verifying every signature) run in the benchmark's process. Each assessment goes "
            "through `POST /v1/assessments` (with an `Idempotency-Key`), rule scoring, LLM "
            "essay grading through the openai SDK, retrieval over pgvector and the LLM's "
            "re-ranking, and `assessment.completed` and `recommendation.ready` to its "
            "client's endpoint. Throughput counts from the first submission to the last "
            "`assessment.completed` received; latency from when each submission was due "
            "(open loop, so a slow server cannot hide its queueing) to the first arrival of "
            f"its `assessment.completed`. All {r['checked_assessments']} assessments were "
            "then checked: completed, each score, recommendation and event once, every "
            "event delivered and verified. The engine's ceiling is the no-op throughput "
            "divided by the jobs an assessment takes: the gap to the measured figure is "
            "what the pipeline's own work (SQL, the SDK, retrieval, signing) costs.",
            "",
        ]
    )


# -- the command ---------------------------------------------------------------------------


def e2e_command(
    assessments: Annotated[int, typer.Option(min=10, help="Assessments per run.")] = 500,
    clients: Annotated[int, typer.Option(min=1, help="Submitting clients.")] = 4,
    concurrency: Annotated[int, typer.Option(min=1, help="Submissions in flight.")] = 16,
    llm_latency: Annotated[
        float, typer.Option(min=0.0, help="Seconds the slow LLM takes to answer.")
    ] = 0.5,
    load_seconds: Annotated[
        float, typer.Option(min=5.0, help="Seconds of the half-load latency run.")
    ] = 30.0,
    credentials: Annotated[int, typer.Option(min=10, help="Credentials in the catalog.")] = 200,
    jobs: Annotated[int, typer.Option(min=100, help="No-op jobs of the engine baseline.")] = 5000,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on the last line.")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write/--no-write", help="Record the figures in BENCHMARKS.md.")
    ] = True,
) -> None:
    """Assessments per second end to end (submit → webhook), with a fast and a slow LLM;
    latency at half load; peak memory per process; beside the bare job engine.

    Runs in a database gradeflow_bench_e2e next to the configured (or embedded) one
    and in Redis logical db 11: your data is never touched.
    """
    command = "gradeflow " + shlex.join(sys.argv[1:])
    when = datetime.now(UTC)
    options = Options(
        assessments=assessments, clients=clients, concurrency=concurrency,
        llm_latency=llm_latency, load_seconds=load_seconds, credentials=credentials, jobs=jobs,
    )  # fmt: skip
    with stack() as resolved:
        try:
            database_url = bench_database_url(resolved.database_url, BENCH_DATABASE)
            redis_url = redis_url_with_db(resolved.redis_url, BENCH_REDIS_DB)
            result = run_e2e_benchmark(
                database_url, redis_url, options,
                lambda line: err.print(line, highlight=False),
            )  # fmt: skip
            box = machine(database_url, redis_url)
        except BenchError as exc:
            raise fail(str(exc)) from None
    body = section(result, box, command, when)
    report(body, SECTION_HEADING, result, box, command, write=write, as_json=as_json)
