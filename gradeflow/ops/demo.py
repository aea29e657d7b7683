"""``gradeflow demo``: the stack on embedded defaults, a burst of jobs, and what happened.

It grows with the product: today it shows the job engine (no-op jobs and a
job that fails until it is dead) end to end on real processes.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, text

from gradeflow.jobs.registry import NewJob
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
    """Start the stack's processes, push ``jobs`` no-op jobs through, print a summary."""
    with log.open("w") as output:
        supervisor = Supervisor(stack_processes(1, 8, web=False), env, output=output)
        supervisor.start()
        try:
            return drive(settings, engine, supervisor, jobs, log)
        finally:
            supervisor.stop(grace_seconds=settings.shutdown_grace_seconds)


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
