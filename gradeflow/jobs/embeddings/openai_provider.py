"""The ``openai`` provider: ``text-embedding-3-small`` cut to 384 dimensions.

Any OpenAI-compatible ``/v1/embeddings`` server works (``OPENAI_BASE_URL``).
The SDK's own retries are off: the job engine owns attempts and backoff, so a
429 becomes a snooze (no attempt spent, ``Retry-After`` honoured), other 4xx a
permanent error, and 5xx or a dropped connection an ordinary retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import openai

from gradeflow.db.schema.catalog import EMBEDDING_DIMENSIONS
from gradeflow.jobs.embeddings.providers import EmbeddingConfigError
from gradeflow.jobs.errors import PermanentError, Snooze
from gradeflow.settings import Settings

NAME = "openai"
MODEL = "text-embedding-3-small"
#: Inputs per request; the API takes up to 2,048, smaller requests fail smaller.
BATCH_SIZE = 256
TIMEOUT_SECONDS = 30.0
#: Snooze after a 429 that did not say how long to wait.
DEFAULT_SNOOZE_SECONDS = 5.0


class OpenAIEmbedder:
    name = NAME
    model = MODEL

    def __init__(self, client: openai.OpenAI, batch_size: int = BATCH_SIZE) -> None:
        self.client = client
        self.batch_size = batch_size

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        if not settings.openai_api_key:
            raise EmbeddingConfigError("GRADEFLOW_EMBEDDINGS=openai needs OPENAI_API_KEY")
        client = openai.OpenAI(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout=TIMEOUT_SECONDS,
            max_retries=0,
        )
        return cls(client)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._request(texts[start : start + self.batch_size]))
        return vectors

    def _request(self, batch: Sequence[str]) -> list[list[float]]:
        try:
            response = self.client.embeddings.create(
                model=self.model,
                input=list(batch),
                dimensions=EMBEDDING_DIMENSIONS,
                encoding_format="float",
            )
        except openai.RateLimitError as exc:
            raise Snooze(retry_after(exc.response.headers), "embeddings rate limited") from exc
        except openai.APIStatusError as exc:
            if exc.status_code < 500 and exc.status_code not in (408, 409):
                raise PermanentError(
                    f"embeddings refused: {exc.status_code} {exc.message}"
                ) from exc
            raise
        # The API may answer out of order; ``index`` says which input each vector is.
        ordered = sorted(response.data, key=lambda item: item.index)
        return [list(item.embedding) for item in ordered]


def retry_after(headers: Mapping[str, str]) -> float:
    """Seconds a 429 asked us to wait (``Retry-After``), else a default."""
    raw = headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else DEFAULT_SNOOZE_SECONDS
    except ValueError:
        return DEFAULT_SNOOZE_SECONDS
