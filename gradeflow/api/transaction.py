"""One transaction per request: committed when the endpoint returns, before the answer
is sent, rolled back on any error; job messages go out only after the commit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from gradeflow.api.services import Services, get_services
from gradeflow.db.jobs import Message
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


def request_transaction(
    services: Annotated[Services, Depends(get_services)],
) -> Iterator[Transaction]:
    with Session(services.engine, expire_on_commit=False) as session:
        transaction = Transaction(session, services.settings.dispatch_window)
        with session.begin():
            yield transaction
    send_messages(services.broker, transaction.messages)


#: ``scope="function"``: the commit happens before the response is sent, so a
#: client never sees a success the database did not keep.
TransactionDep = Annotated[Transaction, Depends(request_transaction, scope="function")]
