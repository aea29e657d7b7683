"""One webhook HTTP call to a vetted address, never following redirects.

The request's URL carries the vetted IP address; ``Host`` and TLS SNI (and
certificate checks) carry the original host name. Each call has its own
client: a pooled connection must never be reused for another host name that
happens to share an address.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import httpx

from gradeflow.jobs.webhooks.ssrf import Target

#: httpx logs every request at INFO; the attempt rows already record each one.
logging.getLogger("httpx").setLevel(logging.WARNING)

#: How much of a response body an attempt row keeps.
BODY_KEPT_BYTES = 4096


@dataclass(frozen=True)
class Answer:
    """What came back, or why nothing did (``status`` is None then)."""

    status: int | None
    latency_ms: int
    body: str | None = None
    retry_after: str | None = None
    error: str | None = None
    timed_out: bool = False


def pinned_url(target: Target) -> httpx.URL:
    return httpx.URL(target.url).copy_with(host=str(target.address), port=target.port)


def host_header(target: Target) -> str:
    default = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == default else f"{host}:{target.port}"


def post(target: Target, body: str, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` to ``target``; every way it ends becomes an :class:`Answer`."""
    started = time.monotonic()
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST",
                pinned_url(target),
                content=body.encode(),
                headers={**headers, "host": host_header(target)},
                extensions=extensions,
            ) as response,
        ):
            kept = read_head(response, started + timeout)
            return Answer(
                status=response.status_code,
                latency_ms=elapsed_ms(started),
                body=kept.decode("utf-8", "replace"),
                retry_after=response.headers.get("retry-after"),
            )
    except httpx.TimeoutException as exc:
        return Answer(None, elapsed_ms(started), error=f"timed out: {exc!r}", timed_out=True)
    except httpx.HTTPError as exc:
        return Answer(None, elapsed_ms(started), error=f"{type(exc).__name__}: {exc}")


def read_head(response: httpx.Response, deadline: float) -> bytes:
    """The first :data:`BODY_KEPT_BYTES` of the body, read before ``deadline`` (a
    receiver trickling bytes cannot stretch an attempt past its timeout)."""
    kept = b""
    for chunk in response.iter_raw():
        kept += chunk
        if len(kept) >= BODY_KEPT_BYTES:
            break
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the answer took longer than the timeout")
    return kept[:BODY_KEPT_BYTES]


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
