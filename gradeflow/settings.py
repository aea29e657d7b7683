"""The whole environment contract of gradeflow, in one place.

Every knob a deployment can turn is a field here, read from the environment
(and from a ``.env`` file in the working directory when present). Defaults
work offline on one machine: no ``DATABASE_URL`` starts an embedded
PostgreSQL, no ``REDIS_URL`` uses the local Redis or an embedded Valkey, no
``OPENAI_*`` grades essays with the offline fallback scorer.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelPrice(BaseModel):
    """What a model's tokens cost, and the day the figure was read off the price list."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    as_of: date


#: OpenAI's list prices (USD per million tokens, standard tier) on the ``as_of`` day.
LLM_PRICES = {
    "gpt-4o-mini": ModelPrice(input_per_mtok=0.15, output_per_mtok=0.60, as_of=date(2025, 6, 1)),
    "gpt-4o": ModelPrice(input_per_mtok=2.50, output_per_mtok=10.00, as_of=date(2025, 6, 1)),
    "gpt-4.1-nano": ModelPrice(input_per_mtok=0.10, output_per_mtok=0.40, as_of=date(2025, 6, 1)),
    "gpt-4.1-mini": ModelPrice(input_per_mtok=0.40, output_per_mtok=1.60, as_of=date(2025, 6, 1)),
    "gpt-4.1": ModelPrice(input_per_mtok=2.00, output_per_mtok=8.00, as_of=date(2025, 6, 1)),
}


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
    #: Seconds one LLM request may take before it is abandoned (and the job retried).
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    #: USD per million tokens, per model (matched by the longest prefix of the model
    #: the server reports); a model missing here gets no cost recorded.
    llm_prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(LLM_PRICES))
    embeddings: Literal["openai", "local", "hash"] = "hash"

    # -- web process ----------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    #: Processes of ``gradeflow api`` sharing the port (each one uses about one core).
    api_workers: int = Field(default=1, ge=1)
    #: Largest request body the API reads (bytes); larger requests get 413.
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    webhook_allow_private: bool = False

    # -- ops dashboard (/ops) ----------------------------------------------------
    #: Signs the dashboard's session cookies. Unset: a random secret kept in
    #: ``GRADEFLOW_HOME/dashboard-secret``, shared by the web processes of one machine;
    #: set it when several machines serve the dashboard.
    dashboard_secret: SecretStr | None = None
    #: A dashboard login lasts this long (a revoked key ends it at once).
    dashboard_session_hours: float = Field(default=12.0, gt=0)
    #: How often the dashboard's live parts poll the server.
    dashboard_refresh_seconds: float = Field(default=3.0, ge=0.5)

    # -- webhooks -----------------------------------------------------------------
    #: Accept ``http://`` webhook URLs (else only ``https://``); for local receivers.
    webhook_allow_http: bool = False
    #: Addresses (CIDRs) webhook URLs may resolve to even when private targets are refused.
    webhook_allow_list: list[str] = Field(default_factory=list)
    #: Seconds one delivery attempt may take (connect, send, and read the answer).
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    #: Delay before each attempt of an event (the first is usually 0); its length is
    #: the number of attempts. A failing endpoint's retries wait in Postgres.
    webhook_retry_schedule: list[float] = Field(
        default_factory=lambda: [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        min_length=1,
    )
    #: Jitter of each retry delay: +- this fraction.
    webhook_retry_jitter: float = Field(default=0.2, ge=0, le=1)
    #: Largest ``Retry-After`` (seconds) a receiver may ask for.
    webhook_max_retry_after_seconds: float = Field(default=36000.0, ge=0)
    #: After a secret rotation the old secret still signs for this long.
    webhook_secret_overlap_hours: float = Field(default=24.0, ge=0)
    #: An endpoint failing without a single success for this long is disabled.
    webhook_disable_after_hours: float = Field(default=24.0 * 5, gt=0)
    #: Deliveries in flight to one endpoint at once; more wait in Postgres.
    webhook_endpoint_in_flight: int = Field(default=4, ge=1)

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
    #: Per worker process: how many threads of provider-calling job types
    #: (``limits_at_call``) compute at once, one more while finishing an attempt; the
    #: others wait for a provider's answer or for their turn (see gradeflow/workers/turns.py).
    worker_compute_turns: int = Field(default=2, ge=1)

    # -- limits of the llm queue ------------------------------------------------
    llm_concurrency: int = 100
    llm_requests_per_minute: int | None = None

    # -- metrics ------------------------------------------------------------------
    #: Where worker processes write their Prometheus metrics for ``/metrics`` to add up
    #: (prometheus-client's multiprocess mode). Unset: ``GRADEFLOW_HOME/metrics``.
    metrics_dir: Path | None = Field(default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR")
    #: A job count reads at most this many rows per state (scrapes and snapshots stay fast
    #: under any backlog; a count that reaches it is a lower bound).
    metrics_count_cap: int = Field(default=100_000, ge=1)
    #: How often the scheduler enqueues ``snapshot_metrics`` (0: never). Each snapshot
    #: covers the minute before it.
    metrics_snapshot_seconds: int = Field(default=60, ge=0)
    #: The minute-by-minute ``metric_snapshots`` rows are kept this long.
    metrics_retention_days: float = Field(default=14.0, gt=0)

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
