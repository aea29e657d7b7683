"""``POST /v1/assessments``: a submission (what it reads back is :mod:`gradeflow.jobs.views`)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from pydantic import EmailStr, Field, StringConstraints, field_validator

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
