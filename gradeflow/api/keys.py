"""API keys: ``gf_`` and 43 random URL-safe characters, stored only as a SHA-256 hex digest."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

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
