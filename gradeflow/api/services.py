"""What the API process holds for its lifetime: settings, the database engine, the broker."""

from __future__ import annotations

from dataclasses import dataclass, field

import dramatiq
import redis
from fastapi import Request
from sqlalchemy import Engine

from gradeflow.api.keys import RecentKeys
from gradeflow.api.known_questions import KnownQuestions
from gradeflow.db.engine import make_engine
from gradeflow.jobs.enqueue import FullWindows
from gradeflow.settings import Settings
from gradeflow.workers.broker import build_broker

#: Seconds a readiness check waits for Redis.
REDIS_TIMEOUT_SECONDS = 2.0


@dataclass
class Services:
    settings: Settings
    engine: Engine
    broker: dramatiq.Broker
    redis: redis.Redis
    #: The dispatch windows intake last found full (see :class:`FullWindows`).
    full_windows: FullWindows = field(default_factory=FullWindows)
    #: The questions intake has read (see :class:`KnownQuestions`).
    known_questions: KnownQuestions = field(default_factory=KnownQuestions)
    #: The keys intake recently found active (see :class:`RecentKeys`).
    recent_keys: RecentKeys = field(default_factory=RecentKeys)

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """Connections are opened lazily: building the services needs no server up."""
        if not settings.database_url or not settings.redis_url:
            raise ValueError("the API needs DATABASE_URL and REDIS_URL (gradeflow api sets them)")
        return cls(
            settings=settings,
            engine=make_engine(settings.database_url, application_name="gradeflow-api"),
            broker=build_broker(settings),
            redis=redis.Redis.from_url(
                settings.redis_url,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            ),
        )

    def close(self) -> None:
        self.broker.close()
        self.redis.close()
        self.engine.dispose()


async def get_services(request: Request) -> Services:
    # async: nothing to wait for, so FastAPI runs it inline rather than in a thread.
    services: Services = request.app.state.services
    return services
