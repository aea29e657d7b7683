"""Choosing a provider from the settings, and the checks every provider's output passes."""

from __future__ import annotations

import pytest

from gradeflow.jobs.embeddings.hashing import HashEmbedder
from gradeflow.jobs.embeddings.openai_provider import (
    DEFAULT_SNOOZE_SECONDS,
    OpenAIEmbedder,
    retry_after,
)
from gradeflow.jobs.embeddings.providers import (
    EmbeddingConfigError,
    build_embedder,
    check_vectors,
    embedder_for,
)
from gradeflow.jobs.errors import PermanentError
from gradeflow.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


def test_hash_is_the_default_provider() -> None:
    embedder = build_embedder(settings())
    assert isinstance(embedder, HashEmbedder)
    assert (embedder.name, embedder.model) == ("hash", "feature-hash-uni-bi-v1")


def test_openai_needs_an_api_key() -> None:
    with pytest.raises(EmbeddingConfigError, match="OPENAI_API_KEY"):
        build_embedder(settings(embeddings="openai"))
    # A configuration error is permanent: retrying the job cannot fix it.
    assert issubclass(EmbeddingConfigError, PermanentError)


def test_openai_provider_is_built_from_settings() -> None:
    embedder = build_embedder(
        settings(embeddings="openai", OPENAI_API_KEY="sk-test", OPENAI_BASE_URL="http://x/v1")
    )
    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.name, embedder.model) == ("openai", "text-embedding-3-small")
    assert str(embedder.client.base_url).startswith("http://x/v1")
    assert embedder.client.max_retries == 0  # the job engine owns retries


def test_one_embedder_per_process_and_configuration() -> None:
    first = embedder_for(settings(embeddings="hash"))
    assert embedder_for(settings(embeddings="hash")) is first


def test_vectors_of_the_wrong_size_or_count_are_refused() -> None:
    embedder = HashEmbedder()
    with pytest.raises(PermanentError, match=r"\[3\]-d"):
        check_vectors(embedder, ["a"], [[0.1, 0.2, 0.3]])
    with pytest.raises(PermanentError, match="1 vectors for 2 texts"):
        check_vectors(embedder, ["a", "b"], [[0.0] * 384])
    check_vectors(embedder, ["a"], [[0.0] * 384])


def test_retry_after_header_is_honoured() -> None:
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"retry-after": "soon"}) == DEFAULT_SNOOZE_SECONDS
    assert retry_after({}) == DEFAULT_SNOOZE_SECONDS
