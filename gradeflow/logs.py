"""Structured logs: JSON lines when not on a terminal, readable lines when on one.

Every line says what it is about. While a job runs, the worker's execute path
binds ``job_id``, ``job_type``, ``assessment_id`` and ``client_id`` with
``structlog.contextvars``; during an API request, :func:`bind_request_ids` adds
the caller's ``client_id`` once its key is checked. Lines of the standard
library's ``logging`` (Dramatiq, SQLAlchemy, libraries) go through the same
processors, so they too are JSON and carry those ids.

API keys, webhook secrets and essay text are never logged above DEBUG: callers
pass ids, not payloads or answers. As a net under that rule, :func:`redact`
blanks, at every level, whatever looks like a key or a secret (``gf_…``,
``whsec_…``, ``sk-…``, bearer tokens, the configured OpenAI key) and the bound
parameters SQLAlchemy writes into its error messages (an INSERT's parameters
are answers, essays, secrets).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import structlog

from gradeflow.settings import get_settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

#: What replaces a secret in a log line.
REDACTED = "[redacted]"
#: Things that look like credentials, whatever the line they turn up in.
SECRET_PATTERNS = (
    re.compile(r"whsec_[A-Za-z0-9+/=_-]+"),
    re.compile(r"\bgf_[A-Za-z0-9_-]{16,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?<=[Bb]earer )[^\s\"',]+"),
)
#: SQLAlchemy's ``[parameters: {...}]`` (a repr: it never holds a raw newline).
SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
#: Libraries that log every HTTP request at INFO: kept at WARNING unless the process
#: logs at DEBUG (Dramatiq's ``--verbose``). A worker would otherwise write one line
#: per model call, inside the call's concurrency slot.
CHATTY_LIBRARIES = ("httpx", "httpx2", "httpcore", "openai")
#: A configured key shorter than this is not matched literally (it would blank words).
MIN_LITERAL_SECRET = 8

#: The ids of the API request being served (see :func:`bind_request_ids`).
_request_ids: ContextVar[dict[str, str] | None] = ContextVar("gradeflow_request_ids", default=None)


def configure_logging(level: int = logging.INFO) -> None:
    """structlog for gradeflow's own lines, and the standard library's lines through the
    same processors. The root logger keeps the level its process gave it (Dramatiq's
    ``--verbose``), else WARNING: libraries chatter at INFO."""
    shared = processors(literal_secrets())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    route_standard_logging(shared, renderer)


def processors(secrets: Iterable[str]) -> list[structlog.types.Processor]:
    """What every line goes through before it is rendered."""
    return [
        structlog.contextvars.merge_contextvars,
        merge_request_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        Redactor(secrets),
    ]


def literal_secrets() -> list[str]:
    """Configured secrets that no pattern is sure to catch: the OpenAI key."""
    key = get_settings().openai_api_key
    return [key] if key and len(key) >= MIN_LITERAL_SECRET else []


class StructuredHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler :func:`configure_logging` installs (replaced when it runs again)."""


def route_standard_logging(
    shared: list[structlog.types.Processor], renderer: structlog.types.Processor
) -> None:
    """Render the standard library's records like structlog's, to this process's stderr.

    Plain stream handlers (``basicConfig``'s, Dramatiq's) are replaced; others
    (files, pytest's capture) stay.
    """
    handler = StructuredHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    level = root.level if root.handlers else logging.WARNING
    kept = [h for h in root.handlers if type(h) is not logging.StreamHandler]
    root.handlers = [h for h in kept if not isinstance(h, StructuredHandler)] + [handler]
    root.setLevel(level)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(
            logging.DEBUG if level <= logging.DEBUG else logging.WARNING
        )


# -- redaction -------------------------------------------------------------------------


class Redactor:
    """A processor that blanks secrets in every string of a line (nested ones too)."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        self.patterns = [*SECRET_PATTERNS, *(re.compile(re.escape(s)) for s in literals)]

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            event_dict[key] = self.clean(value)
        return event_dict

    def clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, self.patterns)
        if isinstance(value, dict):
            return {k: self.clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.clean(v) for v in value]
        return value


def redact(text: str, patterns: Iterable[re.Pattern[str]] = SECRET_PATTERNS) -> str:
    """``text`` with SQL parameters and every match of ``patterns`` replaced."""
    text = SQL_PARAMETERS.sub(f"[parameters: {REDACTED}]", text)
    for pattern in patterns:
        text = pattern.sub(REDACTED, text)
    return text


# -- the ids of an API request ---------------------------------------------------------------


def bind_request_ids(**ids: str) -> None:
    """Add ``ids`` to every later line of the API request being served.

    A plain contextvar bound in a FastAPI dependency would not outlive it: each
    sync dependency and endpoint runs in a copy of the request's context. The
    request's dict (set by :class:`RequestLogContext`) is shared by every copy.
    """
    holder = _request_ids.get()
    if holder is not None:
        holder.update(ids)


def merge_request_ids(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in (_request_ids.get() or {}).items():
        event_dict.setdefault(key, value)
    return event_dict


class RequestLogContext:
    """ASGI middleware: each HTTP request starts with no ids.

    The value is not reset on the way out: the 500 handler logs after this
    middleware has returned, and each request runs in a task (a context) of its own.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            _request_ids.set({})
        await self.app(scope, receive, send)
