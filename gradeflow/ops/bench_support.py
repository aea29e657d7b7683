"""What every ``gradeflow bench …`` command shares: subprocesses, the bench database,
the machine's description, and its section of BENCHMARKS.md."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import typer
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gradeflow.db.engine import libpq_url, make_engine

bench_app = typer.Typer(help="Benchmarks; figures go to BENCHMARKS.md.", no_args_is_help=True)

BENCHMARKS_FILE = Path(__file__).resolve().parents[2] / "BENCHMARKS.md"
POLL_SECONDS = 0.05


class BenchError(RuntimeError):
    """A phase could not complete; the message says which and where the logs are."""


@dataclass
class Processes:
    """The benchmark's subprocesses, each in its own process group, always cleaned up."""

    env: dict[str, str]
    work_dir: Path
    started: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        log_path = self.work_dir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(argv),
                env=self.env,
                cwd=self.work_dir,  # no .env file of the user's is read
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((name, process))
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL the whole group if it lingers."""
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)
        self.kill(process)

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process's whole group (what is left of it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)

    def check_alive(self, *processes: subprocess.Popen[bytes]) -> None:
        for name, process in self.started:
            if process in processes and process.poll() is not None:
                raise BenchError(
                    f"{name} exited with code {process.returncode}; see {self.work_dir / name}.log"
                )

    def close(self) -> None:
        for _, process in reversed(self.started):
            self.stop(process, timeout=10.0)


def gradeflow_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "gradeflow", *args]


def child_env(database_url: str, redis_url: str) -> dict[str, str]:
    """The environment of every benchmark process: the bench services, engine defaults.

    ``GRADEFLOW_*`` tuning from the caller's environment is dropped, so the figures
    are those of the engine's defaults (lease, heartbeat, dispatch window).
    """
    from gradeflow.ops.bench_raw_actor import REDIS_URL_ENV

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GRADEFLOW_", "OPENAI_")) and key != "BROKER_URL"
    }
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PYTHONUNBUFFERED="1",
        **{REDIS_URL_ENV: redis_url},
    )
    return env


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    check: Callable[[], None] = lambda: None,
    interval: float = POLL_SECONDS,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        check()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def redis_url_with_db(url: str, db: int) -> str:
    """``url`` pointing at logical database ``db``."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "db"])
    path = parts.path if parts.scheme == "unix" else f"/{db}"
    if parts.scheme == "unix":
        query = urlencode([*parse_qsl(query), ("db", str(db))])
    return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


def bench_database_url(server_url: str, name: str) -> str:
    """Database ``name`` on ``server_url``'s server, created (if need be) and migrated."""
    import psycopg
    from psycopg import sql

    from gradeflow.db.migrate import upgrade

    url = make_url(libpq_url(server_url)).set(database=name)
    bench_url = url.render_as_string(hide_password=False)
    try:
        with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise BenchError(
            f"cannot create database {name} next to DATABASE_URL's ({exc}); "
            "the benchmark truncates its tables, so it never runs in yours"
        ) from None
    upgrade(bench_url)
    return bench_url


def machine(database_url: str, redis_url: str) -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    memory = "?"
    with contextlib.suppress(OSError):
        found = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        memory = f"{int(found.group(1)) / 1024 / 1024:.1f} GiB" if found else memory
    engine = make_engine(database_url, pool_size=None)
    try:
        with engine.connect() as conn:
            postgres = str(conn.execute(text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()
    client = redis.Redis.from_url(redis_url)
    try:
        info = client.info("server")
        broker = (
            f"Valkey {info['valkey_version']}"
            if "valkey_version" in info
            else f"Redis {info.get('redis_version', '?')}"
        )
    finally:
        client.close()
    return {
        "nproc": str(os.cpu_count()),
        "memory": memory,
        "cpu": cpu,
        "python": platform.python_version(),
        "postgres": postgres.split()[0],
        "broker": broker,
        "host": socket.gethostname(),
    }


def write_section(path: Path, body: str, heading: str) -> None:
    """Replace this benchmark's section of ``path`` (or append it; create the file)."""
    current = path.read_text() if path.exists() else "# Benchmarks\n\n"
    start = current.find(heading)
    if start < 0:
        updated = current.rstrip("\n") + "\n\n" + body
    else:
        following = re.search(r"^## ", current[start + len(heading) :], re.M)
        end = len(current) if not following else start + len(heading) + following.start()
        updated = current[:start] + body + ("\n" + current[end:] if following else "")
    path.write_text(updated)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank; 0 for none)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def report(
    body: str,
    heading: str,
    result: dict[str, Any],
    box: dict[str, str],
    command: str,
    *,
    write: bool,
    as_json: bool,
) -> None:
    """Record ``body`` as the ``heading`` section of BENCHMARKS.md (with ``write``), then
    print it, or with ``as_json`` one JSON object of the figures on the last line."""
    if write:
        write_section(BENCHMARKS_FILE, body, heading)
        typer.echo(f"recorded in {BENCHMARKS_FILE}", err=True)
    if as_json:
        typer.echo(json.dumps({**result, "machine": box, "command": command}))
    else:
        typer.echo(body)
