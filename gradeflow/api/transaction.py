"""One transaction per request: committed when the endpoint returns, before the answer
is sent, rolled back on any error; job messages go out only after the commit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated

import dramatiq
import psycopg
from fastapi import Depends
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gradeflow.api.services import Services, get_services
from gradeflow.db.jobs import DriverCursor, Message
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.registry import NewJob
from gradeflow.workers.messages import send_messages


@dataclass
class Transaction:
    session: Session
    #: Messages in flight allowed per (queue, client) (GRADEFLOW_DISPATCH_WINDOW).
    window: int
    messages: list[Message] = field(default_factory=list)

    def enqueue(self, jobs: Sequence[NewJob]) -> None:
        """Insert ``jobs`` in this transaction; their messages are sent after it commits."""
        inserted = insert_new_jobs(self.session.connection(), jobs, self.window)
        self.messages.extend(inserted.messages)

    def commit_and_send(self, broker: dramatiq.Broker) -> None:
        """Commit, then send the messages of the jobs it inserted."""
        with self.session:
            self.session.commit()
        send_messages(broker, self.messages)

    def roll_back(self) -> None:
        with self.session:
            self.session.rollback()


async def request_transaction(
    services: Annotated[Services, Depends(get_services)],
) -> AsyncIterator[Transaction]:
    # An async generator, so that entering costs no thread: the session connects on
    # its first statement (in the endpoint's thread). Only the end, which talks to
    # the database and Redis, runs in the thread pool: one hop per request, not two.
    session = Session(services.engine, expire_on_commit=False, autobegin=True)
    transaction = Transaction(session, services.settings.dispatch_window)
    try:
        yield transaction
    except BaseException:
        await run_in_threadpool(transaction.roll_back)
        raise
    await run_in_threadpool(transaction.commit_and_send, services.broker)


#: ``scope="function"``: the commit happens before the response is sent, so a
#: client never sees a success the database did not keep.
TransactionDep = Annotated[Transaction, Depends(request_transaction, scope="function")]


@contextmanager
def driver_transaction(engine: Engine) -> Iterator[DriverCursor]:
    """A transaction on a bare driver cursor: committed (durably, as every API commit)
    when the block ends, rolled back on any error.

    For an endpoint's hot path (the intake's): the guarantees of
    :data:`TransactionDep` without SQLAlchemy's per-statement machinery, which costs
    more CPU than the statements themselves. Driver errors come out as SQLAlchemy's
    (``IntegrityError``, ``OperationalError``); a connection that broke is dropped,
    never given back to the pool.
    """
    pooled = engine.raw_connection()
    driver = pooled.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.transaction(), driver.cursor() as cursor:
            yield cursor
    except psycopg.Error as exc:
        if driver.broken:
            pooled.invalidate(exc)
        raise DBAPIError.instance(
            None, None, exc, psycopg.Error, connection_invalidated=driver.broken
        ) from exc
    finally:
        pooled.close()
