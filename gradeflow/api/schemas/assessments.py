"""``/v1/assessments``: a submission, and the assessment as it is read back."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, EmailStr, Field, StringConstraints, field_validator

from gradeflow.jobs.rubrics import StrictModel

#: The most answers one submission may carry.
MAX_RESPONSES = 200
#: The largest ``metadata`` object, serialised, in bytes.
MAX_METADATA_BYTES = 16 * 1024

ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


class UserIn(StrictModel):
    external_id: ExternalId = Field(description="The upstream app's own id for this user.")
    email: EmailStr = Field(description="Stored lower-cased; unique within your client.")

    @field_validator("email")
    @classmethod
    def _normalized(cls, email: str) -> str:
        return email.strip().lower()


class ResponseIn(StrictModel):
    question_id: uuid.UUID
    answer: Any = Field(
        description="multiple_choice: a choice id, or a list of them when multi_select; "
        "essay: text; profile: a mapping key (a list of keys when multi_select) or a "
        "number within the rubric's scale."
    )


class AssessmentIn(StrictModel):
    user: UserIn
    role_id: uuid.UUID
    responses: list[ResponseIn] = Field(min_length=1, max_length=MAX_RESPONSES)
    metadata: dict[str, Any] | None = Field(
        default=None, description=f"Yours, kept as given (at most {MAX_METADATA_BYTES} bytes)."
    )

    @field_validator("metadata")
    @classmethod
    def _small(cls, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
        if metadata is not None and len(json.dumps(metadata)) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must serialise to at most {MAX_METADATA_BYTES} bytes")
        return metadata


class Links(BaseModel):
    self: str
    recommendations: str


class UserOut(BaseModel):
    id: uuid.UUID
    external_id: str | None
    email: str


class Timings(BaseModel):
    submitted_at: datetime
    completed_at: datetime | None
    duration_ms: int | None = Field(description="From submission to completion.")


class QuestionScore(BaseModel):
    question_id: uuid.UUID
    snapshot_id: uuid.UUID
    question_type: str
    version: str
    max_score: float = Field(description="The question's weight.")
    score: float | None = Field(description="Points earned; null until scored.")
    graded_by: Literal["rules", "llm", "fallback"] | None = Field(
        description="fallback: the offline essay scorer, used when no LLM could grade it."
    )
    model: str | None
    explanation: str | None
    injection_suspected: bool = Field(
        default=False, description="Essays: the text looked like an attempt to steer the grader."
    )


class AssessmentOut(BaseModel):
    id: uuid.UUID
    status: Literal["awaiting_async", "completed", "failed"]
    degraded: bool = Field(description="Some essay was graded by the offline fallback scorer.")
    role_id: uuid.UUID
    user: UserOut
    metadata: dict[str, Any] | None
    total_score: float | None = Field(
        description="Percent of the graded questions' weight earned (0-100)."
    )
    skill_scores: dict[str, float] | None = Field(description="Per skill, 0-100.")
    questions: list[QuestionScore]
    timings: Timings
    links: Links
