"""Errors: one JSON shape for every failure, ``{"error": {"code", "message", "details"}}``.

Routes raise :class:`ApiError` (or :func:`invalid_input` for one bad field);
the handlers installed by :func:`install_error_handlers` turn those, FastAPI's
validation errors, Starlette's 404/405 and anything unexpected into that shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

log = structlog.get_logger(__name__)

#: The default ``code`` of an HTTP status when the raiser gave none.
STATUS_CODES = {
    400: "malformed_json",  # FastAPI's only own 400: a body it could not parse (bad UTF-8)
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    503: "not_ready",
}
_LOCATIONS = ("body", "query", "path", "header", "cookie")


class ApiError(HTTPException):
    """An error answer with an explicit code, message and details."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=dict(headers or {}))
        self.code = code
        self.message = message
        self.details = [dict(d) for d in details]


def error_content(code: str, message: str, details: Iterable[Mapping[str, Any]] = ()) -> Any:
    clean = [{k: v for k, v in d.items() if v is not None} for d in details]
    return {"error": {"code": code, "message": message, "details": clean}}


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Iterable[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_content(code, message, details), status_code, headers=headers)


def invalid_input(location: str, path: Sequence[str | int], reason: str) -> RequestValidationError:
    """A 422 about one input that passed the models but is still wrong (e.g. an unknown id)."""
    return RequestValidationError(
        [{"type": "value_error", "loc": (location, *path), "msg": reason}]
    )


def field_path(parts: Sequence[Any]) -> str:
    """``("rubric", "criteria", 0, "name")`` → ``rubric.criteria[0].name``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text


def validation_detail(error: Mapping[str, Any]) -> dict[str, Any]:
    """A pydantic error as a detail; the input value is never echoed (it may be a secret)."""
    loc = tuple(error.get("loc", ()))
    location = loc[0] if loc and loc[0] in _LOCATIONS else None
    path = field_path(loc[1:] if location else loc)
    reason = str(error.get("msg", "invalid"))
    return {
        "location": location,
        "field": path or location,
        "reason": reason.removeprefix("Value error, "),
        "type": error.get("type"),
    }


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if broken is not None:
        reason = (broken.get("ctx") or {}).get("error", "invalid JSON")
        position = tuple(broken.get("loc", ()))[-1]
        return error_response(
            400,
            "malformed_json",
            f"the request body is not valid JSON: {reason} (at character {position})",
            [{"location": "body", "reason": str(reason), "type": "json_invalid"}],
        )
    details = [validation_detail(e) for e in errors]
    first = details[0]
    message = f"{first['field']}: {first['reason']}"
    if len(details) > 1:
        message = f"{len(details)} invalid inputs; the first is {message}"
    return error_response(422, "validation_error", message, details)


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.code, exc.message, exc.details, headers)
    code = STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"no endpoint at {request.url.path}"
    elif exc.status_code == 405:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = (
            f"{request.method} is not allowed on {request.url.path} (only {', '.join(allowed)})"
        )
    return error_response(exc.status_code, code, message, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method the API serves at this path (Starlette's 405 names only one route's)."""
    path = request.scope["path"]
    routes: list[APIRoute] = getattr(request.app.state, "api_routes", [])
    return sorted({m for r in routes if r.path_regex.match(path) for m in r.methods or ()})


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", path=request.url.path, error=repr(exc))
    return error_response(500, "internal_error", "an unexpected error occurred; it was logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(HTTPException, handle_http_exception)
    app.add_exception_handler(Exception, handle_unexpected)
