"""The web app as ``gradeflow api`` serves it (API and dashboard), in-process on a real
PostgreSQL and Redis, and a world of two submitter clients to attack each other with."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from tests.conftest import TEMPLATE_DATABASE, TEST_REDIS_DB, admin_execute, database_url_named
from tests.integration.api_helpers import api_settings
from tests.security.access import web_app
from tests.security.world import World, seed_world

#: Small enough that an oversized body is cheap to send.
BODY_LIMIT = 16 * 1024


def security_app(database_url: str, redis_url: str, home: Path) -> FastAPI:
    return web_app(
        api_settings(
            database_url,
            redis_url,
            max_body_bytes=BODY_LIMIT,
            home=home,
            dashboard_secret="security-tests-dashboard-secret",
        )
    )


def client_of(app: FastAPI) -> TestClient:
    """Redirects are answers under test here, so they are not followed."""
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


@pytest.fixture
def app(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[FastAPI]:
    app = security_app(database_url, redis_url, tmp_path / "home")
    yield app
    app.state.services.close()


@pytest.fixture
def http(app: FastAPI) -> TestClient:
    return client_of(app)


@pytest.fixture
def world(http: TestClient, engine: Engine) -> World:
    return seed_world(http, engine)


# -- one app for a whole module ------------------------------------------------------------
# For tests that only read, or write rows of their own: a database and an app per module
# instead of per test (creating a database is most of a short test's time).


@pytest.fixture(scope="module")
def module_database_url(postgres_server_url: str, template_database: str) -> Iterator[str]:
    name = f"gf_module_{uuid.uuid4().hex[:12]}"
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


@pytest.fixture(scope="module")
def module_redis_url(redis_server_url: str) -> Iterator[str]:
    """The logical database the ``redis_url`` fixture hands out, flushed before and after."""
    configured = os.environ.get("GRADEFLOW_TEST_REDIS_URL")
    database = make_url(redis_server_url).database if configured else None
    url = str(make_url(redis_server_url).set(database=database or str(TEST_REDIS_DB)))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def module_app(
    module_database_url: str, module_redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FastAPI]:
    app = security_app(module_database_url, module_redis_url, tmp_path_factory.mktemp("home"))
    yield app
    app.state.services.close()


@pytest.fixture(scope="module")
def module_engine(module_app: FastAPI) -> Engine:
    engine: Engine = module_app.state.services.engine
    return engine
