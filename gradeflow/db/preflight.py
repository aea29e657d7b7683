"""Checks that turn a bad ``DATABASE_URL`` into one sentence a person can act on."""

from __future__ import annotations

import psycopg

from gradeflow.db.engine import CONNECT_TIMEOUT_SECONDS, libpq_url

REQUIRED_EXTENSIONS = ("vector", "citext")


class DatabaseUnavailable(RuntimeError):
    """The database cannot serve gradeflow; the message says why and what to do."""


def check_database(url: str) -> None:
    """Connect once and make sure gradeflow's extensions can be created.

    Raises:
      DatabaseUnavailable: unreachable, refused credentials, no such database,
        or a server without pgvector/citext.
    """
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
            rows = conn.execute(
                "SELECT name FROM pg_available_extensions WHERE name = ANY(%s)",
                (list(REQUIRED_EXTENSIONS),),
            ).fetchall()
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(describe_connection_error(url, exc)) from None
    except ValueError as exc:
        raise DatabaseUnavailable(f"DATABASE_URL is not a PostgreSQL URL ({exc}).") from None
    missing = sorted(set(REQUIRED_EXTENSIONS) - {name for (name,) in rows})
    if missing:
        raise DatabaseUnavailable(
            f"the PostgreSQL server at DATABASE_URL has no {', '.join(missing)} extension "
            "available: install pgvector on it, or unset DATABASE_URL to use the embedded "
            "PostgreSQL with pgvector."
        )


def describe_connection_error(url: str, exc: psycopg.OperationalError) -> str:
    """One line for a failed connection: the likely cause and the fix."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    lowered = text.lower()
    if any(s in lowered for s in ("password authentication failed", "no password supplied")):
        hint = "check the user and password in DATABASE_URL"
    elif "role" in lowered and "does not exist" in lowered:
        hint = "check the user name in DATABASE_URL"
    elif "does not exist" in lowered and "database" in lowered:
        hint = "create that database, or point DATABASE_URL at an existing one"
    else:
        hint = "check that the server is running and DATABASE_URL's host and port are right"
    return f"cannot connect to PostgreSQL at DATABASE_URL: {text} ({hint})."
