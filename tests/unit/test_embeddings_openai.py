"""The ``openai`` provider through the real SDK, against the fake OpenAI server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gradeflow.jobs.embeddings.openai_provider import OpenAIEmbedder
from gradeflow.jobs.embeddings.providers import build_embedder
from gradeflow.jobs.errors import PermanentError, Snooze
from gradeflow.settings import Settings
from tests.fakes.openai_server import FakeOpenAI, embedding, fake_openai


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as running:
        yield running


@pytest.fixture
def embedder(server: FakeOpenAI) -> OpenAIEmbedder:
    built = build_embedder(
        Settings(
            _env_file=None,
            embeddings="openai",
            OPENAI_API_KEY="sk-fake",
            OPENAI_BASE_URL=server.base_url,
        )
    )
    assert isinstance(built, OpenAIEmbedder)
    return built


def embedding_requests(server: FakeOpenAI) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.path.endswith("/embeddings")]


def test_asks_for_text_embedding_3_small_at_384_dimensions(
    server: FakeOpenAI, embedder: OpenAIEmbedder
) -> None:
    vectors = embedder.embed(["Data engineering on Postgres", "Team leadership"])
    assert vectors == [
        pytest.approx(embedding("Data engineering on Postgres", 384)),
        pytest.approx(embedding("Team leadership", 384)),
    ]
    [request] = embedding_requests(server)
    assert request["model"] == "text-embedding-3-small"
    assert request["dimensions"] == 384
    assert request["input"] == ["Data engineering on Postgres", "Team leadership"]
    headers = next(r.headers for r in server.requests if r.path.endswith("/embeddings"))
    assert {k.lower(): v for k, v in headers.items()}["authorization"] == "Bearer sk-fake"


def test_large_inputs_are_sent_in_batches_and_kept_in_order(
    server: FakeOpenAI, embedder: OpenAIEmbedder
) -> None:
    texts = [f"credential number {i}" for i in range(600)]
    vectors = embedder.embed(texts)
    assert [len(r["input"]) for r in embedding_requests(server)] == [256, 256, 88]
    assert vectors[0] == pytest.approx(embedding(texts[0], 384))
    assert vectors[599] == pytest.approx(embedding(texts[599], 384))


def test_a_429_snoozes_the_job_for_the_retry_after_seconds(
    server: FakeOpenAI, embedder: OpenAIEmbedder
) -> None:
    server.script({"kind": "rate_limit", "retry_after": 12}, route="embeddings")
    with pytest.raises(Snooze) as raised:
        embedder.embed(["anything"])
    assert raised.value.seconds == 12.0
    assert embedder.embed(["anything"])  # the next request goes through


def test_a_4xx_is_permanent_and_a_5xx_is_retried(
    server: FakeOpenAI, embedder: OpenAIEmbedder
) -> None:
    server.script({"kind": "status", "status": 400}, route="embeddings")
    with pytest.raises(PermanentError, match="400"):
        embedder.embed(["bad input"])
    server.script({"kind": "status", "status": 503}, route="embeddings")
    with pytest.raises(openai.InternalServerError):  # an ordinary error: the engine retries
        embedder.embed(["try later"])
    assert len(embedding_requests(server)) == 2  # the SDK's own retries stay off
