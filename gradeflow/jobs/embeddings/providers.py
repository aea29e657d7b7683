"""The one interface every embedding provider has, and the choice among them.

``GRADEFLOW_EMBEDDINGS`` picks ``openai``, ``local`` or ``hash``. A provider is
built once per process (the local model takes a second and ~100 MB to load)
and shared by every worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from gradeflow.db.schema.catalog import EMBEDDING_DIMENSIONS
from gradeflow.jobs.embeddings.hashing import HashEmbedder
from gradeflow.jobs.errors import PermanentError
from gradeflow.settings import Settings

PROVIDERS = ("openai", "local", "hash")


class Embedder(Protocol):
    """Turns texts into 384-d unit vectors, in the texts' order, batching as it sees fit."""

    #: The provider's name, stored with each vector: vectors of two providers never meet.
    name: str
    #: The model behind it (e.g. ``all-MiniLM-L6-v2``), stored with each vector.
    model: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class EmbeddingConfigError(PermanentError):
    """The configured provider cannot run here (no API key, extra not installed)."""


_lock = threading.Lock()
_cache: dict[tuple[str, str | None, str | None], Embedder] = {}


def embedder_for(settings: Settings) -> Embedder:
    """This process's embedder for ``settings.embeddings`` (built on first use)."""
    key = (settings.embeddings, settings.openai_api_key, settings.openai_base_url)
    with _lock:  # one load, even when eight worker threads ask at once
        if key not in _cache:
            _cache[key] = build_embedder(settings)
        return _cache[key]


def build_embedder(settings: Settings) -> Embedder:
    if settings.embeddings == "hash":
        return HashEmbedder()
    if settings.embeddings == "local":
        from gradeflow.jobs.embeddings.local import LocalEmbedder

        return LocalEmbedder.load()
    from gradeflow.jobs.embeddings.openai_provider import OpenAIEmbedder

    return OpenAIEmbedder.from_settings(settings)


def check_vectors(embedder: Embedder, texts: Sequence[str], vectors: list[list[float]]) -> None:
    """A provider that answers with the wrong count or size would corrupt the catalog."""
    if len(vectors) != len(texts):
        raise PermanentError(
            f"{embedder.name} returned {len(vectors)} vectors for {len(texts)} texts"
        )
    wrong = {len(v) for v in vectors} - {EMBEDDING_DIMENSIONS}
    if wrong:
        raise PermanentError(
            f"{embedder.name} ({embedder.model}) returned {sorted(wrong)}-d vectors; "
            f"the catalog stores {EMBEDDING_DIMENSIONS}-d"
        )
