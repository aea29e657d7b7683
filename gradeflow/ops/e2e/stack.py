"""The whole stack as real processes: the fake LLM, the API under uvicorn, a Dramatiq
worker group for each queue, and the scheduler.

Every process runs from the package (``python -m gradeflow …``) in its own
process group, its stdout and stderr captured in ``work_dir/<name>.log`` (the
logs a run scans for secrets), against the PostgreSQL and Redis it is given.
The stack supervises its worker groups as a process manager would: one that
exits (killed on purpose, or refusing to start while Redis is away) is started
again, and the exit recorded. A sampler records the peak memory of every
process while the stack runs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from gradeflow.jobs.registry import QUEUES
from gradeflow.ops.bench_support import (
    Processes,
    child_env,
    free_port,
    gradeflow_argv,
    wait_until,
)
from gradeflow.ops.fakes.openai_server import RemoteFakeOpenAI

FAKE_LLM_MODULE = "gradeflow.ops.fakes.openai_server"
LLM_MODEL = "e2e-grader"
START_TIMEOUT_SECONDS = 120.0
MEMORY_SAMPLE_SECONDS = 0.5
SUPERVISE_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 20.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class StackShape:
    """How many worker processes and threads each queue gets, and the API's processes."""

    processes: int = 1
    threads: Mapping[str, int] = field(default_factory=lambda: {"cpu": 8, "llm": 16, "webhooks": 8})
    api_workers: int = 1


def stack_env(
    database_url: str, redis_url: str, work_dir: Path, llm_url: str, overrides: Mapping[str, str]
) -> dict[str, str]:
    """The environment of every process of the stack (``overrides`` last)."""
    return {
        **child_env(database_url, redis_url),
        "GRADEFLOW_HOME": str(work_dir / "home"),
        "GRADEFLOW_EMBEDDINGS": "hash",
        # The receivers listen on loopback, over plain HTTP.
        "GRADEFLOW_WEBHOOK_ALLOW_PRIVATE": "1",
        "GRADEFLOW_WEBHOOK_ALLOW_HTTP": "1",
        "OPENAI_BASE_URL": llm_url,
        # A key like a real one, so the log scan has something to look for.
        "OPENAI_API_KEY": f"sk-e2e-{secrets.token_hex(16)}",
        "GRADEFLOW_LLM_MODEL": LLM_MODEL,
        **overrides,
    }


class PeakMemory:
    """Samples the resident memory of each named process tree until stopped."""

    def __init__(self, procs: Processes) -> None:
        self.procs = procs
        #: Per name: the largest single process seen, and the largest sum over its tree.
        self.largest: dict[str, int] = {}
        self.total: dict[str, int] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def sample(self) -> None:
        for name, process in list(self.procs.started):
            if process.poll() is not None:
                continue
            sizes = tree_rss(process.pid)
            if sizes:
                self.largest[name] = max(self.largest.get(name, 0), max(sizes))
                self.total[name] = max(self.total.get(name, 0), sum(sizes))

    def peaks_mib(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "largest_process_mib": round(self.largest[name] / MIB, 1),
                "tree_mib": round(self.total[name] / MIB, 1),
            }
            for name in sorted(self.largest)
        }

    def _run(self) -> None:
        while not self._stopping.wait(MEMORY_SAMPLE_SECONDS):
            self.sample()


def tree_rss(pid: int) -> list[int]:
    """Resident bytes of ``pid`` and each of its descendants (those still there)."""
    sizes = []
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in (root, *root.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                sizes.append(process.memory_info().rss)
    return sizes


@dataclass(frozen=True)
class Exit:
    """A worker group that exited on its own, and was started again."""

    queue: str
    code: int
    at: float


class E2EStack:
    """The running stack; :meth:`close` stops every process it started."""

    def __init__(
        self,
        database_url: str,
        redis_url: str,
        work_dir: Path,
        shape: StackShape | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.shape = shape or StackShape()
        llm_port, api_port = free_port(), free_port()
        self.llm = RemoteFakeOpenAI(f"http://127.0.0.1:{llm_port}/v1")
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.env = stack_env(database_url, redis_url, work_dir, self.llm.base_url, env or {})
        self.procs = Processes(self.env, work_dir)
        #: The fake LLM, the API and the scheduler; and the current worker group per queue.
        self.core: dict[str, subprocess.Popen[bytes]] = {}
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        #: Worker groups that exited on their own (a deliberate kill is not one).
        self.exits: list[Exit] = []
        self.memory = PeakMemory(self.procs)
        self._llm_port, self._api_port = llm_port, api_port
        self._workers_lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)

    # -- starting -----------------------------------------------------------------

    def start(self, llm_latency: float = 0.0) -> E2EStack:
        """Start every process and wait until the fake LLM and the API answer."""
        self.start_core(
            "fake-llm",
            [sys.executable, "-m", FAKE_LLM_MODULE, "--port", str(self._llm_port),
             "--latency", str(llm_latency)],
        )  # fmt: skip
        wait_until(self.llm.answers, START_TIMEOUT_SECONDS, "the fake LLM", self.check_alive)
        self.start_core(
            "api",
            gradeflow_argv("api", "--port", str(self._api_port),
                           "--workers", str(self.shape.api_workers)),
        )  # fmt: skip
        for queue in QUEUES:
            self.start_worker(queue)
        self.start_core("scheduler", gradeflow_argv("scheduler"))
        wait_until(self.api_ready, START_TIMEOUT_SECONDS, "the API to answer", self.check_alive)
        self.memory.start()
        self._supervisor.start()
        return self

    def start_core(self, name: str, argv: list[str]) -> None:
        self.core[name] = self.procs.start(name, argv)

    def start_worker(self, queue: str) -> subprocess.Popen[bytes]:
        threads = self.shape.threads.get(queue, 8)
        argv = gradeflow_argv(
            "worker", "--queues", queue, "--processes", str(self.shape.processes),
            "--threads", str(threads),
        )  # fmt: skip
        self.workers[queue] = self.procs.start(f"worker-{queue}", argv)
        return self.workers[queue]

    def api_ready(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    # -- breaking -------------------------------------------------------------------

    def kill_worker(self, queue: str) -> list[int]:
        """SIGKILL the ``queue`` worker group (its parent and every Dramatiq process at
        once, as a crashed machine would) and start it again at once; return the PIDs
        that were in it."""
        with self._workers_lock:
            process = self.workers[queue]
            pids = [process.pid, *(child.pid for child in children(process.pid))]
            self.procs.kill(process)
            self.start_worker(queue)
        return pids

    def restart_exited_workers(self) -> None:
        with self._workers_lock:
            for queue, process in list(self.workers.items()):
                code = process.poll()
                if code is not None and not self._stopping.is_set():
                    self.exits.append(Exit(queue, code, time.time()))
                    self.start_worker(queue)

    def check_alive(self) -> None:
        """Raise :class:`~gradeflow.ops.bench_support.BenchError` if the fake LLM, the API
        or the scheduler died (worker groups are started again when they exit)."""
        self.procs.check_alive(*self.core.values())

    def _supervise(self) -> None:
        while not self._stopping.wait(SUPERVISE_SECONDS):
            self.restart_exited_workers()

    # -- stopping ---------------------------------------------------------------------

    def close(self) -> None:
        """SIGTERM every process at once (a clean shutdown, side by side), then SIGKILL
        what lingers after :data:`STOP_TIMEOUT_SECONDS`."""
        self._stopping.set()
        if self._supervisor.is_alive():
            self._supervisor.join(5)
        self.memory.stop()
        alive = [process for _, process in self.procs.started if process.poll() is None]
        for process in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
        self.procs.close()

    def __enter__(self) -> E2EStack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def logs(self) -> list[Path]:
        return sorted(self.work_dir.glob("*.log"))


def children(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []
