"""``gradeflow worker``, ``gradeflow scheduler`` and ``gradeflow jobs …``."""

from __future__ import annotations

import json
import signal
import uuid
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gradeflow.db.engine import make_engine
from gradeflow.db.jobs import cancel_job, job_status, list_jobs, retry_dead_jobs, retry_job
from gradeflow.jobs import states
from gradeflow.jobs.registry import QUEUES
from gradeflow.ops.context import fail, stack
from gradeflow.settings import get_settings

jobs_app = typer.Typer(help="Inspect, retry and cancel jobs (the dead-letter desk).")
out = Console()


def worker(
    queues: Annotated[
        list[str] | None, typer.Option("--queues", "-Q", help="Queues to consume (default: all).")
    ] = None,
    processes: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    threads: Annotated[int | None, typer.Option(help="Threads per worker process.")] = None,
) -> None:
    """Run Dramatiq worker processes for gradeflow's job types."""
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    unknown = sorted(set(queues or []) - set(QUEUES))
    if unknown:
        raise fail(f"unknown queue(s): {', '.join(unknown)} (known: {', '.join(QUEUES)})", 2)
    with stack():
        settings = get_settings()
        argv = [
            "gradeflow.workers.boot:boot",
            "--processes", str(processes or settings.worker_processes),
            "--threads", str(threads or settings.worker_threads),
            "--worker-shutdown-timeout", str(int(settings.shutdown_grace_seconds * 1000)),
            "--queues", *(queues or QUEUES),
        ]  # fmt: skip
        code = dramatiq_main(make_argument_parser().parse_args(argv))
    raise typer.Exit(code)


def scheduler() -> None:
    """Run the maintenance loops (dispatch, relay, rescue, prune, periodic jobs).

    Safe to run several: one leads under a Postgres advisory lock.
    """
    from gradeflow.logs import configure_logging
    from gradeflow.workers.broker import get_broker
    from gradeflow.workers.maintenance import services
    from gradeflow.workers.runtime import get_runtime
    from gradeflow.workers.scheduler import Scheduler

    configure_logging()
    with stack():
        settings = get_settings()
        runtime = get_runtime()
        engine = make_engine(
            settings.database_url or "", pool_size=2, application_name="gradeflow-scheduler"
        )
        loop = Scheduler(
            engine,
            services(settings, engine, get_broker(settings), runtime.redis),
            idle_pause_seconds=settings.maintenance_interval_seconds,
        )
        signal.signal(signal.SIGTERM, lambda *_: loop.stop())
        signal.signal(signal.SIGINT, lambda *_: loop.stop())
        loop.run()


def parse_job_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise fail(f"{raw!r} is not a job id (a UUID such as 0b9a…-…)", 2) from None


@jobs_app.command("ls")
def jobs_ls(
    status: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only jobs of this type.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List the newest jobs."""
    if status and status not in states.ALL:
        raise fail(f"unknown status {status!r} (one of: {', '.join(sorted(states.ALL))})", 2)
    with stack() as resolved:
        engine = make_engine(resolved.database_url, pool_size=None)
        with engine.connect() as conn:
            rows = list_jobs(conn, status=status, job_type=job_type, limit=limit)
    if as_json:
        for row in rows:
            typer.echo(json.dumps({**row.__dict__, "id": str(row.id)}, default=str))
        return
    table = Table("id", "type", "queue", "status", "attempts", "next run", "last error")
    for row in rows:
        table.add_row(
            str(row.id), row.job_type, row.queue_name, row.status, str(row.attempts),
            f"{row.next_run_at:%Y-%m-%d %H:%M:%S}" if row.next_run_at else "",
            (row.last_error or "")[:60],
        )  # fmt: skip
    out.print(table)


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[str | None, typer.Argument(help="The job to run again.")] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Retry every dead job.")] = False,
    job_type: Annotated[
        str | None, typer.Option("--type", help="With --dead: only this type.")
    ] = None,
) -> None:
    """Queue a dead or cancelled job again (or, with --dead, every dead job)."""
    if bool(job_id) == dead:
        raise fail("give a job id, or --dead (optionally with --type)", 2)
    with stack() as resolved:
        engine = make_engine(resolved.database_url, pool_size=None)
        with engine.begin() as conn:
            if dead:
                count = retry_dead_jobs(conn, job_type)
                typer.echo(f"queued {count} dead job(s) again")
                return
            parsed = parse_job_id(job_id or "")
            if not retry_job(conn, parsed):
                raise explain_refusal(
                    job_status(conn, parsed), parsed, "retry", "dead or cancelled"
                )
    typer.echo(f"job {parsed} queued again")


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[str, typer.Argument(help="The job to cancel.")]) -> None:
    """Cancel a queued or running job (a running attempt's result is then discarded)."""
    parsed = parse_job_id(job_id)
    with stack() as resolved:
        engine = make_engine(resolved.database_url, pool_size=None)
        with engine.begin() as conn:
            if not cancel_job(conn, parsed):
                raise explain_refusal(
                    job_status(conn, parsed), parsed, "cancel", "queued or running"
                )
    typer.echo(f"job {parsed} cancelled")


def explain_refusal(status: str | None, job_id: uuid.UUID, verb: str, allowed: str) -> typer.Exit:
    if status is None:
        return fail(f"no job {job_id}")
    return fail(f"cannot {verb} job {job_id}: it is {status}, and only {allowed} jobs can be")
