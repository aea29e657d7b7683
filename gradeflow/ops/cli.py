"""``gradeflow``: the command line of the whole system (Typer)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from gradeflow.db.engine import libpq_url
from gradeflow.ops.bench import jobs_command
from gradeflow.ops.bench_chaos import chaos_command
from gradeflow.ops.bench_e2e import e2e_command
from gradeflow.ops.bench_essays import essays_command
from gradeflow.ops.bench_intake import intake_command
from gradeflow.ops.bench_quality import quality_command
from gradeflow.ops.bench_rag import rag_command
from gradeflow.ops.bench_support import bench_app
from gradeflow.ops.bench_webhooks import webhooks_command
from gradeflow.ops.catalog_cli import catalog_app
from gradeflow.ops.clients_cli import clients_app
from gradeflow.ops.context import clear_errors, err, stack
from gradeflow.ops.jobs_cli import jobs_app, scheduler, worker
from gradeflow.ops.recommendations_cli import recommendations_app
from gradeflow.ops.stack import database
from gradeflow.ops.webhooks_cli import webhooks_app
from gradeflow.settings import get_settings

app = typer.Typer(
    help="gradeflow: asynchronous assessment grading on Postgres-owned jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database gradeflow uses.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(jobs_app, name="jobs")
app.add_typer(bench_app, name="bench")
app.add_typer(clients_app, name="clients")
app.add_typer(catalog_app, name="catalog")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(recommendations_app, name="recommendations")
bench_app.command("jobs")(jobs_command)
bench_app.command("rag")(rag_command)
bench_app.command("quality")(quality_command)
bench_app.command("intake")(intake_command)
bench_app.command("essays")(essays_command)
bench_app.command("webhooks")(webhooks_command)
bench_app.command("e2e")(e2e_command)
bench_app.command("chaos")(chaos_command)
app.command()(worker)
app.command()(scheduler)


@app.command()
def migrate() -> None:
    """Apply every database migration (creates the vector and citext extensions first)."""
    from gradeflow.db.migrate import upgrade

    with clear_errors(), database(get_settings()) as (url, _):
        upgrade(url)
    typer.echo("database is at the latest migration")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL gradeflow uses (for psql: psql "$(gradeflow db url)")."""
    with clear_errors(), database(get_settings()) as (url, embedded):
        typer.echo(libpq_url(url))
        if embedded:
            err.print(
                "note: embedded PostgreSQL; it stays up only while a gradeflow process "
                "(such as `gradeflow up`) runs.",
                style="dim",
            )


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address to listen on [GRADEFLOW_HOST].")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port to listen on [GRADEFLOW_PORT].")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Server processes sharing the port [GRADEFLOW_API_WORKERS]."),
    ] = None,
) -> None:
    """Serve the HTTP API (uvicorn) on 127.0.0.1:8000 unless told otherwise."""
    import uvicorn

    from gradeflow.logs import configure_logging

    configure_logging()
    with stack():
        settings = get_settings()
        # Each server process builds its own app from the environment that stack()
        # exported (the URLs of the services in use).
        uvicorn.run(
            "gradeflow.ops.dashboard.web:web_app_from_environment",  # the API + /ops
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers or settings.api_workers,
            # One log line per request costs more than a submission's own Python work;
            # errors are still logged.
            access_log=False,
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        )


@app.command()
def up(
    processes: Annotated[int, typer.Option(help="Worker processes per queue group.")] = 1,
    threads: Annotated[int, typer.Option(help="Worker threads per process.")] = 8,
) -> None:
    """Run the whole stack here: services, migrations, every process; Ctrl-C stops it.

    Embedded PostgreSQL and Redis are used unless DATABASE_URL/REDIS_URL are set.
    """
    from gradeflow.db.migrate import upgrade
    from gradeflow.metrics import clear_multiprocess_dir, metrics_directory
    from gradeflow.ops.procfile import stack_processes
    from gradeflow.ops.supervisor import Supervisor

    with stack() as resolved:
        upgrade(resolved.database_url)
        clear_multiprocess_dir(metrics_directory(get_settings()))
        typer.echo(f"database: {libpq_url(resolved.database_url)}")
        typer.echo(f"redis:    {resolved.redis_url}")
        code = Supervisor(stack_processes(processes, threads), env=os.environ).run()
    raise typer.Exit(code)


@app.command()
def demo(
    assessments: Annotated[
        int, typer.Option(min=1, max=10_000, help="How many assessments to submit.")
    ] = 50,
    keep: Annotated[
        bool | None,
        typer.Option(
            "--keep/--no-keep",
            help="Keep a stack the demo started running for the dashboard until Ctrl-C "
            "(default: when run from a terminal).",
        ),
    ] = None,
) -> None:
    """Load a sample catalog, submit assessments through the real API and show the results.

    Runs on `gradeflow up`'s stack if one answers, else starts it (embedded services
    unless configured). Works offline: without OPENAI_* the essays use the fallback
    scorer and the results say degraded.
    """
    from gradeflow.db.engine import make_engine
    from gradeflow.db.migrate import upgrade
    from gradeflow.ops.demo import run_demo

    with stack() as resolved:
        upgrade(resolved.database_url)
        settings = get_settings()
        engine = make_engine(resolved.database_url, pool_size=2)
        log = settings.home / "demo.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        code = run_demo(
            settings,
            engine,
            dict(os.environ),
            assessments,
            log,
            interactive if keep is None else keep,
        )
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
