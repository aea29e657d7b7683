"""Real gradeflow processes for tests: Dramatiq workers and the scheduler, as subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

#: Test job types (tests/support/jobs.py) are loaded by every worker started here.
TEST_JOB_MODULES = "tests.support.jobs"
REPO_ROOT = Path(__file__).resolve().parents[2]


def gradeflow_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "gradeflow", *args]


def spawn(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, output to ``log_path``."""
    log = log_path.open("ab")
    return subprocess.Popen(
        list(argv),
        env={**env, "GRADEFLOW_JOB_MODULES": TEST_JOB_MODULES, "PYTHONPATH": str(REPO_ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal the process group and wait; kill it if it does not stop in ``timeout``."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def worker_children(process: subprocess.Popen[bytes]) -> list[int]:
    """PIDs of the Dramatiq worker processes under a ``gradeflow worker`` process."""
    import psutil

    return [child.pid for child in psutil.Process(process.pid).children(recursive=True)]


@contextmanager
def running(
    argv: Sequence[str], env: Mapping[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    process = spawn(argv, env, log_path)
    try:
        yield process
    finally:
        stop(process)


def worker_argv(
    queues: Sequence[str] = ("cpu",), processes: int = 1, threads: int = 4
) -> list[str]:
    each_queue = [arg for queue in queues for arg in ("--queues", queue)]
    return gradeflow_argv(
        "worker", *each_queue, "--processes", str(processes), "--threads", str(threads)
    )


def scheduler_argv() -> list[str]:
    return gradeflow_argv("scheduler")


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
