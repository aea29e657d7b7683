"""The embedded fallbacks start, serve, and stop cleanly."""

from __future__ import annotations

from pathlib import Path

import redis

from gradeflow.workers.redis_server import EmbeddedValkey, redis_answers


def test_embedded_valkey_serves_redis_clients_and_stops(tmp_path: Path) -> None:
    server = EmbeddedValkey(tmp_path / "valkey")
    url = server.start()
    try:
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        client.close()
    finally:
        server.stop()
    assert not redis_answers(url)
