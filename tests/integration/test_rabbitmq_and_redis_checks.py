"""RabbitMQ as the broker, and the boot-time warning about an evicting Redis."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis
import structlog
from sqlalchemy import Engine, text

from gradeflow.jobs.registry import NewJob
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker
from gradeflow.workers.enqueue import enqueue
from gradeflow.workers.middleware import warn_if_redis_evicts
from gradeflow.workers.redis_server import free_port
from tests.support.jobs import TEST_TABLES_DDL
from tests.support.processes import running, scheduler_argv, wait_for, worker_argv

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def rabbitmq_answers() -> bool:
    import pika

    try:
        pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL)).close()
    except Exception:
        return False
    return True


def test_jobs_run_with_rabbitmq_as_the_broker(
    engine: Engine, gradeflow_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    if not rabbitmq_answers():
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    import tests.support.jobs  # noqa: F401  (registers the test job types here too)

    with engine.begin() as conn:
        for ddl in TEST_TABLES_DDL:
            conn.execute(text(ddl))
    broker = build_broker(Settings(broker_url=RABBITMQ_URL, redis_url=redis_url))
    broker.flush_all()
    ids = enqueue(engine, broker, [NewJob("test.effect") for _ in range(25)], window=10)
    env = {**gradeflow_env, "BROKER_URL": RABBITMQ_URL}
    log = tmp_path / "procs.log"
    with running(worker_argv(), env, log), running(scheduler_argv(), env, log):

        def all_done() -> bool:
            with engine.connect() as conn:
                return conn.execute(
                    text("SELECT count(*) FROM async_jobs WHERE status = 'succeeded'")
                ).scalar_one() == len(ids)

        assert wait_for(all_done, timeout=60), log.read_text()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM test_job_effects")).scalar_one() == 25
    broker.close()


def test_an_evicting_redis_is_warned_about(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--maxmemory-policy", "allkeys-lru", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        assert wait_for(lambda: _pings(client), timeout=10)
        with structlog.testing.capture_logs() as logs:
            warn_if_redis_evicts(client)
            client.config_set("maxmemory-policy", "noeviction")
            warn_if_redis_evicts(client)
        warnings = [entry for entry in logs if entry["log_level"] == "warning"]
        assert len(warnings) == 1
        assert warnings[0]["policy"] == "allkeys-lru"
    finally:
        server.terminate()
        server.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
