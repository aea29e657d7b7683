"""The backing services a gradeflow command needs, configured or embedded.

``DATABASE_URL`` unset → the embedded PostgreSQL under ``GRADEFLOW_HOME``;
``REDIS_URL`` unset → the Redis on 127.0.0.1:6379 if it answers, else an
embedded Valkey. Embedded servers stop when the command that started them
exits (the PostgreSQL one only once no other gradeflow process uses it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from gradeflow.db.embedded import EmbeddedPostgres
from gradeflow.db.preflight import check_database
from gradeflow.settings import Settings
from gradeflow.workers.redis_server import (
    LOCAL_REDIS_URL,
    EmbeddedValkey,
    check_redis,
    redis_answers,
)


@dataclass(frozen=True)
class Stack:
    database_url: str
    redis_url: str
    embedded_database: bool
    embedded_redis: bool

    def environment(self) -> dict[str, str]:
        """The variables that point child processes at this stack."""
        return {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url}


@contextmanager
def database(settings: Settings) -> Iterator[tuple[str, bool]]:
    """The database URL to use, and whether it is embedded; checked before use."""
    if settings.database_url:
        check_database(settings.database_url)
        yield settings.database_url, False
        return
    server = EmbeddedPostgres(settings.home / "pgdata")
    try:
        yield server.start(), True
    finally:
        server.stop()


@contextmanager
def broker_redis(settings: Settings) -> Iterator[tuple[str, bool]]:
    """The Redis URL to use, and whether it is embedded; checked before use."""
    if settings.redis_url:
        check_redis(settings.redis_url)
        yield settings.redis_url, False
        return
    if redis_answers(LOCAL_REDIS_URL):
        yield LOCAL_REDIS_URL, False
        return
    server = EmbeddedValkey(settings.home / "valkey")
    try:
        yield server.start(), True
    finally:
        server.stop()


@contextmanager
def running_stack(settings: Settings) -> Iterator[Stack]:
    """Both services, started as needed, and exported to this process's environment."""
    with ExitStack() as stack:
        db_url, db_embedded = stack.enter_context(database(settings))
        redis_url, redis_embedded = stack.enter_context(broker_redis(settings))
        resolved = Stack(db_url, redis_url, db_embedded, redis_embedded)
        os.environ.update(resolved.environment())
        yield resolved
