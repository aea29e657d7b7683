"""The ``hash`` provider: deterministic, 384-d unit vectors that reflect shared words."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from gradeflow.jobs.embeddings.hashing import HashEmbedder, features, hash_vector


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_are_384_d_and_unit_length() -> None:
    vectors = HashEmbedder().embed(["SQL for analysts", "", "!!!", "a " * 500])
    assert [len(v) for v in vectors] == [384] * 4
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-9)


def test_features_are_lowercased_unigrams_then_bigrams() -> None:
    assert list(features("Data, SCIENCE data")) == [
        "data",
        "science",
        "data",
        "data science",
        "science data",
    ]


def test_shared_words_make_texts_closer() -> None:
    base = hash_vector("Relational databases and SQL querying")
    close = hash_vector("SQL querying of relational databases")
    far = hash_vector("Watercolour painting for beginners")
    assert cosine(base, close) > 0.5
    assert abs(cosine(base, far)) < 0.3
    assert math.isclose(cosine(base, hash_vector("relational DATABASES and sql querying")), 1.0)


def test_word_order_matters_through_bigrams() -> None:
    forward = hash_vector("machine learning engineer")
    backward = hash_vector("engineer learning machine")
    assert 0.2 < cosine(forward, backward) < 0.99


def test_embed_keeps_input_order() -> None:
    texts = ["alpha", "beta", "gamma"]
    assert HashEmbedder().embed(texts) == [hash_vector(t) for t in texts]


def test_vectors_are_the_same_in_another_process() -> None:
    # Python's own str hash is salted per process; the provider must not depend on it.
    code = (
        "import json; from gradeflow.jobs.embeddings.hashing import hash_vector;"
        "print(json.dumps(hash_vector('Cloud security fundamentals')))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == hash_vector("Cloud security fundamentals")
