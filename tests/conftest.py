"""Test infrastructure: a real PostgreSQL with pgvector and a real Redis for the whole run.

PostgreSQL is ``GRADEFLOW_TEST_DATABASE_URL`` when set (a server with pgvector;
databases are created on it), else an embedded PostgreSQL 18 started once per
run in a temporary directory. A template database is migrated once; each test
that asks for ``database_url`` gets a fresh copy of it, so real worker
processes can share a test's data and no test sees another's.

Redis is ``GRADEFLOW_TEST_REDIS_URL`` when set, else the local server on
127.0.0.1:6379 when it answers, else an embedded Valkey; each test gets a
flushed logical database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gradeflow.db.embedded import EmbeddedPostgres
from gradeflow.db.engine import libpq_url, make_engine
from gradeflow.db.migrate import upgrade
from gradeflow.workers.redis_server import LOCAL_REDIS_URL, EmbeddedValkey, redis_answers

TEMPLATE_DATABASE = "gradeflow_test_template"
#: Logical Redis database the tests use, away from a developer's db 0.
TEST_REDIS_DB = 9


def database_url_named(server_url: str, name: str) -> str:
    return make_url(libpq_url(server_url)).set(database=name).render_as_string(hide_password=False)


def admin_execute(server_url: str, statement: sql.Composable) -> None:
    with psycopg.connect(database_url_named(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server with pgvector, up for the whole run."""
    configured = os.environ.get("GRADEFLOW_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "pgdata")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def template_database(postgres_server_url: str) -> str:
    """A database migrated to head, copied by every test that needs one."""
    admin_execute(
        postgres_server_url,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(TEMPLATE_DATABASE)
        ),
    )
    admin_execute(
        postgres_server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DATABASE))
    )
    url = database_url_named(postgres_server_url, TEMPLATE_DATABASE)
    upgrade(url)
    return url


@pytest.fixture
def empty_database_url(postgres_server_url: str) -> Iterator[str]:
    """A brand-new database with nothing in it (for migration tests)."""
    name = f"gf_empty_{uuid.uuid4().hex[:12]}"
    admin_execute(postgres_server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield database_url_named(postgres_server_url, name)
    admin_execute(
        postgres_server_url,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
    )


@pytest.fixture
def database_url(postgres_server_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"gf_test_{uuid.uuid4().hex[:12]}"
    admin_execute(
        postgres_server_url,
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(TEMPLATE_DATABASE)
        ),
    )
    yield database_url_named(postgres_server_url, name)
    admin_execute(
        postgres_server_url,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
    )


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=5, application_name="gradeflow-tests")
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL (db 0) of a real Redis-compatible server for the whole run."""
    configured = os.environ.get("GRADEFLOW_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    if redis_answers(LOCAL_REDIS_URL):
        yield LOCAL_REDIS_URL
        return
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"))
    yield server.start()
    server.stop()


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A flushed logical Redis database for this test: the one
    ``GRADEFLOW_TEST_REDIS_URL`` names, else db 9."""
    configured_db = (
        make_url(redis_server_url).database if "GRADEFLOW_TEST_REDIS_URL" in os.environ else None
    )
    url = str(make_url(redis_server_url).set(database=configured_db or str(TEST_REDIS_DB)))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def gradeflow_env(database_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for gradeflow subprocesses pointed at this test's services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADEFLOW_", "OPENAI_"))}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        GRADEFLOW_HOME=str(tmp_path / "home"),
        PYTHONUNBUFFERED="1",
        # No snapshot_metrics jobs among a test's own (tests of metrics turn them on).
        GRADEFLOW_METRICS_SNAPSHOT_SECONDS="0",
    )
    env.pop("BROKER_URL", None)
    return env
