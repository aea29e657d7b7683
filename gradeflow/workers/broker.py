"""The Dramatiq broker: Redis by default, RabbitMQ when ``BROKER_URL`` is ``amqp://…``.

Configured here, once, and only when asked for (never at import time of
another module), so every process builds exactly one broker from settings.
"""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from gradeflow.jobs.registry import QUEUES
from gradeflow.settings import Settings

_lock = threading.Lock()
_broker: dramatiq.Broker | None = None

#: Dramatiq's own retries stay off: the database owns attempts and backoff.
DEFAULT_MIDDLEWARE = [AgeLimit, TimeLimit, ShutdownNotifications, Callbacks, Pipelines, Retries]


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A broker for ``settings``' URL with gradeflow's queues declared."""
    url = settings.effective_broker_url
    middleware = [m() for m in DEFAULT_MIDDLEWARE] + [CurrentMessage()]
    broker: dramatiq.Broker
    if url and url.startswith("amqp"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, middleware=middleware)
    else:
        broker = RedisBroker(url=url, middleware=middleware)
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


def get_broker(settings: Settings) -> dramatiq.Broker:
    """This process's broker, built on first use and made Dramatiq's global broker."""
    global _broker
    with _lock:
        if _broker is None:
            _broker = build_broker(settings)
            dramatiq.set_broker(_broker)
        return _broker


def reset_broker() -> None:
    """Forget this process's broker (tests that point a process at another Redis)."""
    global _broker
    with _lock:
        if _broker is not None:
            _broker.close()
        _broker = None
