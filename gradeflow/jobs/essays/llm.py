"""One chat-completions call through the official ``openai`` SDK, and what its errors mean.

The SDK's own retries are off: the job engine owns attempts, backoff and the
``llm`` queue's limits, and a hidden SDK retry would send requests the
per-minute limit never counted. Every SDK error becomes one of three
outcomes for the engine:

| error | raised as | the job |
|---|---|---|
| timeout, connection error, 5xx, 408, 409 | :class:`LlmUnavailable` | retried, backoff |
| 429 ``rate_limit_exceeded`` | ``Snooze`` | again after ``Retry-After``, attempt refunded |
| 429 ``insufficient_quota``, other 4xx | ``PermanentError`` | dead at once |
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any

import httpx2
import openai

# Loaded here, at worker start: the SDK would import it inside the first request.
import openai.resources.chat
import pydantic
from openai.types.chat import ChatCompletion

from gradeflow.jobs.errors import PermanentError, Snooze
from gradeflow.metrics import counted_llm_request
from gradeflow.settings import Settings

#: Seconds to wait after a 429 that says nothing about when to come back.
DEFAULT_RATE_LIMIT_WAIT = 5.0
#: A ``Retry-After`` longer than this is capped: the job comes back and asks again.
MAX_RATE_LIMIT_WAIT = 900.0
#: Statuses that say "not now" rather than "never".
TRANSIENT_STATUSES = frozenset({408, 409})
#: The SDK needs a key; a local OpenAI-compatible server usually ignores it.
KEYLESS = "not-needed"


class LlmUnavailable(Exception):
    """The model could not be reached or failed on its side; worth another attempt."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class LlmAnswer:
    """What came back from one successful call."""

    content: str | None
    refusal: str | None
    finish_reason: str | None
    request_id: str | None
    #: The model the server says answered (it may add a date to the one asked for).
    model: str
    usage: Usage | None
    latency_ms: int


def llm_configured(settings: Settings) -> bool:
    """True when essays go to a model: an API key or a base URL is set."""
    return bool(settings.openai_api_key or settings.openai_base_url)


_building = threading.Lock()


def client_for(settings: Settings) -> openai.OpenAI:
    """The process's client for ``settings`` (one connection pool shared by all threads)."""
    # Building a client takes ~0.1 s (TLS context); without the lock every thread of a
    # fresh worker builds its own at once, delaying its first request (already counted
    # against the per-minute limit) by seconds.
    with _building:
        return _client(
            settings.openai_api_key, settings.openai_base_url, settings.llm_timeout_seconds
        )


@lru_cache(maxsize=4)
def _client(api_key: str | None, base_url: str | None, timeout: float) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=api_key or KEYLESS, base_url=base_url, timeout=timeout, max_retries=0
    )


@dataclass(frozen=True)
class Reply:
    """A successful call's response, read but not parsed yet: the caller parses it
    (:meth:`answer`) after giving back the call's limits, which cover the call alone."""

    response: httpx2.Response
    latency_ms: int

    def answer(self) -> LlmAnswer:
        try:
            completion = ChatCompletion.model_validate(self.response.json())
        except (ValueError, pydantic.ValidationError) as exc:
            raise LlmUnavailable(f"the response is not a chat completion: {exc}") from exc
        # The API names each request in this header (the SDK's ``_request_id``).
        return answer_of(completion, self.response.headers.get("x-request-id"), self.latency_ms)


def chat(
    client: openai.OpenAI,
    model: str,
    messages: Sequence[Mapping[str, str]],
    response_format: Mapping[str, Any],
) -> Reply:
    """Send one request at temperature 0; SDK errors come out classified (see the module)."""
    started = time.monotonic()
    body = {
        "model": model,
        "messages": list(messages),
        "response_format": dict(response_format),
        "temperature": 0,
    }
    with counted_llm_request(model), classified():
        # The SDK's documented call for any endpoint (its auth, timeout and error
        # types apply): the body is plain JSON already, and ``create`` would walk it
        # against the SDK's TypedDicts first, which cost more CPU than the request.
        # The response comes back read and unparsed, so parsing is not part of the call.
        response = client.post("/chat/completions", cast_to=httpx2.Response, body=body)
    return Reply(response, int((time.monotonic() - started) * 1000))


def answer_of(completion: ChatCompletion, request_id: str | None, latency_ms: int) -> LlmAnswer:
    if not completion.choices:
        raise LlmUnavailable("the response has no choices")
    choice = completion.choices[0]
    usage = completion.usage
    return LlmAnswer(
        content=choice.message.content,
        refusal=choice.message.refusal,
        finish_reason=choice.finish_reason,
        request_id=request_id,
        model=completion.model,
        usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else None,
        latency_ms=latency_ms,
    )


@contextmanager
def classified() -> Iterator[None]:
    """Re-raise the SDK's errors as the job engine's outcomes."""
    try:
        yield
    except openai.APIStatusError as exc:
        raise status_outcome(exc) from exc
    except openai.APITimeoutError as exc:
        raise LlmUnavailable("the request timed out") from exc
    except openai.APIConnectionError as exc:
        raise LlmUnavailable(f"cannot reach the model: {exc}") from exc
    except openai.APIResponseValidationError as exc:
        raise LlmUnavailable(f"the response is not a chat completion: {exc}") from exc


def status_outcome(exc: openai.APIStatusError) -> Exception:
    """What an error status means for the job."""
    where = f"HTTP {exc.status_code} (request {exc.request_id or '?'}): {exc.message}"
    if exc.status_code == 429 and "insufficient_quota" in (exc.code, exc.type):
        return PermanentError(f"insufficient_quota: {where}")
    if exc.status_code == 429:
        wait = retry_after_seconds(exc.response.headers) or DEFAULT_RATE_LIMIT_WAIT
        return Snooze(min(wait, MAX_RATE_LIMIT_WAIT), f"rate_limit_exceeded: {where}")
    if exc.status_code >= 500 or exc.status_code in TRANSIENT_STATUSES:
        return LlmUnavailable(where)
    return PermanentError(where)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, or ``retry-after`` as
    seconds or an HTTP date; None when it does not say (or says nonsense)."""
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        if value.strip().replace(".", "", 1).isdigit():
            return float(value)
        return max(0.0, parsedate_to_datetime(value).timestamp() - (now or time.time()))
    except (TypeError, ValueError):
        return None
