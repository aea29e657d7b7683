"""Dramatiq middleware that ties a worker process's life to the job engine."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from types import FrameType

import dramatiq
import redis
import structlog
from dramatiq.middleware import Middleware
from sqlalchemy.pool import QueuePool

from gradeflow.jobs.essays.llm import client_for, llm_configured
from gradeflow.workers.runtime import Runtime, get_runtime

log = structlog.get_logger(__name__)

#: A SIGTERM this soon after the first one is the same stop, delivered twice.
REPEATED_SIGTERM_SECONDS = 1.0


class JobEngineMiddleware(Middleware):
    """Checks the broker at boot and hands running jobs back at shutdown.

    Dramatiq's ``worker.stop`` waits ``--worker-shutdown-timeout`` for running
    actors; whatever is still running after that grace period has its lease
    released here, so another worker claims it at once instead of after the
    lease expires.
    """

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        ignore_repeated_sigterm()

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Before the worker's threads take messages, so no job meets a cold process.
        runtime = get_runtime()
        warn_if_redis_evicts(runtime.redis)
        warm_up(runtime)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        runtime = get_runtime()
        runtime.leases.stop()
        runtime.leases.release_all()


def ignore_repeated_sigterm(window_seconds: float = REPEATED_SIGTERM_SECONDS) -> None:
    """Count a SIGTERM repeated within ``window_seconds`` once.

    Stopping the process group (``kill -- -PGID``, systemd's default
    ``KillMode=control-group``) reaches a Dramatiq worker process twice: directly
    and forwarded by the Dramatiq parent. Dramatiq takes the second SIGTERM as
    "kill now", skipping the grace period and the lease release above, so the
    jobs would wait for the rescuer and be counted as rescues. A later SIGTERM
    still kills at once.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    dramatiq_handler = signal.getsignal(signal.SIGTERM)
    if not callable(dramatiq_handler):
        return
    first: float | None = None

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal first
        now = time.monotonic()
        if first is not None and now - first < window_seconds:
            return
        first = first if first is not None else now
        dramatiq_handler(signum, frame)

    signal.signal(signal.SIGTERM, handler)


def warm_up(runtime: Runtime) -> None:
    """Open the pool's database connections and build the LLM client before the first job.

    A fresh worker process's first jobs would otherwise pay for both (a connection
    and, for the SDK, a TLS context: about 0.1 s each) while a burst is waiting; a
    burst reaching cold pools opened a hundred PostgreSQL backends at once.
    """
    pool = runtime.engine.pool
    try:
        with contextlib.ExitStack() as opened:
            for _ in range(pool.size() if isinstance(pool, QueuePool) else 1):
                opened.enter_context(runtime.engine.connect())
        if llm_configured(runtime.settings):
            client_for(runtime.settings)
    except Exception as exc:  # the jobs connect (and retry) on their own
        log.warning("worker warm-up failed; the first jobs will connect", error=str(exc))


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
