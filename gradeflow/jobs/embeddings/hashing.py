"""The ``hash`` provider: deterministic feature hashing, no model, no dependency.

Each text becomes its lower-cased word unigrams and bigrams; each feature adds
±1 to one of 384 buckets, both chosen by a keyed BLAKE2b of the feature (not
Python's ``hash``, which is salted per process: vectors must match across
workers and restarts). The sign halves the bias of collisions. The sum is
L2-normalised, so cosine similarity measures shared vocabulary.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Iterator, Sequence

from gradeflow.db.schema.catalog import EMBEDDING_DIMENSIONS

NAME = "hash"
MODEL = "feature-hash-uni-bi-v1"
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
#: Versions the hash: change it and every stored ``hash`` vector must be re-embedded.
_KEY = b"gradeflow-hash-v1"
#: An empty text still needs a unit vector (a zero vector has no cosine distance).
_EMPTY_FEATURE = "\x00empty"


def features(text: str) -> Iterator[str]:
    """The text's word unigrams, then its adjacent-word bigrams."""
    words = _WORD.findall(text.lower())
    yield from words
    for first, second in itertools.pairwise(words):
        yield f"{first} {second}"


def bucket(feature: str, dimensions: int) -> tuple[int, float]:
    """Where ``feature`` lands and with which sign."""
    digest = hashlib.blake2b(feature.encode(), digest_size=8, key=_KEY).digest()
    value = int.from_bytes(digest, "little")
    return (value >> 1) % dimensions, 1.0 if value & 1 else -1.0


def hash_vector(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    vector = [0.0] * dimensions
    for feature in features(text):
        index, sign = bucket(feature, dimensions)
        vector[index] += sign
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:  # no words, or every feature cancelled out
        index, sign = bucket(_EMPTY_FEATURE, dimensions)
        vector[index] = sign
        return vector
    return [x / norm for x in vector]


class HashEmbedder:
    """Feature hashing into 384-d: the degraded fallback, always available."""

    name = NAME
    model = MODEL
    dimensions = EMBEDDING_DIMENSIONS

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [hash_vector(text, self.dimensions) for text in texts]
