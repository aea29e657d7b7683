"""Dramatiq middleware that ties a worker process's life to the job engine."""

from __future__ import annotations

import dramatiq
import redis
import structlog
from dramatiq.middleware import Middleware

from gradeflow.workers.runtime import get_runtime

log = structlog.get_logger(__name__)


class JobEngineMiddleware(Middleware):
    """Checks the broker at boot and hands running jobs back at shutdown.

    Dramatiq's ``worker.stop`` waits ``--worker-shutdown-timeout`` for running
    actors; whatever is still running after that grace period has its lease
    released here, so another worker claims it at once instead of after the
    lease expires.
    """

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        warn_if_redis_evicts(get_runtime().redis)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        runtime = get_runtime()
        runtime.leases.stop()
        runtime.leases.release_all()


def warn_if_redis_evicts(client: redis.Redis) -> None:
    """Warn unless Redis's ``maxmemory-policy`` is ``noeviction``: eviction drops messages."""
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.RedisError as exc:  # CONFIG may be disabled on managed Redis
        log.warning("could not read Redis maxmemory-policy", error=str(exc))
        return
    if policy != "noeviction":
        log.warning(
            "Redis maxmemory-policy is not noeviction: under memory pressure it silently "
            "drops messages (the relay re-sends them, late). Set maxmemory-policy noeviction.",
            policy=policy,
        )
