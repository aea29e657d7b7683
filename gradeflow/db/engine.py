"""Engines and sessions: one way to reach Postgres from every process."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

#: Seconds to wait for a connection before calling the database unreachable.
CONNECT_TIMEOUT_SECONDS = 5


def sqlalchemy_url(url: str) -> str:
    """``url`` with the psycopg 3 driver named, as SQLAlchemy wants it.

    Accepts ``postgres://``, ``postgresql://`` and ``postgresql+psycopg://``.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """``url`` in the plain ``postgresql://`` form that psql and libpq accept."""
    return (
        make_url(sqlalchemy_url(url))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


def make_engine(
    url: str,
    *,
    pool_size: int | None = 10,
    application_name: str = "gradeflow",
    durable_commits: bool = True,
    pre_ping: bool = True,
) -> Engine:
    """An engine on psycopg 3 with a connect timeout.

    ``pool_size`` bounds the pool; ``None`` opens a connection per use (one-shot
    commands such as migrations). ``durable_commits=False`` turns off
    ``synchronous_commit`` for workers: a job-state write lost in a PostgreSQL
    crash only re-runs an idempotent job (its lease expires and it is rescued),
    so workers need not wait for the WAL flush. Intake keeps durable commits: a
    202 promises the submission is on disk. ``pre_ping`` drops, at checkout, a
    pooled connection the server has closed (:func:`drop_if_closed_by_server`);
    callers that retry a statement on a dropped connection can do without.
    """
    options = "" if durable_commits else "-c synchronous_commit=off"
    pooling: dict[str, Any] = (
        {"poolclass": NullPool}
        if pool_size is None
        # Last in, first out: the few connections a process keeps busy are the ones it
        # reuses, so their prepared statements and cached plans serve most statements.
        # First in, first out rotates through the whole pool (a worker opens one per
        # thread), and with a fresh connection every few statements PostgreSQL parsed
        # and planned nearly every statement again: half its CPU in a burst of jobs.
        else {"pool_size": pool_size, "max_overflow": pool_size, "pool_use_lifo": True}
    )
    engine = create_engine(
        sqlalchemy_url(url),
        **pooling,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": application_name,
            "options": options,
        },
    )
    if pre_ping and pool_size is not None:
        event.listen(engine, "checkout", drop_if_closed_by_server)
    return engine


def drop_if_closed_by_server(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Checkout check: make the pool replace a connection the server has closed.

    An idle connection has nothing to read unless the server ended it: a restart
    or an administrator sends its last message and closes the socket, which then
    reads as ready. Looking costs one non-blocking ``poll``, where SQLAlchemy's
    ``pool_pre_ping`` costs a ``SELECT 1`` round trip on every checkout.
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the connection is closed")
    watch = select.poll()
    watch.register(dbapi_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if watch.poll(0):
        raise DisconnectionError("the server closed the connection")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session
