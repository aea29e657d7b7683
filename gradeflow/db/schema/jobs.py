"""``async_jobs``: one row per piece of work, the truth of the job engine.

The state names and their meaning live in :mod:`gradeflow.jobs.states`; the
CHECK constraints below spell the same names (a test compares the two), since
``db`` may not import ``jobs``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from gradeflow.db.base import Base, uuid_pk

JOB_STATUS_CHECK = "status IN ('queued', 'running', 'succeeded', 'dead', 'cancelled')"
FINISHED_STATUSES_SQL = "('succeeded', 'dead', 'cancelled')"
#: A job whose message is in flight: sent for its current run, not yet claimed.
OUTSTANDING_SQL = "status = 'queued' AND sent_at IS NOT NULL AND sent_at >= next_run_at"


class AsyncJob(Base):
    __tablename__ = "async_jobs"
    __table_args__ = (
        CheckConstraint(JOB_STATUS_CHECK, name="status"),
        CheckConstraint("attempts >= 0 AND rescues >= 0", name="counters_non_negative"),
        # A job is finished exactly when it has a completion time.
        CheckConstraint(
            f"(status IN {FINISHED_STATUSES_SQL}) = (completed_at IS NOT NULL)",
            name="completed_at_iff_finished",
        ),
        # A running job always has an owner and a lease.
        CheckConstraint(
            "status <> 'running' OR (locked_by IS NOT NULL AND locked_until IS NOT NULL)",
            name="running_has_lease",
        ),
        Index("idx_async_jobs_status_next_run", "status", "next_run_at"),
        Index(
            "uq_async_jobs_job_type_dedup_key",
            "job_type",
            "dedup_key",
            unique=True,
            postgresql_where=text("dedup_key IS NOT NULL"),
        ),
        # The dispatcher's and relay's scan: queued jobs by queue, client and due time.
        Index(
            "idx_async_jobs_queued_dispatch",
            "queue_name",
            "client_id",
            "next_run_at",
            postgresql_where=text("status = 'queued'"),
        ),
        # Messages in flight (sent, not yet claimed): every enqueue counts a client's per
        # queue, up to the dispatch window; the relay scans them by age. Without it the
        # count reads every queued job of the client, a backlog of thousands included.
        Index(
            "idx_async_jobs_outstanding",
            "queue_name",
            "client_id",
            "sent_at",
            postgresql_where=text(OUTSTANDING_SQL),
        ),
        # The rescuer's scan: running jobs by lease expiry.
        Index(
            "idx_async_jobs_running_lease",
            "locked_until",
            postgresql_where=text("status = 'running'"),
        ),
        Index("idx_async_jobs_assessment", "assessment_id"),
        Index(
            "idx_async_jobs_finished",
            "completed_at",
            postgresql_where=text(f"status IN {FINISHED_STATUSES_SQL}"),
        ),
    )

    # -- seed 002 columns ----------------------------------------------------
    id: Mapped[uuid.UUID] = uuid_pk()
    assessment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("assessments.id"))
    job_type: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    payload: Mapped[dict[str, Any] | None]
    error_payload: Mapped[dict[str, Any] | None]
    queued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("now()")
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # -- additions for the job engine ------------------------------------------
    #: The Dramatiq queue its messages go to (cpu, llm, webhooks, ...).
    queue_name: Mapped[str] = mapped_column(String(32), nullable=False, server_default="cpu")
    #: The API client whose work this is: the unit of fair dispatch.
    client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_clients.id"))
    #: Enqueueing the same (job_type, dedup_key) twice gives one job.
    dedup_key: Mapped[str | None] = mapped_column(String(255))
    #: Overrides the job type's max attempts when set.
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    #: The attempt (host:pid:token) holding the lease, and until when.
    locked_by: Mapped[str | None] = mapped_column(String(128))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the current (or last) attempt was claimed.
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When a message was last sent for this job; NULL or older than
    #: next_run_at means the dispatcher still has to send one.
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: How many times the rescuer took the job back from a worker that vanished.
    rescues: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
