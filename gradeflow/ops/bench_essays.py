"""``gradeflow bench essays``: LLM essay grading throughput, and the per-minute limit kept.

Both runs grade real essay assessments with real ``gradeflow worker`` processes
(llm queue) and a ``gradeflow scheduler``, through the official SDK, against
the fake OpenAI-compatible server of :mod:`gradeflow.ops.fakes.openai_server`
(a subprocess answering every request after ``--latency`` seconds). Each
assessment goes through the whole pipeline: its essay job, then its
recommendation job (on the llm queue too, under the same concurrency limit),
which completes it; worker CPU is counted until every assessment is completed:

1. **throughput**: N essays with the ``llm`` concurrency limit at C, so the
   ideal is C ÷ latency essays per second; measured from the first job
   claimed to the last one finished (``started_at`` → ``completed_at``).
2. **requests per minute**: M essays with a requests-per-minute limit L set;
   the fake server's arrival times of the requests are checked in a sliding
   60-second window, and every request that arrived with L others or more in
   the 60 s before it counts as over the limit.

The core, :func:`run_essays_benchmark`, truncates the assessment and job
tables of the database it is given and flushes the Redis logical database: pass
disposable ones. The command uses database ``gradeflow_bench_essays`` on the
configured (or embedded) server and Redis db 13.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import psutil
import redis
import typer
from sqlalchemy import Engine, text

from gradeflow.db.engine import make_engine
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
from gradeflow.workers.maintenance import EPOCH_KEY

BENCH_DATABASE = "gradeflow_bench_essays"
BENCH_REDIS_DB = 13
SECTION_HEADING = "## Essay grading (`gradeflow bench essays`)"
FAKE_SERVER_MODULE = "gradeflow.ops.fakes.openai_server"
#: Dramatiq's Redis broker: a sorted set of its worker processes' last fetches.
DRAMATIQ_HEARTBEATS = "dramatiq:__heartbeats__"
MODEL = "bench-grader"

#: Target of the issue: essays per second at least this share of limit ÷ latency.
TARGET_EFFICIENCY = 0.9
WINDOW_SECONDS = 60.0
#: How often the bench looks whether the run is over (not part of any figure).
DONE_POLL_SECONDS = 0.25
#: A 1-minute load average above this before the run (other work) marks figures preliminary.
BUSY_LOAD = 1.0
#: Every statement that clears the bench database between runs (children cascade).
RESET = "TRUNCATE async_jobs, assessments, questions, role_catalog, users, api_clients CASCADE"

RUBRIC = {
    "criteria": [
        {
            "name": "accuracy",
            "description": "Explains how an index speeds up lookups.",
            "levels": [
                {"score": 0, "descriptor": "Wrong or missing."},
                {"score": 5, "descriptor": "Names the b-tree and sorted keys."},
            ],
            "keywords": ["b-tree", "sorted keys"],
        },
        {
            "name": "tradeoffs",
            "description": "Discusses the cost of maintaining indexes.",
            "levels": [
                {"score": 0, "descriptor": "No costs."},
                {"score": 3, "descriptor": "Write and storage overhead explained."},
            ],
        },
    ]
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Setup:
    """What both runs share: the services, the fake server, the worker shape."""

    engine: Engine
    redis_url: str
    env: dict[str, str]
    fake_url: str
    work_dir: Path
    processes: int
    threads: int
    concurrency: int
    #: Compute turns per worker process (``GRADEFLOW_WORKER_COMPUTE_TURNS``).
    turns: int


# -- the fake LLM ---------------------------------------------------------------------


def start_fake_server(procs: Processes, latency: float) -> str:
    """Start the fake server as a subprocess; return its base URL once it answers."""
    port = free_port()
    argv = [sys.executable, "-m", FAKE_SERVER_MODULE, "--port", str(port),
            "--latency", str(latency)]  # fmt: skip
    server = procs.start("fake-openai", argv)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            control(url, "requests")
        except OSError:
            return False
        return True

    wait_until(answers, 30, "the fake OpenAI server", lambda: procs.check_alive(server))
    return f"{url}/v1"


def control(url: str, action: str, body: dict[str, Any] | None = None) -> Any:
    """Call the fake server's ``/_control/<action>`` (POST with a body, else GET)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url.removesuffix('/v1')}/_control/{action}",
        data=data,
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def chat_arrivals(fake_url: str) -> list[float]:
    """Arrival times (server clock) of the chat requests since the last reset, sorted."""
    requests = control(fake_url, "requests")["requests"]
    return sorted(r["at"] for r in requests if r["path"].endswith("/chat/completions"))


def over_limit(arrivals: Sequence[float], limit: int) -> tuple[int, int]:
    """Requests that arrived with ``limit`` or more others in the ``WINDOW_SECONDS``
    before them, and the most requests any such window held."""
    first, over, peak = 0, 0, 0
    for last, at in enumerate(arrivals):
        while arrivals[first] <= at - WINDOW_SECONDS:
            first += 1
        in_window = last - first + 1
        peak = max(peak, in_window)
        over += in_window > limit
    return over, peak


# -- data -------------------------------------------------------------------------------


def reset(setup: Setup) -> None:
    """An empty bench database, an empty Redis db (marked: no relay storm), no requests."""
    with setup.engine.begin() as conn:
        conn.execute(text(RESET))
    client = redis.Redis.from_url(setup.redis_url)
    try:
        client.flushdb()
        client.set(EPOCH_KEY, "gradeflow-bench-essays")
    finally:
        client.close()
    control(setup.fake_url, "reset", {})


def seed(setup: Setup, essays: int) -> None:
    """``essays`` one-essay assessments, their jobs inserted and messages sent."""
    from sqlalchemy.orm import Session

    from gradeflow.db.assessments import NewAssessment, insert_assessment
    from gradeflow.db.catalog import NewQuestion, insert_question, insert_role
    from gradeflow.db.clients import insert_client
    from gradeflow.jobs.enqueue import insert_new_jobs
    from gradeflow.jobs.pipeline import scoring_jobs
    from gradeflow.jobs.registry import load_job_types
    from gradeflow.settings import Settings
    from gradeflow.workers.broker import build_broker
    from gradeflow.workers.messages import send_messages

    load_job_types()  # a job row's queue comes from its registered type
    with Session(setup.engine) as session, session.begin():
        client = insert_client(session, name="bench", role="submitter",
                               key_hash=secrets.token_hex(32), key_prefix="gf_bench")  # fmt: skip
        role = insert_role(session, name="DBA", description=None, skills_profile={}, active=True)
        question = insert_question(
            session,
            NewQuestion(role.id, "essay", "Explain an index.", None, RUBRIC, Decimal(1), "1"),
        )
        jobs = []
        for number in range(essays):
            essay = f"Essay {number}: an index keeps sorted keys in a b-tree; writes pay for it."
            assessment = insert_assessment(
                session,
                NewAssessment(client.id, "bench-user", "bench@example.com", role.id, None,
                              answers=[(question.id, essay)]),
            )  # fmt: skip
            snapshot_id = assessment.snapshot_ids[question.id]
            jobs.extend(scoring_jobs(assessment.id, client.id, {snapshot_id: "essay"}))
        inserted = insert_new_jobs(session.connection(), jobs, window=max(500, essays))
    broker = build_broker(Settings.model_construct(redis_url=setup.redis_url))
    try:
        send_messages(broker, inserted.messages)
    finally:
        broker.close()


# -- one run ------------------------------------------------------------------------------


def worker_env(setup: Setup, per_minute: int | None) -> dict[str, str]:
    env = {
        **setup.env,
        "OPENAI_BASE_URL": setup.fake_url,
        "OPENAI_API_KEY": "sk-bench",
        "GRADEFLOW_LLM_MODEL": MODEL,
        "GRADEFLOW_LLM_CONCURRENCY": str(setup.concurrency),
        # The pool of database connections is sized from these.
        "GRADEFLOW_WORKER_PROCESSES": str(setup.processes),
        "GRADEFLOW_WORKER_THREADS": str(setup.threads),
        "GRADEFLOW_WORKER_COMPUTE_TURNS": str(setup.turns),
    }
    if per_minute:
        env["GRADEFLOW_LLM_REQUESTS_PER_MINUTE"] = str(per_minute)
    return env


def essays_done(engine: Engine, expected: int) -> bool:
    with engine.connect() as conn:
        counts: dict[str, int] = dict(
            conn.execute(
                text(
                    "SELECT status, count(*) FROM async_jobs WHERE job_type = 'score_essay'"
                    " GROUP BY status"
                )
            ).all()
        )
    if counts.get("dead") or counts.get("cancelled"):
        raise BenchError(f"essay jobs did not succeed: {counts}")
    return int(counts.get("succeeded", 0)) >= expected


def first_claimed(engine: Engine) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT 1 FROM async_jobs WHERE started_at IS NOT NULL LIMIT 1")
        ).first()
    return found is not None


def assessments_completed(engine: Engine, expected: int) -> bool:
    """Every assessment through the pipeline (its recommendation stage included)."""
    with engine.connect() as conn:
        done = conn.execute(
            text("SELECT count(*) FROM assessments WHERE status = 'completed'")
        ).scalar_one()
    return int(done) >= expected


@dataclass(frozen=True)
class Run:
    wall_s: float
    #: CPU seconds the worker processes used, their start-up included.
    worker_cpu_s: float
    #: Of which before the essays were inserted: importing, forking, connecting.
    startup_cpu_s: float
    #: Share of the machine's CPU time that was busy (any process) during the run.
    machine_busy: float


def worker_cpu_seconds(worker: subprocess.Popen[bytes]) -> float:
    """CPU time of the worker and its Dramatiq processes so far."""
    try:
        root = psutil.Process(worker.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in tree:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def consuming_processes(redis_url: str) -> int:
    """Worker processes whose consumers have asked the broker for messages (Dramatiq's
    Redis broker records a heartbeat per process with every fetch)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.zcard(DRAMATIQ_HEARTBEATS))
    finally:
        client.close()


def grade(setup: Setup, name: str, essays: int, per_minute: int | None, timeout: float) -> Run:
    """Start a worker, seed ``essays`` once every process consumes, run until every one
    is graded; time it.

    The essays arrive at a running worker, as a burst does in service: a process
    still importing would take CPU from the first calls' answers and count its own
    boot as grading time.
    """
    reset(setup)
    procs = Processes(worker_env(setup, per_minute), setup.work_dir)
    try:
        worker = procs.start(
            name,
            gradeflow_argv("worker", "--queues", "llm", "--processes", str(setup.processes),
                           "--threads", str(setup.threads)),
        )  # fmt: skip

        def alive() -> None:
            procs.check_alive(worker)

        wait_until(
            lambda: consuming_processes(setup.redis_url) >= setup.processes,
            timeout,
            f"{setup.processes} worker processes to consume",
            alive,
        )
        startup_cpu_s = worker_cpu_seconds(worker)
        started = time.monotonic()
        psutil.cpu_percent()  # starts the machine-wide measurement
        seed(setup, essays)
        wait_until(lambda: first_claimed(setup.engine), timeout, "a first claim", alive)
        # The figures come from the rows' own timestamps, so the bench need not look
        # often: each look is a query the measured run would otherwise not make.
        wait_until(
            lambda: essays_done(setup.engine, essays),
            timeout,
            f"{essays} essays to be graded",
            alive,
            interval=DONE_POLL_SECONDS,
        )
        wait_until(
            lambda: assessments_completed(setup.engine, essays),
            timeout,
            f"{essays} assessments to be completed",
            alive,
            interval=DONE_POLL_SECONDS,
        )
        return Run(
            wall_s=time.monotonic() - started,
            worker_cpu_s=worker_cpu_seconds(worker),
            startup_cpu_s=startup_cpu_s,
            machine_busy=psutil.cpu_percent() / 100,
        )
    finally:
        procs.close()


def throughput_run(setup: Setup, essays: int, latency: float) -> dict[str, Any]:
    run = grade(setup, "worker-throughput", essays, None, 120 + essays * latency)
    with setup.engine.connect() as conn:
        span = conn.execute(
            text(
                "SELECT extract(epoch FROM max(completed_at) - min(started_at))::float8"
                " FROM async_jobs WHERE job_type = 'score_essay' AND status = 'succeeded'"
            )
        ).scalar_one()
        finished = (
            conn.execute(
                text(
                    "SELECT extract(epoch FROM completed_at)::float8 FROM async_jobs"
                    " WHERE job_type = 'score_essay' AND status = 'succeeded' ORDER BY completed_at"
                )
            )
            .scalars()
            .all()
        )
        latencies = conn.execute(text("SELECT latency_ms FROM essay_scores")).scalars().all()
        completed = conn.execute(
            text("SELECT count(*) FROM assessments WHERE status = 'completed'")
        ).scalar_one()
    ideal = setup.concurrency / latency
    per_s = essays / max(float(span), 1e-6)
    return {
        "essays_per_s": round(per_s, 1),
        "ideal_per_s": round(ideal, 1),
        "efficiency": round(per_s / ideal, 3),
        "essays_per_s_sustained": round(sustained_rate(finished), 1),
        "drain_s": round(float(span), 2),
        "wall_s": round(run.wall_s, 2),
        "worker_cpu_ms_per_essay": round(run.worker_cpu_s / essays * 1000, 1),
        "worker_cpu_ms_per_essay_after_startup": round(
            (run.worker_cpu_s - run.startup_cpu_s) / essays * 1000, 1
        ),
        "machine_cpu_busy": round(run.machine_busy, 3),
        "assessments_completed": int(completed),
        "llm_latency_p50_ms": percentile([float(v) for v in latencies], 0.5),
        "llm_latency_p99_ms": percentile([float(v) for v in latencies], 0.99),
    }


def sustained_rate(finished: Sequence[float], low: float = 0.1, high: float = 0.9) -> float:
    """Essays per second between the ``low`` and ``high`` shares of the completions
    (sorted times): the rate once the burst's start and its last wave are left out."""
    first, last = int(len(finished) * low), int(len(finished) * high) - 1
    if last <= first or finished[last] <= finished[first]:
        return 0.0
    return (last - first) / (finished[last] - finished[first])


def rate_run(setup: Setup, essays: int, per_minute: int) -> dict[str, Any]:
    timeout = 120 + WINDOW_SECONDS * (essays / per_minute + 1)
    run = grade(setup, "worker-rate", essays, per_minute, timeout)
    arrivals = chat_arrivals(setup.fake_url)
    over, peak = over_limit(arrivals, per_minute)
    return {
        "rpm_limit": per_minute,
        "rpm_essays": essays,
        "rpm_requests": len(arrivals),
        "over_limit_requests": over,
        "peak_requests_in_60s": peak,
        "rpm_span_s": round(arrivals[-1] - arrivals[0], 2) if arrivals else 0.0,
        "rpm_wall_s": round(run.wall_s, 2),
    }


# -- the benchmark's core ------------------------------------------------------------------


def run_essays_benchmark(
    database_url: str,
    redis_url: str,
    *,
    essays: int = 500,
    latency: float = 1.0,
    concurrency: int = 100,
    processes: int = 4,
    threads: int = 50,
    turns: int = 1,
    per_minute: int = 100,
    rate_essays: int = 200,
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    """Both runs against ``database_url`` and ``redis_url`` (both emptied); the figures."""
    work_dir = Path(tempfile.mkdtemp(prefix="gradeflow-bench-essays-"))
    engine = make_engine(database_url, pool_size=4, application_name="gradeflow-bench")
    env = child_env(database_url, redis_url)
    services = Processes(env, work_dir)
    result: dict[str, Any] = {
        "essays": essays,
        "latency_s": latency,
        "concurrency": concurrency,
        "processes": processes,
        "threads": threads,
        "turns": turns,
        "load_avg_start": round(os.getloadavg()[0], 2),
    }
    ok = False
    try:
        fake_url = start_fake_server(services, latency)
        setup = Setup(
            engine, redis_url, env, fake_url, work_dir, processes, threads, concurrency, turns
        )
        services.start("scheduler", gradeflow_argv("scheduler"))
        progress(f"throughput: {essays} essays, llm concurrency {concurrency}, {latency:g} s each")
        result.update(throughput_run(setup, essays, latency))
        progress(f"  {result['essays_per_s']} essays/s of an ideal {result['ideal_per_s']}")
        progress(f"requests per minute: {rate_essays} essays under a limit of {per_minute}/min")
        result.update(rate_run(setup, rate_essays, per_minute))
        progress(f"  {result['over_limit_requests']} requests over the limit")
        with engine.begin() as conn:
            conn.execute(text(RESET))
        ok = True
    finally:
        services.close()
        engine.dispose()
        if ok:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            progress(f"process logs kept in {work_dir}")
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    return result


# -- the record ------------------------------------------------------------------------------


def section(result: dict[str, Any], box: dict[str, str], command: str, when: datetime) -> str:
    """The BENCHMARKS.md section for one run."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    r = result
    busy = r["load_avg_start"] > BUSY_LOAD
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
                if busy
                else ""
            ),
            "",
            f"Command: `{command}` — {r['processes']} worker process(es) x {r['threads']} "
            f"threads on the llm queue, {r['turns']} compute turn(s) per process, "
            "a fake OpenAI-compatible server answering every request "
            f"after {r['latency_s']:g} s.",
            "",
            "| | measured | target |",
            "|---|---:|---|",
            f"| essays graded per second ({r['essays']} essays, llm concurrency "
            f"{r['concurrency']}) | {r['essays_per_s']:.1f} | |",
            f"| ideal (concurrency ÷ latency) | {r['ideal_per_s']:.1f} | |",
            f"| sustained: between the 10th and 90th percentile of the completions | "
            f"{r['essays_per_s_sustained']:.1f} | (not the target's figure) |",
            f"| efficiency | {r['efficiency']:.1%} | ≥ {TARGET_EFFICIENCY:.0%} "
            f"({verdict(r['efficiency'] >= TARGET_EFFICIENCY)}) |",
            f"| drain, first claim → last finish / wall from inserting the essays (s) | "
            f"{r['drain_s']:.2f} / {r['wall_s']:.2f} | |",
            f"| worker CPU per essay (ms), start-up included / after start-up | "
            f"{r['worker_cpu_ms_per_essay']:.0f} / "
            f"{r.get('worker_cpu_ms_per_essay_after_startup', float('nan')):.0f} | |",
            f"| machine CPU busy during the run | {r['machine_cpu_busy']:.0%} | |",
            f"| LLM call latency p50 / p99 as the SDK saw it (ms) | "
            f"{r['llm_latency_p50_ms']:.0f} / {r['llm_latency_p99_ms']:.0f} | |",
            f"| requests over a {r['rpm_limit']}/min limit ({r['rpm_essays']} essays, "
            f"{r['rpm_requests']} requests over {r['rpm_span_s']:.0f} s) | "
            f"{r['over_limit_requests']} | 0 ({verdict(r['over_limit_requests'] == 0)}) |",
            f"| most requests in any 60 s window | {r['peak_requests_in_60s']} | "
            f"≤ {r['rpm_limit']} |",
            "",
            "How: a real `gradeflow worker --queues llm` and a `gradeflow scheduler` are "
            "started; once every worker process consumes, essay-only assessments (one essay "
            "each) are inserted with their `score_essay` jobs and messages, as a burst "
            "reaching a running service, and graded through the openai SDK (structured output, "
            "clamping, cost, the essay score upsert in the transaction that completes the job "
            "and runs the pipeline's finish hook), then build each assessment's recommendation "
            "(a `build_recommendations` job, on the llm queue under the same concurrency limit; "
            "the bench catalog is empty, so no model call) and complete it. Throughput is "
            "essays ÷ (last `completed_at` - first `started_at` of the essay jobs); worker CPU "
            "is counted until every assessment is completed, its start-up being the CPU used "
            "before the essays were inserted. The limit run sets "
            "`GRADEFLOW_LLM_REQUESTS_PER_MINUTE`; the fake server stamps each request on "
            "arrival and every request with the limit or more others in the 60 s before it "
            "counts as over.",
            "",
            "Reading the figures: the 500 essays arrive at once, so the first hundred calls leave"
            " together and come back together. The threads that finish them and the threads that "
            "start the next calls take turns to compute (`GRADEFLOW_WORKER_COMPUTE_TURNS`), "
            "finishing attempts first (and one more of them at a time: their writes mostly wait"
            " on PostgreSQL), and give their turn up while they wait for a slot or an "
            "answer: a thread holding the next request does not wait behind a hundred score "
            "writes, and in each process the recommendation jobs (new work) wait while essays are"
            " being finished (across processes they share the two cores with the last wave)."
            " The sustained figure, between the 10th and 90th percentile of the completions, "
            "shows what the limiter keeps up once the burst's edges are left out; what is lost is"
            " at the edges: the first hundred requests need their claims and reads first, and the"
            " last wave inherits the spread of the ones before it. Every essay costs the worker "
            "CPU (the SDK call and its JSON, the essay job's claim, read and one transaction for "
            "its score, finish hook and follow-up, the recommendation job and the finish hook "
            "that completes the assessment) and PostgreSQL about half as much again. Both limits "
            "cover the model call alone (`limits_at_call`): a concurrency slot is taken right "
            "before the request leaves and given back when its answer is in, so the workers run "
            "more threads than the limit (reading and writing meanwhile); the SDK's own time on a"
            " busy CPU (building the request, reading the answer) is inside the slot, which is "
            "why the calls as the SDK saw them take longer than the server's 1 s.",
            "",
        ]
    )


# -- the command ------------------------------------------------------------------------------


def essays_command(
    essays: Annotated[int, typer.Option(min=10, help="Essays in the throughput run.")] = 500,
    latency: Annotated[
        float, typer.Option(min=0.05, help="Seconds the fake server takes to answer.")
    ] = 1.0,
    concurrency: Annotated[int, typer.Option(min=1, help="The llm concurrency limit.")] = 100,
    # 200 threads for 100 slots: a slot is held for the model's call alone, so a hundred
    # threads have their next essay claimed and read, waiting for a slot, when a wave of
    # answers comes back. One compute turn per process: the threads finishing essays and
    # those starting them take turns, answers first (measured on 2 CPUs: 1 turn 88-90 %,
    # 2 turns 87-89 %, 4 turns 83-86 %; 4 x 30 threads 84-86 %).
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 4,
    threads: Annotated[
        int, typer.Option(min=1, help="Threads per worker process (processes x threads ≥ limit).")
    ] = 50,
    turns: Annotated[
        int, typer.Option(min=1, help="Compute turns per worker process (see the README).")
    ] = 1,
    per_minute: Annotated[
        int, typer.Option(min=1, help="Requests-per-minute limit of the second run.")
    ] = 100,
    rate_essays: Annotated[int, typer.Option(min=1, help="Essays in the second run.")] = 200,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on the last line.")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write/--no-write", help="Record the figures in BENCHMARKS.md.")
    ] = True,
) -> None:
    """Essays per second against the ideal (limit ÷ latency), and a per-minute limit kept.

    Runs in a database gradeflow_bench_essays next to the configured (or embedded)
    one and in Redis logical db 13: your data is never touched.
    """
    command = "gradeflow " + shlex.join(sys.argv[1:])
    when = datetime.now(UTC)
    with stack() as resolved:
        try:
            database_url = bench_database_url(resolved.database_url, BENCH_DATABASE)
            redis_url = redis_url_with_db(resolved.redis_url, BENCH_REDIS_DB)
            result = run_essays_benchmark(
                database_url, redis_url, essays=essays, latency=latency,
                concurrency=concurrency, processes=processes, threads=threads, turns=turns,
                per_minute=per_minute, rate_essays=rate_essays,
                progress=lambda line: err.print(line, highlight=False),
            )  # fmt: skip
            box = machine(database_url, redis_url)
        except (BenchError, subprocess.SubprocessError) as exc:
            raise fail(str(exc)) from None
    body = section(result, box, command, when)
    report(body, SECTION_HEADING, result, box, command, write=write, as_json=as_json)
