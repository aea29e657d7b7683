"""``POST /v1/assessments``: a submission (what it reads back is :mod:`gradeflow.jobs.views`)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema, field_validator

from gradeflow.jobs.rubrics import StrictModel

#: The most answers one submission may carry.
MAX_RESPONSES = 200
#: The largest ``metadata`` object, serialised, in bytes.
MAX_METADATA_BYTES = 16 * 1024

ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


#: A valid e-mail address as the WHATWG HTML standard defines it (what browsers'
#: ``<input type=email>`` accepts), with a dot in the domain: one regex, where
#: email-validator's full parse cost more than the rest of a submission's checks.
_EMAIL = re.compile(
    r"[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+"
)
MAX_EMAIL_LENGTH = 254


def normalized_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValueError(f"value is not a valid email address: longer than {MAX_EMAIL_LENGTH}")
    if not _EMAIL.fullmatch(email):
        raise ValueError("value is not a valid email address (like name@example.com)")
    return email


Email = Annotated[
    str,
    AfterValidator(normalized_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": MAX_EMAIL_LENGTH}),
]


class UserIn(StrictModel):
    external_id: ExternalId = Field(description="The upstream app's own id for this user.")
    email: Email = Field(description="Stored lower-cased; unique within your client.")


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
