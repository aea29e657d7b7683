"""``gradeflow bench chaos``: the end-to-end run while everything breaks, and what survived.

The stack of :mod:`gradeflow.ops.e2e` runs on a PostgreSQL and a Redis this
command owns (embedded, in a temporary directory: it restarts them), and
assessments are submitted at a steady rate from several clients while:

- a worker group (one queue's ``gradeflow worker``, parent and children) is
  SIGKILLed every few seconds and started again, as a supervisor would;
- Redis is flushed, killed and started again, empty, once;
- PostgreSQL is restarted once;
- the LLM answers 30 % of calls with a 500, 10 % never (a timeout), 10 % with
  malformed JSON, plus a burst of 429s;
- every webhook receiver is down for a while, then comes back.

At the end (:func:`gradeflow.ops.e2e.checks.check_run`, chaos expectations):
every accepted assessment terminal, none lost, no result row twice, every event
delivered at least once under one ``webhook-id`` (so exactly once after the
receiver's de-duplication); and the figures: recovery time after each fault,
extra attempts spent, degraded results.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from gradeflow.db.engine import make_engine
from gradeflow.ops.bench_support import BenchError, machine, percentile, report
from gradeflow.ops.context import err, fail
from gradeflow.ops.e2e.checks import Expectations, check_run, leaks
from gradeflow.ops.e2e.faults import (
    Fault,
    RecoveryMonitor,
    kill_worker,
    lose_redis,
    rate_limit_burst,
    receivers_down,
    restart_postgres,
)
from gradeflow.ops.e2e.services import OwnedServices, owned_services
from gradeflow.ops.e2e.stack import E2EStack, StackShape
from gradeflow.ops.e2e.workload import (
    Submission,
    SubmitReport,
    Submitter,
    Workload,
    make_submissions,
    prepare_workload,
    wait_settled,
)

SECTION_HEADING = "## Chaos (`gradeflow bench chaos`)"
#: A 1-minute load average above this before the run (other work) marks figures preliminary.
BUSY_LOAD = 1.0
#: Worker groups are killed in this order, round and round.
KILL_ORDER = ("llm", "cpu", "webhooks")
#: Seconds to wait, once everything settled, for a fault's stranded work to show recovery.
RECOVERY_GRACE_SECONDS = 30.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ChaosPlan:
    """What is submitted, which faults strike when (as shares of the submitting window),
    and the engine settings the stack runs with."""

    assessments: int = 600
    clients: int = 3
    #: Submissions per second (open loop): the faults strike under a steady load.
    rate: float = 4.0
    concurrency: int = 8
    credentials: int = 100
    kill_every_seconds: float = 8.0
    #: At most this many worker kills (None: every ``kill_every_seconds`` while submitting).
    kills: int | None = None
    burst_at: float = 0.15
    burst_size: int = 40
    redis_at: float = 0.3
    redis_down_seconds: float = 1.0
    postgres_at: float = 0.5
    receivers_at: float = 0.65
    receivers_down_seconds: float = 20.0
    #: Shares of LLM calls answered 500, never (a timeout) and with malformed JSON.
    llm_500: float = 0.3
    llm_timeout: float = 0.1
    llm_malformed: float = 0.1
    #: The SDK gives up on a call after this long (a timeout answer waits longer).
    llm_timeout_seconds: float = 3.0
    seed: int = 9
    settle_timeout_seconds: float = 900.0
    #: Further settings for the stack (``GRADEFLOW_*``); none: the engine's defaults.
    env: dict[str, str] = field(default_factory=dict)

    @property
    def submit_seconds(self) -> float:
        return self.assessments / self.rate

    def stack_env(self) -> dict[str, str]:
        return {
            "GRADEFLOW_LLM_TIMEOUT_SECONDS": str(self.llm_timeout_seconds),
            # Retries a receiver that is down for seconds can see through (the default
            # schedule waits 5 min after the second failure).
            "GRADEFLOW_WEBHOOK_RETRY_SCHEDULE": "[0, 1, 2, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]",
            "GRADEFLOW_WEBHOOK_TIMEOUT_SECONDS": "5",
            **self.env,
        }

    def llm_faults(self) -> list[dict[str, Any]]:
        return [
            {"p": self.llm_500, "reply": {"kind": "status", "status": 500}},
            {"p": self.llm_timeout,
             "reply": {"kind": "timeout", "seconds": self.llm_timeout_seconds + 2}},
            {"p": self.llm_malformed, "reply": {"kind": "malformed"}},
        ]  # fmt: skip


# -- the schedule --------------------------------------------------------------------------


@dataclass(frozen=True)
class Strike:
    at_s: float
    name: str
    inject: Callable[[], Fault]


def kill_times(plan: ChaosPlan) -> list[float]:
    times: list[float] = []
    at = plan.kill_every_seconds
    while at < plan.submit_seconds and (plan.kills is None or len(times) < plan.kills):
        times.append(at)
        at += plan.kill_every_seconds
    return times


def schedule(
    plan: ChaosPlan, stack: E2EStack, services: OwnedServices, engine: Engine, workload: Workload
) -> list[Strike]:
    window = plan.submit_seconds
    strikes = [
        Strike(at, f"kill {queue}", partial(kill_worker, stack, engine, queue))
        for at, queue in zip(kill_times(plan), itertools.cycle(KILL_ORDER), strict=False)
    ]
    strikes += [
        Strike(plan.burst_at * window, "429 burst",
               partial(rate_limit_burst, stack, plan.burst_size, 1.0)),
        Strike(plan.redis_at * window, "Redis",
               partial(lose_redis, services.redis, engine, plan.redis_down_seconds)),
        Strike(plan.postgres_at * window, "PostgreSQL",
               partial(restart_postgres, services.postgres, stack, engine)),
        Strike(plan.receivers_at * window, "receivers",
               partial(receivers_down, workload.tenants, engine, plan.receivers_down_seconds)),
    ]  # fmt: skip
    return sorted(strikes, key=lambda strike: strike.at_s)


class Injector:
    """Starts each strike at its time (from ``start``), each in a thread of its own, so a
    long outage does not hold back the next fault."""

    def __init__(self, strikes: list[Strike], monitor: RecoveryMonitor, progress: Progress):
        self.strikes = strikes
        self.monitor = monitor
        self.progress = progress
        self.errors: list[str] = []
        self._threads: list[threading.Thread] = []

    def run(self, start: float) -> None:
        for strike in self.strikes:
            time.sleep(max(0.0, start + strike.at_s - time.time()))
            thread = threading.Thread(target=self.strike, args=(strike,), daemon=True)
            thread.start()
            self._threads.append(thread)
        for thread in self._threads:
            thread.join()

    def strike(self, strike: Strike) -> None:
        try:
            fault = self.monitor.add(strike.inject())
        except Exception as exc:
            self.errors.append(f"{strike.name} could not be injected: {exc!r}")
            return
        self.progress(f"  {fault.name}: {fault.stranded} stranded, out {fault.outage_s:.1f} s")


# -- the run ---------------------------------------------------------------------------------


def submit_under_fire(
    stack: E2EStack, services: OwnedServices, engine: Engine, workload: Workload,
    submissions: list[Submission], plan: ChaosPlan, monitor: RecoveryMonitor,
    progress: Progress,
) -> tuple[SubmitReport, Injector, float]:  # fmt: skip
    """Submit at the plan's rate while the strikes land; return when both are done."""
    injector = Injector(schedule(plan, stack, services, engine, workload), monitor, progress)
    start = time.time()
    thread = threading.Thread(target=injector.run, args=(start,), name="injector", daemon=True)
    thread.start()
    submitted = Submitter(stack.api_url, plan.concurrency, give_up_seconds=600).run(
        submissions, plan.rate
    )
    thread.join()
    return submitted, injector, start


def settle(
    stack: E2EStack, engine: Engine, report: SubmitReport, monitor: RecoveryMonitor,
    plan: ChaosPlan,
) -> tuple[float, list[str]]:  # fmt: skip
    """Wait for the assessments to settle and the faults to show recovery; return when
    the assessments settled (``time.time()``) and the problems."""
    problems = []
    try:
        settled = wait_settled(engine, report.ids, plan.settle_timeout_seconds, stack.check_alive)
    except BenchError as exc:
        problems.append(str(exc))
        settled = time.time()
    deadline = time.monotonic() + RECOVERY_GRACE_SECONDS
    while monitor.pending() and time.monotonic() < deadline:
        time.sleep(0.25)
    monitor.stop()
    problems += [f"{f.name} did not recover" for f in monitor.pending()]
    return settled, problems


def run_chaos(
    plan: ChaosPlan, work_dir: Path, progress: Progress = lambda _: None
) -> dict[str, Any]:
    """The whole chaos run under ``work_dir`` (services, logs); the figures and problems."""
    result: dict[str, Any] = {"load_avg_start": round(os.getloadavg()[0], 2)}
    with owned_services(work_dir / "services") as services:
        progress(f"services: PostgreSQL {services.postgres.url}, Redis {services.redis.url}")
        engine = make_engine(services.postgres.url, pool_size=4, application_name="gradeflow-chaos")
        try:
            with E2EStack(
                services.postgres.url, services.redis.url, work_dir / "stack", StackShape(),
                plan.stack_env(),
            ) as running:  # fmt: skip
                running.start()
                progress("stack up: API, a worker group per queue, scheduler, fake LLM")
                result.update(chaos_run(running, services, engine, plan, progress))
                result["box"] = machine(services.postgres.url, services.redis.url)
        finally:
            engine.dispose()
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    return result


def chaos_run(
    stack: E2EStack, services: OwnedServices, engine: Engine, plan: ChaosPlan,
    progress: Progress,
) -> dict[str, Any]:  # fmt: skip
    workload = prepare_workload(stack, engine, clients=plan.clients, credentials=plan.credentials)
    progress(f"{plan.clients} clients, their endpoints and {plan.credentials} credentials ready")
    try:
        stack.llm.configure(faults=plan.llm_faults(), fault_seed=plan.seed)
        monitor = RecoveryMonitor().start()
        progress(
            f"submitting {plan.assessments} assessments at {plan.rate:g}/s "
            f"({plan.submit_seconds:.0f} s) while the faults strike"
        )
        submissions = make_submissions(workload, plan.assessments, "chaos")
        submitted, injector, start = submit_under_fire(
            stack, services, engine, workload, submissions, plan, monitor, progress
        )
        progress("waiting for every assessment to settle")
        settled, problems = settle(stack, engine, submitted, monitor, plan)
        check = check_run(
            engine, submitted.accepted, workload.tenants, workload.questions.count,
            submitted=plan.assessments, expect=Expectations(False, False),
        )  # fmt: skip
    finally:
        workload.close()
    return {
        **figures(plan, submitted, monitor.faults, check.figures, stack.llm.stats(), start),
        "worker_exits": [
            {"queue": e.queue, "code": e.code, "at_s": round(e.at - start, 1)} for e in stack.exits
        ],
        "settled_s": round(settled - start, 1),
        "problems": injector.errors + problems + check.problems,
        # Error paths (500s, timeouts, broken answers, lost connections) log the most.
        "leaks": leaks(stack, workload, submissions),
    }


def figures(
    plan: ChaosPlan, submitted: SubmitReport, faults: list[Fault], checked: dict[str, Any],
    llm: dict[str, Any], start: float,
) -> dict[str, Any]:  # fmt: skip
    kills = [f for f in faults if "SIGKILL" in f.name and f.stranded]
    taken_back = [t for f in kills if (t := f.since_began(f.taken_back_at)) is not None]
    recovered = [t for f in kills if (t := f.recovery_s) is not None]
    return {
        **checked,
        "rate_per_s": plan.rate,
        "clients": plan.clients,
        "submit_retries": submitted.retried_requests,
        "faults": [f.as_json(start) for f in sorted(faults, key=lambda f: f.began_at)],
        "kills": sum("SIGKILL" in f.name for f in faults),
        "kills_orphaning": len(kills),
        "kill_orphans": sum(f.stranded for f in kills),
        "kill_taken_back_p50_s": percentile(taken_back, 0.5),
        "kill_taken_back_max_s": max(taken_back, default=0.0),
        "kill_recovery_p50_s": percentile(recovered, 0.5),
        "kill_recovery_max_s": max(recovered, default=0.0),
        "llm_answers": llm["played"],
        "env": plan.stack_env(),
    }


# -- the record --------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def fault_rows(faults: list[dict[str, Any]]) -> list[str]:
    rows = []
    for f in faults:
        api = f.get("api_ready_after_s")
        note = "" if api is None else f" (the API ready again after {api:.1f} s)"
        rows.append(
            f"| {f['fault']}{note} | {f['at_s']:.0f} | {f['outage_s']:.1f} | {f['stranded']} "
            f"| {seconds(f['taken_back_s'])} | {seconds(f['recovery_s'])} |"
        )
    return rows


def section(result: dict[str, Any], command: str, when: datetime) -> str:
    r, box = result, result["box"]
    extra = ", ".join(f"{kind} {n}" for kind, n in sorted(r["extra_attempts"].items()) if n)
    answers = ", ".join(f"{kind} {n}" for kind, n in sorted(r["llm_answers"].items()))
    rescues = ", ".join(f"{kind} {n}" for kind, n in sorted(r["rescues"].items()))
    exits = ", ".join(
        f"{e['queue']} (code {e['code']}, at {e['at_s']:.0f} s)" for e in r["worker_exits"]
    )
    return "\n".join(
        [
            SECTION_HEADING,
            "",
            f"Measured {when:%Y-%m-%d %H:%M} UTC on {box['nproc']} CPUs ({box['cpu']}), "
            f"{box['memory']} RAM; Python {box['python']}, PostgreSQL {box['postgres']}, "
            f"{box['broker']}. Load average (1 min) {r['load_avg_start']} before the run, "
            f"{r['load_avg_end']} after it."
            + (
                " The machine was busy with other work: treat the timings as preliminary."
                if r["load_avg_start"] > BUSY_LOAD
                else ""
            ),
            "",
            f"Command: `{command}` — {r['assessments']} assessments from {r['clients']} "
            f"clients at {r['rate_per_s']:g}/s; everything settled {r['settled_s']:.0f} s "
            "after the first submission.",
            "",
            "| outcome | |",
            "|---|---:|",
            f"| assessments accepted / terminal (completed + failed) | {r['accepted']} / "
            f"{r['completed'] + r['failed']} ({r['completed']} + {r['failed']}) |",
            f"| lost | {r['lost']} |",
            f"| result rows written twice (scores, recommendations, items, events) | "
            f"{r['duplicate_rows']} |",
            f"| events / delivered and verified / copies received beyond the first "
            f"(same `webhook-id`, dropped by the receiver's de-duplication) | {r['events']} / "
            f"{r['events_delivered']} / {r['redeliveries']} |",
            f"| degraded: assessments (an essay graded offline) / recommendations (ranked "
            f"without the LLM) | {r['degraded']} / {r['recommendations_degraded']} |",
            f"| extra job attempts spent (retries, claims after a rescue), by job type | "
            f"{extra or 'none'} |",
            f"| jobs taken back from a dead worker (rescues), by job type | {rescues or 'none'} |",
            f"| extra delivery attempts / submissions retried by the clients | "
            f"{r['extra_delivery_attempts']} / {r['submit_retries']} |",
            f"| LLM answers, by kind | {answers} |",
            f"| worker groups that exited on their own (and were started again) | "
            f"{exits or 'none'} |",
            "",
            "| fault | at (s) | outage (s) | stranded | taken back after (s) "
            "| moving again after (s) |",
            "|---|---:|---:|---:|---:|---:|",
            *fault_rows(r["faults"]),
            "",
            f"Worker kills: {r['kills']}, {r['kills_orphaning']} of them orphaning running "
            f"jobs ({r['kill_orphans']} in all); those jobs were taken back after "
            f"{r['kill_taken_back_p50_s']:.1f} s at the median ({r['kill_taken_back_max_s']:.1f} "
            f"s at most: the lease must lapse before the rescuer takes them) and moving again "
            f"after {r['kill_recovery_p50_s']:.1f} s ({r['kill_recovery_max_s']:.1f} s at most: "
            "behind the queue they rejoin, and the time the killed worker group takes to boot "
            "again).",
            "",
            "How: the stack of `gradeflow bench e2e` on a PostgreSQL and a Redis (Valkey) of the "
            "run's own; submissions at a steady rate (open loop, each retried with its "
            "`Idempotency-Key` while the API is unavailable) while the faults strike. "
            "Both times count from the fault's start. Taken back: the engine has the "
            "stranded work in hand again — a killed worker's jobs rescued (no longer running "
            "under it), every message Redis lost sent again, no job still running under an "
            "owner from before the PostgreSQL restart. Moving again: that work claimed (or "
            "over), the deliveries refused while the receivers were down delivered, an LLM "
            "call answered after the last 429. Settings: "
            + ", ".join(f"`{k}={v}`" for k, v in r["env"].items())
            + "; everything else at the engine's defaults.",
            "",
        ]
    )


# -- the command ----------------------------------------------------------------------------------


def chaos_command(
    assessments: Annotated[int, typer.Option(min=10, help="Assessments to submit.")] = 600,
    clients: Annotated[int, typer.Option(min=1, help="Submitting clients.")] = 3,
    rate: Annotated[float, typer.Option(min=0.1, help="Submissions per second.")] = 4.0,
    kill_every: Annotated[
        float, typer.Option(min=1.0, help="Seconds between worker SIGKILLs.")
    ] = 8.0,
    receivers_down: Annotated[
        float, typer.Option(min=1.0, help="Seconds the webhook receivers stay down.")
    ] = 20.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on the last line.")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write/--no-write", help="Record the figures in BENCHMARKS.md.")
    ] = True,
) -> None:
    """The end-to-end run while workers are SIGKILLed, Redis is flushed and restarted,
    PostgreSQL restarted, the LLM fails and the receivers go down; then nothing may be
    lost or doubled.

    Runs on a PostgreSQL and a Redis of its own, in a temporary directory: your
    services and data are never touched.
    """
    command = "gradeflow " + shlex.join(sys.argv[1:])
    when = datetime.now(UTC)
    plan = ChaosPlan(
        assessments=assessments, clients=clients, rate=rate, kill_every_seconds=kill_every,
        receivers_down_seconds=receivers_down,
    )  # fmt: skip
    work_dir = Path(tempfile.mkdtemp(prefix="gradeflow-bench-chaos-"))
    try:
        result = run_chaos(plan, work_dir, lambda line: err.print(line, highlight=False))
    except BenchError as exc:
        raise fail(f"{exc} (logs in {work_dir})") from None
    except BaseException:
        err.print(f"logs kept in {work_dir}", highlight=False)
        raise
    if result["problems"] or result["leaks"]:
        for problem in result["problems"] + result["leaks"]:
            err.print(f"problem: {problem}", highlight=False)
        raise fail(f"the chaos run lost or doubled something; logs in {work_dir}")
    shutil.rmtree(work_dir, ignore_errors=True)
    box = result.pop("box")
    body = section({**result, "box": box}, command, when)
    report(body, SECTION_HEADING, result, box, command, write=write, as_json=as_json)
