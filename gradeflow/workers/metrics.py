"""Metrics of worker processes: Dramatiq's own, and each job attempt's (the execute hook).

Both are written to the host's multiprocess directory
(:func:`gradeflow.metrics.metrics_directory`); the web process's ``/metrics``
serves them with everything else.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dramatiq
from dramatiq.middleware import CurrentMessage
from dramatiq.middleware.prometheus import Prometheus
from prometheus_client import multiprocess

from gradeflow.metrics import attempt_outcome, record_attempt, record_pickup, use_multiprocess_dir


class WorkerMetrics(Prometheus):
    """Dramatiq's worker metrics (``dramatiq_messages_total``, ``…_inprogress``,
    ``…_message_duration_milliseconds`` …), written to gradeflow's directory.

    Dramatiq's middleware keeps its files in a directory of its own and forks an
    HTTP server on port 9191 per worker group (three groups on one host would
    fight over it); here the web process serves them, so nothing is forked.
    """

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    @property
    def forks(self) -> list[Callable[[], int]]:
        return []

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        use_multiprocess_dir(self.directory)
        # Defines Dramatiq's series and points the environment at its own directory;
        # no value is written before the line after, which points it back.
        super().after_process_boot(broker)
        use_multiprocess_dir(self.directory)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Live gauges (messages in progress) of a stopped process must stop counting.
        multiprocess.mark_process_dead(os.getpid(), str(self.directory))


def install(broker: dramatiq.Broker, directory: Path) -> None:
    """Add :class:`WorkerMetrics` to ``broker`` once (boot runs once per process)."""
    if not any(isinstance(m, WorkerMetrics) for m in broker.middleware):
        broker.add_middleware(WorkerMetrics(directory))


@dataclass
class Attempt:
    """One attempt being observed; :meth:`decided` records how it ended."""

    queue: str
    job_type: str
    started: float

    def decided(self, status: str, *, refunded: bool) -> None:
        """Record the attempt's outcome and run time (from the block's start until now)."""
        outcome = attempt_outcome(status, refunded=refunded)
        record_attempt(self.queue, self.job_type, outcome, time.monotonic() - self.started)


@contextmanager
def observe_attempt(queue: str, job_type: str) -> Iterator[Attempt]:
    """Record the attempt's pickup latency now; the caller reports its outcome with
    :meth:`Attempt.decided` once the job's code has run and its outcome is decided."""
    message = CurrentMessage.get_current_message()
    if message is not None:
        record_pickup(queue, job_type, time.time() - message.message_timestamp / 1000)
    yield Attempt(queue, job_type, time.monotonic())
