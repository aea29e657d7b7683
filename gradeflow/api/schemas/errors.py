"""The one error shape of the API, and the ``responses=`` entries that document it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    """One problem with a request (or, for readiness, with one dependency)."""

    reason: str = Field(description="What is wrong, in words.")
    location: str | None = Field(
        default=None, description="Where the bad input is: body, query, path or header."
    )
    field: str | None = Field(
        default=None,
        description='The input inside the location, e.g. "rubric.correct" or "[5].title".',
    )
    type: str | None = Field(default=None, description="Machine-readable kind of problem.")
    component: str | None = Field(
        default=None, description="For 503: the dependency that is down (database, redis)."
    )


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. validation_error.")
    message: str = Field(description="One human-readable sentence.")
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer of the API has this body."""

    error: ErrorBody


_DESCRIPTIONS = {
    400: "The body is not valid JSON (`malformed_json`).",
    401: "Missing, malformed, unknown or revoked API key (`unauthorized`).",
    403: "The key's role may not call this endpoint (`forbidden`).",
    404: "No such resource or endpoint (`not_found`).",
    409: "The request conflicts with the current state (`conflict`).",
    413: "The body is larger than GRADEFLOW_MAX_BODY_BYTES (`payload_too_large`).",
    422: "Invalid input; each detail names a field and the reason (`validation_error`).",
    503: "A dependency is down (`not_ready`); details name it.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can answer with ``statuses``."""
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in statuses
    }


#: What every authenticated endpoint can answer besides its own errors.
AUTHENTICATED = (401, 403, 422)
#: What every endpoint with a JSON body can answer besides its own errors.
WITH_BODY = (400, 413, 422)
