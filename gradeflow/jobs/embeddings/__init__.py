"""Embeddings of the catalog: providers behind one interface, and the jobs that use them.

Importing this package registers the job types ``embed_credential``,
``embed_role`` and ``reembed_catalog``.
"""

from __future__ import annotations

from gradeflow.jobs.embeddings.hashing import HashEmbedder
from gradeflow.jobs.embeddings.jobs import EMBED_CREDENTIAL, EMBED_ROLE, REEMBED_CATALOG
from gradeflow.jobs.embeddings.providers import PROVIDERS, Embedder, build_embedder, embedder_for

__all__ = [
    "EMBED_CREDENTIAL",
    "EMBED_ROLE",
    "PROVIDERS",
    "REEMBED_CATALOG",
    "Embedder",
    "HashEmbedder",
    "build_embedder",
    "embedder_for",
]
