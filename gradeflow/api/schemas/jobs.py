"""Requests and answers of the jobs endpoints: the operator's dead-letter desk."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from gradeflow.db.jobs import JobRow
from gradeflow.jobs.rubrics import StrictModel

JobStatus = Literal["queued", "running", "succeeded", "dead", "cancelled"]
#: ``async_jobs.job_type`` is a varchar(32).
JobType = Annotated[str, StringConstraints(min_length=1, max_length=32)]


class JobOut(BaseModel):
    id: uuid.UUID
    job_type: str
    queue: str = Field(description="The Dramatiq queue its messages go to.")
    status: JobStatus
    attempts: int = Field(description="Attempts spent since it was last (re)queued.")
    max_attempts: int | None = Field(description="Overrides the job type's; null: the type's.")
    client_id: uuid.UUID | None
    assessment_id: uuid.UUID | None
    queued_at: datetime
    started_at: datetime | None = Field(description="When the latest attempt was claimed.")
    next_run_at: datetime | None
    completed_at: datetime | None
    last_error: str | None = Field(description="The message of its latest failure.")

    @classmethod
    def from_row(cls, row: JobRow) -> JobOut:
        return cls(
            id=row.id,
            job_type=row.job_type,
            queue=row.queue_name,
            status=row.status,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            client_id=row.client_id,
            assessment_id=row.assessment_id,
            queued_at=row.queued_at,
            started_at=row.started_at,
            next_run_at=row.next_run_at,
            completed_at=row.completed_at,
            last_error=row.last_error,
        )


class JobQuery(StrictModel):
    status: JobStatus | None = None
    job_type: JobType | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None


class JobPage(BaseModel):
    items: list[JobOut] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )


class RetryDeadQuery(StrictModel):
    job_type: JobType | None = Field(default=None, description="Only dead jobs of this type.")


class RetryDeadOut(BaseModel):
    retried: int = Field(description="How many dead jobs were queued again.")
