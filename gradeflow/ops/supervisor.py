"""Runs gradeflow's processes side by side with one prefixed log stream (``gradeflow up``)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO


@dataclass
class Process:
    """One named command, as a Procfile line would give it."""

    name: str
    argv: Sequence[str]
    popen: subprocess.Popen[str] | None = field(default=None, repr=False)


class Supervisor:
    """Starts processes, prefixes their output, and stops them all together.

    A process that exits on its own stops the others: a half-running stack
    hides failures, so the whole stack exits with that process's code.
    """

    def __init__(
        self, processes: Sequence[Process], env: Mapping[str, str], output: IO[str] | None = None
    ) -> None:
        self.processes = list(processes)
        self.env = dict(env)
        self.output = output or sys.stdout
        self._stopping = threading.Event()
        self._width = max((len(p.name) for p in self.processes), default=0)

    def run(self, *, grace_seconds: float = 30.0) -> int:
        """Run until Ctrl-C/SIGTERM or until a process exits; return the exit code."""
        self.start()
        return self.serve(grace_seconds=grace_seconds)

    def serve(self, *, grace_seconds: float = 30.0) -> int:
        """Wait, with the processes started, until Ctrl-C/SIGTERM or until one exits;
        then stop them all and return the exit code."""
        previous = signal.signal(signal.SIGTERM, lambda *_: self._stopping.set())
        try:
            exit_code = self._wait()
        except KeyboardInterrupt:
            exit_code = 0
        finally:
            self.stop(grace_seconds)
            signal.signal(signal.SIGTERM, previous)
        return exit_code

    def start(self) -> None:
        """Start every process and return (the caller stops them with :meth:`stop`)."""
        for process in self.processes:
            self._start(process)

    def failed(self) -> Process | None:
        """The first process that has exited, if any."""
        return next((p for p in self.processes if p.popen and p.popen.poll() is not None), None)

    def stop(self, grace_seconds: float = 30.0) -> None:
        """SIGTERM every running process; SIGKILL what is left after ``grace_seconds``."""
        self._stop_all(grace_seconds)

    def _start(self, process: Process) -> None:
        process.popen = subprocess.Popen(
            process.argv,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._log("up", f"started {process.name} (pid {process.popen.pid})")
        assert process.popen.stdout is not None
        threading.Thread(
            target=self._pump, args=(process.name, process.popen.stdout), daemon=True
        ).start()

    def _pump(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            self._log(name, line.rstrip("\n"))

    def _log(self, name: str, line: str) -> None:
        self.output.write(f"{name.ljust(self._width)} | {line}\n")
        self.output.flush()

    def _wait(self) -> int:
        while not self._stopping.is_set():
            for process in self.processes:
                assert process.popen is not None
                code = process.popen.poll()
                if code is not None:
                    self._log("up", f"{process.name} exited with code {code}; stopping the stack")
                    return code or 1
            time.sleep(0.2)
        return 0

    def _stop_all(self, grace_seconds: float) -> None:
        running = [p.popen for p in self.processes if p.popen and p.popen.poll() is None]
        for popen in running:
            popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for popen in running:
            try:
                popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
