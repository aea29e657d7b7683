"""The whole environment contract of gradeflow, in one place.

Every knob a deployment can turn is a field here, read from the environment
(and from a ``.env`` file in the working directory when present). Defaults
work offline on one machine: no ``DATABASE_URL`` starts an embedded
PostgreSQL, no ``REDIS_URL`` uses the local Redis or an embedded Valkey, no
``OPENAI_*`` grades essays with the offline fallback scorer.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """gradeflow's configuration; see the README's "Configuration" table."""

    model_config = SettingsConfigDict(
        env_prefix="GRADEFLOW_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # -- where the truth and the messages live ------------------------------
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    broker_url: str | None = Field(default=None, validation_alias="BROKER_URL")
    #: Where embedded servers keep their data (PostgreSQL's PGDATA, Valkey's dir).
    home: Path = Path("~/.gradeflow")

    # -- LLM and embeddings -------------------------------------------------
    openai_api_key: str | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    llm_model: str = "gpt-4o-mini"
    embeddings: Literal["openai", "local", "hash"] = "hash"

    # -- web process ----------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    #: Largest request body the API reads (bytes); larger requests get 413.
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    webhook_allow_private: bool = False

    # -- job engine -----------------------------------------------------------
    #: How long a claimed job is owned by its worker before the rescuer may take it back.
    lease_seconds: float = 15.0
    #: How often a worker extends the leases of the jobs it is running.
    heartbeat_seconds: float = 4.0
    #: Seconds a job waits past its due time, with its message sent, before the
    #: relay sends its message again (a message lost by Redis or a crash).
    relay_after_seconds: float = 30.0
    #: Messages in flight (sent, not yet claimed) per (queue, client): the rest of a
    #: burst waits in Postgres and is dispatched fairly across clients.
    dispatch_window: int = 500
    #: Pause of each maintenance loop between rounds that found nothing to do.
    maintenance_interval_seconds: float = 0.25
    #: Finished jobs older than this are deleted by the pruner.
    job_retention_hours: float = 24.0 * 7
    #: Idempotency keys older than this are deleted by the pruner (at least 24 h).
    idempotency_retention_hours: float = Field(default=48.0, ge=24.0)
    #: A running job whose worker died this many times is dead (a poison pill).
    max_rescues: int = 3
    #: On SIGTERM, running jobs get this long to finish before their leases are released.
    shutdown_grace_seconds: float = 30.0
    #: Backoff of retried jobs: base * 2**(attempt-1), capped, with +-jitter.
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 3600.0
    retry_jitter: float = 0.2
    default_max_attempts: int = 5
    worker_processes: int = 1
    worker_threads: int = 8

    # -- limits of the llm queue ------------------------------------------------
    llm_concurrency: int = 100
    llm_requests_per_minute: int | None = None

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def effective_broker_url(self) -> str | None:
        """The broker's URL: ``BROKER_URL`` when set, else ``REDIS_URL``."""
        return self.broker_url or self.redis_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
