"""The processes of a gradeflow stack: the same list the Procfile gives honcho."""

from __future__ import annotations

import sys

from gradeflow.jobs.registry import QUEUES
from gradeflow.ops.supervisor import Process


def gradeflow_command(*args: str) -> list[str]:
    """argv that runs ``gradeflow ARGS`` with this interpreter."""
    return [sys.executable, "-m", "gradeflow", *args]


def stack_processes(processes: int, threads: int, *, web: bool = True) -> list[Process]:
    """Every long-running process of the stack, as ``gradeflow up`` starts them.

    ``web=False`` leaves out the HTTP API (callers that need no port).
    """
    sizing = ("--processes", str(processes), "--threads", str(threads))
    workers = [
        Process(f"worker-{queue}", gradeflow_command("worker", "--queues", queue, *sizing))
        for queue in QUEUES
    ]
    api = [Process("web", gradeflow_command("api"))] if web else []
    return [*api, *workers, Process("scheduler", gradeflow_command("scheduler"))]
