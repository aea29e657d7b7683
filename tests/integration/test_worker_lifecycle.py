"""Jobs driven by real Dramatiq worker processes and the real scheduler."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy import Engine, text

from gradeflow.jobs.registry import NewJob
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.enqueue import enqueue
from tests.support.jobs import TEST_TABLES_DDL
from tests.support.processes import gradeflow_argv, running, scheduler_argv, wait_for, worker_argv


def prepare(engine: Engine) -> None:
    with engine.begin() as conn:
        for ddl in TEST_TABLES_DDL:
            conn.execute(text(ddl))


def statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT status, count(*) FROM async_jobs GROUP BY 1")).all())


def test_failing_job_goes_dead_and_a_cli_retry_runs_it_again(
    engine: Engine, gradeflow_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    prepare(engine)
    broker = build_broker(Settings(redis_url=redis_url))
    import tests.support.jobs  # noqa: F401  (registers the test job types here too)

    [failing] = enqueue(engine, broker, [NewJob("test.always_fail")], window=100)
    ok = enqueue(engine, broker, [NewJob("test.effect") for _ in range(20)], window=100)
    log = tmp_path / "procs.log"
    with running(worker_argv(), gradeflow_env, log), running(scheduler_argv(), gradeflow_env, log):
        assert wait_for(lambda: statuses(engine).get("dead") == 1, timeout=30), log.read_text()
        assert statuses(engine).get("succeeded") == len(ok)
        with engine.connect() as conn:
            attempts, errors = conn.execute(
                text("SELECT attempts, error_payload->'errors' FROM async_jobs WHERE id = :id"),
                {"id": failing},
            ).one()
        assert attempts == 3
        assert [e["attempt"] for e in errors] == [1, 2, 3]
        assert "RuntimeError: always fails" in errors[-1]["traceback"]

        cli = subprocess.run(
            gradeflow_argv("jobs", "retry", str(failing)), env=gradeflow_env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        assert wait_for(
            lambda: (
                conn_count(engine, "SELECT count(*) FROM test_job_runs WHERE job_id = :id", failing)
                == 6
            ),
            timeout=30,
        )
        assert wait_for(lambda: statuses(engine).get("dead") == 1, timeout=30)


def conn_count(engine: Engine, sql: str, job_id: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), {"id": job_id}).scalar_one())


def test_a_follow_up_job_is_enqueued_with_its_parents_completion_and_runs(
    engine: Engine, gradeflow_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    prepare(engine)
    broker = build_broker(Settings(redis_url=redis_url))
    import tests.support.jobs  # noqa: F401  (registers the test job types here too)

    parents = enqueue(engine, broker, [NewJob("test.chain") for _ in range(5)], window=100)
    log = tmp_path / "procs.log"
    with running(worker_argv(), gradeflow_env, log), running(scheduler_argv(), gradeflow_env, log):
        assert wait_for(lambda: statuses(engine).get("succeeded") == 10, timeout=30), (
            log.read_text()
        )
    with engine.connect() as conn:
        children = (
            conn.execute(
                text("SELECT payload->>'parent' FROM async_jobs WHERE job_type = 'test.effect'")
            )
            .scalars()
            .all()
        )
        effects = conn.execute(text("SELECT count(*) FROM test_job_effects")).scalar_one()
    assert sorted(children) == sorted(str(p) for p in parents)
    assert effects == 5
