"""A real webhook receiver on loopback that verifies with the ``standardwebhooks`` library.

Each receiver holds some secrets and checks every request against each one
separately (so a test can see that the old and the new secret both verify
during a rotation), and answers from a script: a list of status codes used in
turn (the last one repeats), an optional sleep, optional extra headers.
It records when each request arrived, and can go down (:meth:`Receiver.stop`)
and come back on the same port (:meth:`Receiver.start` with ``port``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    webhook_id: str
    body: str
    #: For each secret the receiver holds: did the request verify with it alone?
    verified: list[bool]
    #: When it arrived (``time.time()``).
    at: float = 0.0


@dataclass
class Script:
    statuses: list[int] = field(default_factory=lambda: [200])
    sleep_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    #: Hundreds of deliveries may arrive at once; the default backlog (5) drops SYNs.
    request_queue_size = 1024


class Receiver:
    def __init__(self, secrets: Sequence[str], script: Script | None = None) -> None:
        self.secrets = list(secrets)
        self.script = script or Script()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._port = 0

    # -- what tests read -----------------------------------------------------------

    def ids(self) -> list[str]:
        with self._lock:
            return [r.webhook_id for r in self.received]

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    @property
    def port(self) -> int:
        """The port it listens on (or last listened on, while it is down)."""
        return self._port

    # -- serving -------------------------------------------------------------------

    def next_status(self) -> int:
        with self._lock:
            n = len(self.received)
            statuses = self.script.statuses
            return statuses[min(n - 1, len(statuses) - 1)]

    def record(self, headers: dict[str, str], body: str) -> None:
        at = time.time()
        verified = [verifies(secret, headers, body) for secret in self.secrets]
        with self._lock:
            self.received.append(Received(headers.get("webhook-id", ""), body, verified, at))

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length).decode()
                receiver.record({k.lower(): v for k, v in self.headers.items()}, body)
                status = receiver.next_status()
                if receiver.script.sleep_seconds:
                    threading.Event().wait(receiver.script.sleep_seconds)
                try:
                    self.send_response(status)
                    for name, value in receiver.script.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up (timeout): nothing to answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = Server((host, port), Handler)
        self._server = server
        self._port = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self._port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def verifies(secret: str, headers: dict[str, str], body: str) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


@contextmanager
def receiving(
    secrets: Sequence[str], script: Script | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[tuple[Receiver, int]]:
    receiver = Receiver(secrets, script)
    bound = receiver.start(host, port)
    try:
        yield receiver, bound
    finally:
        receiver.stop()
