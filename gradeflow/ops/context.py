"""What every command shares: one-line failures and the resolved stack."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from gradeflow.db.preflight import DatabaseUnavailable
from gradeflow.ops.stack import Stack, running_stack
from gradeflow.settings import get_settings
from gradeflow.workers.redis_server import BrokerUnavailable

err = Console(stderr=True)

#: Failures a person can fix from the message alone: one line, no traceback.
EXPECTED_FAILURES = (DatabaseUnavailable, BrokerUnavailable)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as the one line of a failed command; return the exit to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn expected failures into one line on stderr and exit code 2."""
    try:
        yield
    except EXPECTED_FAILURES as exc:
        raise fail(str(exc), code=2) from None


@contextmanager
def stack() -> Iterator[Stack]:
    """Database and Redis for this command, embedded if not configured.

    The settings are read again afterwards, so they carry the URLs in use.
    """
    with clear_errors(), running_stack(get_settings()) as resolved:
        get_settings.cache_clear()
        yield resolved
