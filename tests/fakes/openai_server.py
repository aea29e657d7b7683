"""The fake OpenAI-compatible server; it lives in :mod:`gradeflow.ops.fakes.openai_server`
(the benchmarks start it too) and is re-exported here for the tests.

Run standalone: ``python -m tests.fakes.openai_server --port 0 --latency 1``.
"""

from __future__ import annotations

from gradeflow.ops.fakes.openai_server import (
    DEFAULT_DIMENSIONS,
    DEFAULT_SCORE,
    GRADE_SCHEMA,
    RANKING_SCHEMA,
    FakeOpenAI,
    RecordedRequest,
    Reply,
    embedding,
    fake_openai,
    main,
)

__all__ = [
    "DEFAULT_DIMENSIONS",
    "DEFAULT_SCORE",
    "GRADE_SCHEMA",
    "RANKING_SCHEMA",
    "FakeOpenAI",
    "RecordedRequest",
    "Reply",
    "embedding",
    "fake_openai",
    "main",
]

if __name__ == "__main__":
    main()
