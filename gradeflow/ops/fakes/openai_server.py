"""A fake OpenAI-compatible HTTP server on loopback, for tests and benchmarks.

It speaks the two routes gradeflow calls through the official SDK:

- ``POST /v1/chat/completions``: answers by the request's ``json_schema`` name:
  ``essay_grade`` (or none) is graded (every criterion the schema asks for gets
  ``default_score``), ``credential_ranking`` is ranked (every candidate label the
  schema admits, in order), any other name gets a 400; or plays the next scripted
  :data:`Reply` whose ``match`` text occurs in the request, or a fault drawn from
  the configured mix;
- ``POST /v1/embeddings``: deterministic unit vectors of the requested
  ``dimensions`` (default 384), as floats or base64 like the real API; or the next
  reply scripted with ``route="embeddings"`` (``rate_limit`` or ``status`` only).

Workers are separate processes, so everything is reachable over TCP: the
``/_control/*`` routes script replies (``POST /_control/script``), change the
defaults (``POST /_control/config``), list the requests received with their
arrival time (``GET /_control/requests``), count the answers given by kind
(``GET /_control/stats``) and forget all of it (``POST /_control/reset``).
In the process that started it, :class:`FakeOpenAI` does the same directly.

A fault mix (``config`` key ``faults``: a list of ``{"p": probability, "reply":
Reply}``, drawn from a generator seeded by ``fault_seed``) answers that share of
the chat requests no scripted reply matched, for chaos runs.

Replies (JSON objects, ``kind`` first):

| kind | answer |
|---|---|
| ``grade`` | 200; ``scores`` by criterion, else ``score`` for each; ``injection_suspected``; |
| | ``usage`` (false: no usage); ``finish_reason`` |
| ``rate_limit`` | 429 ``rate_limit_exceeded`` with ``Retry-After: retry_after`` |
| ``quota`` | 429 ``insufficient_quota`` |
| ``status`` | ``status`` (500 unless given) with an error body |
| ``timeout`` | nothing for ``seconds`` (60), then the connection closes |
| ``malformed`` | 200 whose message content is not JSON |
| ``schema_break`` | 200 whose content is JSON of the wrong shape |

Every reply may carry ``latency`` (seconds before answering; else the server's).

Run standalone: ``python -m gradeflow.ops.fakes.openai_server --port 0 --latency 1``
prints ``listening http://127.0.0.1:PORT/v1`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import random
import signal
import struct
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = dict[str, Any]

DEFAULT_DIMENSIONS = 384
DEFAULT_SCORE = 3
#: The ``json_schema`` names gradeflow sends (gradeflow.jobs.essays.prompt.SCHEMA_NAME,
#: gradeflow.jobs.recommendations.rerank.SCHEMA_NAME); a request without one is graded.
GRADE_SCHEMA = "essay_grade"
RANKING_SCHEMA = "credential_ranking"
#: The relevance (0 to 10) the fake gives every candidate it ranks.
FAKE_RELEVANCE = 8


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived (before any scripted latency)."""

    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    def messages(self) -> list[dict[str, Any]]:
        body = self.body if isinstance(self.body, dict) else {}
        return list(body.get("messages", []))


@dataclass
class Rule:
    """Replies to play, in order, to requests containing ``match`` (any request when None)."""

    replies: list[Reply]
    match: str | None = None
    #: Which route plays them: ``chat`` (completions) or ``embeddings``.
    route: str = "chat"


@dataclass
class State:
    """What the server was told to do and what it has seen, shared by its threads."""

    latency: float = 0.0
    usage: bool = True
    default_score: int = DEFAULT_SCORE
    rules: list[Rule] = field(default_factory=list)
    #: The fault mix: ``{"p": probability, "reply": Reply}`` for unscripted chat requests.
    faults: list[dict[str, Any]] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    requests: list[RecordedRequest] = field(default_factory=list)
    #: Answers given, by kind, and when the last of each kind was given.
    played: Counter[str] = field(default_factory=Counter)
    last_played: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def count(self, kind: str) -> None:
        with self.lock:
            self.played[kind] += 1
            self.last_played[kind] = time.time()

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "played": dict(self.played),
                "last_at": dict(self.last_played),
                "scripted_left": sum(len(rule.replies) for rule in self.rules),
                "requests": len(self.requests),
            }

    def drawn_fault(self) -> Reply | None:
        """A reply from the fault mix, or None (answer normally) for this request."""
        with self.lock:
            if not self.faults:
                return None
            draw = self.rng.random()
            for fault in self.faults:
                draw -= float(fault["p"])
                if draw < 0:
                    return dict(fault["reply"])
        return None

    def next_reply(self, text: str, route: str = "chat") -> Reply | None:
        """The next scripted reply for a ``route`` request whose content is ``text``, if any."""
        with self.lock:
            for rule in self.rules:
                if rule.route != route:
                    continue
                if rule.replies and (rule.match is None or rule.match in text):
                    return rule.replies.pop(0)
        return None

    def configure(self, changes: dict[str, Any]) -> None:
        with self.lock:
            for name in ("latency", "usage", "default_score", "faults"):
                if name in changes:
                    setattr(self, name, changes[name])
            if "fault_seed" in changes:
                self.rng.seed(changes["fault_seed"])

    def reset(self) -> None:
        with self.lock:
            self.rules.clear()
            self.requests.clear()
            self.played.clear()
            self.last_played.clear()


# -- chat completions -----------------------------------------------------------------


def json_schema(body: dict[str, Any]) -> dict[str, Any]:
    """The request's ``response_format.json_schema`` (empty when it has none)."""
    found = (body.get("response_format") or {}).get("json_schema") or {}
    return found if isinstance(found, dict) else {}


def schema_name(body: dict[str, Any]) -> str:
    """The name of the schema the request asks for; the grading one when none is given."""
    return str(json_schema(body).get("name") or GRADE_SCHEMA)


def requested_criteria(body: dict[str, Any]) -> list[str]:
    """The criterion names the request's ``json_schema`` asks a score for."""
    schema = json_schema(body).get("schema") or {}
    criteria = (schema.get("properties") or {}).get("criteria") or {}
    return list(criteria.get("required") or [])


def candidate_labels(body: dict[str, Any]) -> list[str]:
    """The candidate labels a ranking schema admits (its ``candidate`` enum), in order."""
    schema = json_schema(body).get("schema") or {}
    ranking = (schema.get("properties") or {}).get("ranking") or {}
    choice = (ranking.get("items") or {}).get("properties") or {}
    return [str(label) for label in (choice.get("candidate") or {}).get("enum") or []]


def ranking_content(body: dict[str, Any]) -> str:
    """Every candidate in the order given, each citing itself."""
    return json.dumps(
        {
            "ranking": [
                {
                    "candidate": label,
                    "relevance": FAKE_RELEVANCE,
                    "rationale": f"fake rationale: {label} closes the largest gap",
                    "source_trace_ids": [label],
                }
                for label in candidate_labels(body)
            ],
            "summary": "fake summary of the ranking",
        }
    )


def grade_content(body: dict[str, Any], reply: Reply, default_score: int) -> str:
    scores = reply.get("scores") or {}
    score = reply.get("score", default_score)
    return json.dumps(
        {
            "criteria": {
                name: {"rationale": f"fake rationale for {name}", "score": scores.get(name, score)}
                for name in requested_criteria(body)
            },
            "injection_suspected": bool(reply.get("injection_suspected", False)),
        }
    )


def completion(body: dict[str, Any], content: str, reply: Reply, usage: bool) -> dict[str, Any]:
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
    answer: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": reply.get("finish_reason", "stop"),
                "logprobs": None,
            }
        ],
    }
    if reply.get("usage", usage):
        prompt_tokens, completion_tokens = prompt_chars // 4 + 1, len(content) // 4 + 1
        answer["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return answer


def error_body(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# -- embeddings -------------------------------------------------------------------------


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on ``text`` and ``dimensions``."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend(int.from_bytes(digest[i : i + 4], "big") / 2**31 - 1 for i in range(0, 32, 4))
        counter += 1
    vector = raw[:dimensions]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def embeddings_response(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input", "")
    texts = [inputs] if isinstance(inputs, str) else [str(item) for item in inputs]
    dimensions = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = embedding(text, dimensions)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            if as_base64
            else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(len(t) // 4 + 1 for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model", "fake-embedding"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# -- the HTTP server ---------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    #: The headers and the body leave in two writes; with Nagle's algorithm the body
    #: waited for the client's delayed ACK of the headers (up to 40 ms a response).
    disable_nagle_algorithm = True
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a benchmark sends thousands of requests."""

    @property
    def state(self) -> State:
        return self.server.state

    def do_GET(self) -> None:
        if self.path.startswith("/_control/requests"):
            with self.state.lock:
                requests = [asdict(r) for r in self.state.requests]
            self.send_json(200, {"requests": requests})
        elif self.path.startswith("/_control/stats"):
            self.send_json(200, self.state.stats())
        else:
            self.send_json(404, error_body(f"no route {self.path}", "invalid_request_error", None))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw or b"{}")
        except ValueError:
            body = raw.decode(errors="replace")
        if self.path.startswith("/_control/"):
            self.control(self.path.removeprefix("/_control/"), body)
            return
        self.state.record(
            RecordedRequest(time.time(), "POST", self.path, dict(self.headers.items()), body)
        )
        if self.path.endswith("/chat/completions") and isinstance(body, dict):
            self.chat(body)
        elif self.path.endswith("/embeddings") and isinstance(body, dict):
            self.embeddings(body)
        else:
            self.send_json(404, error_body(f"no route {self.path}", "invalid_request_error", None))

    def control(self, action: str, body: Any) -> None:
        if action == "script":
            with self.state.lock:
                self.state.rules.append(
                    Rule(list(body["replies"]), body.get("match"), body.get("route", "chat"))
                )
        elif action == "config":
            self.state.configure(body)
        elif action == "reset":
            self.state.reset()
        else:
            self.send_json(404, {"error": f"unknown control {action}"})
            return
        self.send_json(200, {"ok": True})

    def chat(self, body: dict[str, Any]) -> None:
        text = json.dumps(body.get("messages", []), ensure_ascii=False)
        reply = self.state.next_reply(text) or self.state.drawn_fault() or {"kind": "grade"}
        self.state.stopping.wait(float(reply.get("latency", self.state.latency)))
        kind = reply.get("kind", "grade")
        name = schema_name(body)
        if kind == "grade" and name not in (GRADE_SCHEMA, RANKING_SCHEMA):
            kind = "unknown_schema"
        self.state.count(kind)
        if kind == "unknown_schema":
            self.send_json(
                400,
                error_body(f"unknown response_format schema {name!r} (fake)",
                           "invalid_request_error", "invalid_schema"),
            )  # fmt: skip
        elif kind == "timeout":
            self.state.stopping.wait(float(reply.get("seconds", 60)))
            self.close_connection = True
            return
        if kind == "rate_limit":
            self.send_json(
                429,
                error_body("Rate limit reached (fake)", "requests", "rate_limit_exceeded"),
                {"Retry-After": str(reply.get("retry_after", 1))},
            )
        elif kind == "quota":
            self.send_json(
                429,
                error_body("You exceeded your current quota (fake)", "insufficient_quota",
                           "insufficient_quota"),
            )  # fmt: skip
        elif kind == "status":
            status = int(reply.get("status", 500))
            self.send_json(status, error_body(f"fake error {status}", "server_error", None))
        else:
            self.send_json(200, completion(body, self.content(kind, body, reply), reply,
                                           self.state.usage))  # fmt: skip

    def embeddings(self, body: dict[str, Any]) -> None:
        reply = self.state.next_reply(json.dumps(body.get("input")), "embeddings") or {}
        if reply.get("kind") == "rate_limit":
            self.send_json(
                429,
                error_body("Rate limit reached (fake)", "requests", "rate_limit_exceeded"),
                {"Retry-After": str(reply.get("retry_after", 1))},
            )
        elif reply.get("kind") == "status":
            status = int(reply.get("status", 500))
            self.send_json(status, error_body(f"fake error {status}", "server_error", None))
        else:
            self.send_json(200, embeddings_response(body))

    def content(self, kind: str, body: dict[str, Any], reply: Reply) -> str:
        if kind == "malformed":
            return '{"criteria": {"unterminated'
        if kind == "schema_break":
            return json.dumps({"criteria": "all good", "score": "ten"})
        if schema_name(body) == RANKING_SCHEMA:
            return ranking_content(body)
        return grade_content(body, reply, self.state.default_score)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    #: A benchmark opens a hundred connections at once; the default backlog (5) drops SYNs.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], state: State) -> None:
        super().__init__(address, Handler)
        self.state = state


class FakeOpenAI:
    """The fake server, serving from a background thread of this process."""

    def __init__(self, *, port: int = 0, latency: float = 0.0, usage: bool = True) -> None:
        self.state = State(latency=latency, usage=usage)
        self._server = Server(("127.0.0.1", port), self.state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-openai", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What ``OPENAI_BASE_URL`` should be."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.stopping.set()  # wakes scripted latencies and timeouts
        self._server.shutdown()
        self._server.server_close()

    def script(self, *replies: Reply, match: str | None = None, route: str = "chat") -> None:
        """Play ``replies`` in order to ``route`` requests containing ``match`` (any when None)."""
        with self.state.lock:
            self.state.rules.append(Rule(list(replies), match, route))

    def configure(self, **changes: Any) -> None:
        self.state.configure(changes)

    def stats(self) -> dict[str, Any]:
        """Answers given by kind, when the last of each was given, scripted replies left."""
        return self.state.stats()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.state.lock:
            return list(self.state.requests)

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]


class RemoteFakeOpenAI:
    """The ``/_control`` routes of a fake server running in another process."""

    def __init__(self, base_url: str) -> None:
        #: What ``OPENAI_BASE_URL`` should be (``http://127.0.0.1:PORT/v1``).
        self.base_url = base_url

    def call(self, action: str, body: dict[str, Any] | None = None) -> Any:
        """``POST /_control/<action>`` with ``body``, or ``GET`` without one."""
        request = urllib.request.Request(
            f"{self.base_url.removesuffix('/v1')}/_control/{action}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="GET" if body is None else "POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def answers(self) -> bool:
        try:
            self.stats()
        except OSError:
            return False
        return True

    def script(self, *replies: Reply, match: str | None = None, route: str = "chat") -> None:
        self.call("script", {"replies": list(replies), "match": match, "route": route})

    def configure(self, **changes: Any) -> None:
        self.call("config", changes)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.call("stats")
        return stats

    def reset(self) -> None:
        self.call("reset", {})


@contextmanager
def fake_openai(*, latency: float = 0.0, usage: bool = True) -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(latency=latency, usage=usage).start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--no-usage", action="store_true", help="answers carry no usage")
    args = parser.parse_args(argv)
    server = FakeOpenAI(port=args.port, latency=args.latency, usage=not args.no_usage)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    server.start()
    print(f"listening {server.base_url}", flush=True)
    done.wait()
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
