"""What a worker process shares between its threads, built once after the fork."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from functools import cached_property

import dramatiq
import redis
from sqlalchemy import Engine

from gradeflow.db.engine import make_engine
from gradeflow.settings import Settings, get_settings
from gradeflow.workers.broker import get_broker
from gradeflow.workers.leases import LeaseKeeper
from gradeflow.workers.limits import Gate
from gradeflow.workers.redis_server import LOCAL_REDIS_URL
from gradeflow.workers.turns import Turns


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def worker_id(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    @cached_property
    def engine(self) -> Engine:
        assert self.settings.database_url, "workers need DATABASE_URL (gradeflow worker sets it)"
        return make_engine(
            self.settings.database_url,
            pool_size=self.settings.worker_threads + 2,
            application_name=f"gradeflow-worker:{os.getpid()}",
            durable_commits=False,
            pre_ping=False,
        )

    @cached_property
    def autocommit(self) -> Engine:
        """The same pool, each statement its own transaction: one round trip for a
        single guarded statement instead of three (BEGIN, statement, COMMIT)."""
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @cached_property
    def broker(self) -> dramatiq.Broker:
        return get_broker(self.settings)

    @cached_property
    def leases(self) -> LeaseKeeper:
        return LeaseKeeper(
            self.engine,
            self.worker_id,
            lease_seconds=self.settings.lease_seconds,
            interval_seconds=self.settings.heartbeat_seconds,
        )

    @cached_property
    def turns(self) -> Turns:
        return Turns(self.settings.worker_compute_turns)

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url or LOCAL_REDIS_URL)

    @cached_property
    def gate(self) -> Gate:
        return Gate(self.redis, self.settings)


_lock = threading.Lock()
_runtime: Runtime | None = None
_runtime_pid: int | None = None


def get_runtime() -> Runtime:
    """This process's runtime; a forked child builds its own on first use."""
    global _runtime, _runtime_pid
    with _lock:
        if _runtime is None or _runtime_pid != os.getpid():
            _runtime = Runtime(get_settings())
            _runtime_pid = os.getpid()
        return _runtime
