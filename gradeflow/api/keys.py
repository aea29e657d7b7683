"""API keys: ``gf_`` and 43 random URL-safe characters, stored only as a SHA-256 hex digest;
and the keys an API process recently found active (:class:`RecentKeys`)."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from gradeflow.db.clients import KeyHolder

KEY_PREFIX = "gf_"
#: How many leading characters of a key are kept to tell keys apart (``gf_`` + 7).
DISPLAY_PREFIX_LENGTH = 10
_WELL_FORMED = re.compile(r"gf_[A-Za-z0-9_-]{20,200}")


@dataclass(frozen=True)
class IssuedKey:
    """A new key: ``key`` is shown once; ``key_hash`` and ``key_prefix`` are stored."""

    key: str
    key_hash: str
    key_prefix: str


def issue_api_key() -> IssuedKey:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return IssuedKey(key=key, key_hash=hash_api_key(key), key_prefix=key[:DISPLAY_PREFIX_LENGTH])


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_well_formed(key: str) -> bool:
    return _WELL_FORMED.fullmatch(key) is not None


#: How long intake trusts that a key it found active is still active, for the order
#: of its refusals only (a revoked key's write is refused whatever this says).
RECENT_KEY_SECONDS = 1.0
#: Beyond this many keys remembered, the expired ones are dropped.
MAX_RECENT_KEYS = 1_000


@dataclass(frozen=True)
class Caller:
    """The client behind a request's key, and the key's hash (to look it up again)."""

    key_hash: str
    holder: KeyHolder


class RecentKeys:
    """Keys this process found active in the last ``ttl_seconds``, by hash.

    Only intake's submissions use it, and their write refuses to run for a revoked
    key (:func:`gradeflow.db.assessments.insert_submission` checks the key in the
    same statement), so a revoked key still stops working at once: for ``ttl_seconds``
    it may only hear 422 instead of 401 about a body that would be refused anyway.
    """

    def __init__(
        self, ttl_seconds: float = RECENT_KEY_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_seconds = ttl_seconds
        self._clock = clock
        self._seen: dict[str, tuple[KeyHolder, float]] = {}

    def get(self, key_hash: str) -> KeyHolder | None:
        seen = self._seen.get(key_hash)
        if seen is None or self._clock() >= seen[1]:
            return None
        return seen[0]

    def remember(self, key_hash: str, holder: KeyHolder) -> None:
        now = self._clock()
        if len(self._seen) > MAX_RECENT_KEYS:
            self._seen = {k: v for k, v in list(self._seen.items()) if v[1] > now}
        self._seen[key_hash] = (holder, now + self._ttl_seconds)

    def forget(self, key_hash: str) -> None:
        self._seen.pop(key_hash, None)
