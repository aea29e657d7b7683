"""The ``local`` provider with the real all-MiniLM-L6-v2, loaded offline from its wheel."""

from __future__ import annotations

import math
import os

import pytest

from gradeflow.jobs.embeddings.local import (
    LocalEmbedder,
    length_sorted_batches,
    model_path,
    packable,
)


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder.load()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_the_model_comes_from_the_wheel_with_the_hub_off(embedder: LocalEmbedder) -> None:
    assert (model_path() / "model.safetensors").is_file()
    assert "site-packages" in str(model_path())
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert (embedder.name, embedder.model) == ("local", "all-MiniLM-L6-v2")


def test_vectors_are_384_d_unit_length(embedder: LocalEmbedder) -> None:
    vectors = embedder.embed(["Introduction to SQL", "Advanced statistics"])
    assert [len(v) for v in vectors] == [384, 384]
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-4)


def test_meaning_not_just_words(embedder: LocalEmbedder) -> None:
    query, paraphrase, unrelated = embedder.embed(
        [
            "Writing database queries to analyse sales figures",
            "SQL for business data analysis",
            "Baking sourdough bread at home",
        ]
    )
    assert cosine(query, paraphrase) > cosine(query, unrelated) + 0.3


def test_batches_give_the_same_vectors_as_single_texts(embedder: LocalEmbedder) -> None:
    texts = [f"Certificate {i}: cloud security and networking, level {i % 4}" for i in range(70)]
    batched = embedder.embed(texts)  # more than one batch of 64
    assert len(batched) == len(texts)
    for index in (0, 33, 69):
        [single] = embedder.embed([texts[index]])
        assert cosine(single, batched[index]) > 0.9999


def test_no_texts_no_vectors(embedder: LocalEmbedder) -> None:
    assert embedder.embed([]) == []


def test_vectors_are_the_models_own_in_the_texts_order(embedder: LocalEmbedder) -> None:
    # The packed forward pass (dense layers on real tokens only) is the one taken,
    assert packable(embedder.st_model)
    # and on 1 to 40 words in a scrambled order, batched by token count rather than
    # sentence-transformers' character count, its vectors are the model's own.
    words = ("data analysis with sql and python for cloud security teams " * 4).split()
    texts = [" ".join(words[: n * 7 % 40 + 1]) for n in range(93)]
    ours = embedder.embed(texts)
    theirs = embedder.st_model.encode(texts, batch_size=16, normalize_embeddings=True).tolist()
    assert len(ours) == len(theirs) == len(texts)
    for mine, reference in zip(ours, theirs, strict=True):
        assert cosine(mine, reference) > 0.9999


def test_batches_group_texts_of_equal_token_counts_longest_first() -> None:
    lengths = [5, 12, 5, 40, 12, 7]
    assert length_sorted_batches(lengths, 2) == [[3, 1], [4, 5], [0, 2]]
    assert length_sorted_batches(lengths, 4) == [[3, 1, 4, 5], [0, 2]]
    assert length_sorted_batches([], 4) == []
