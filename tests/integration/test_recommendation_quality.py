"""Retrieval quality on the hand-labelled set, per embedding provider, on real PostgreSQL.

The set is ``tests/data/recommendation_quality`` (its README says how it was
judged); the path is the product's: its query text, credential text, artifact
upsert and HNSW search.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gradeflow.jobs.embeddings.hashing import HashEmbedder
from gradeflow.jobs.embeddings.local import LocalEmbedder
from gradeflow.jobs.recommendations.quality import (
    LabelledSet,
    ProviderQuality,
    evaluate_providers,
    read_labelled_set,
)
from gradeflow.ops.catalog_cli import read_credentials

DATA = Path(__file__).resolve().parents[1] / "data" / "recommendation_quality"


@dataclass(frozen=True)
class Recorded:
    recall_at_5: float
    ndcg_at_5: float


#: The figures of BENCHMARKS.md, "Recommendation quality (`gradeflow bench quality`)".
#: Rerun the bench and update both together when the set, the query text, the
#: credential text or a provider changes.
RECORDED = {
    "hash": Recorded(recall_at_5=0.605, ndcg_at_5=0.716),
    "local": Recorded(recall_at_5=0.689, ndcg_at_5=0.747),
}
#: How far below its recorded figure a provider may fall before this fails.
MARGIN = 0.05
#: How much better than ``hash`` the ``local`` model's recall@5 must stay.
LOCAL_LEAD = 0.05


@pytest.fixture(scope="module")
def labelled() -> LabelledSet:
    return read_labelled_set(DATA)


def test_the_set_is_large_enough_and_loadable_by_gradeflow_catalog_load(
    labelled: LabelledSet,
) -> None:
    assert len(labelled.credentials) >= 200
    assert len(labelled.queries) >= 30
    assert all(len(q.relevant) >= 2 for q in labelled.queries)
    # The same file `gradeflow catalog load` reads, through its own reader.
    loaded = read_credentials(DATA / "credentials.jsonl")
    assert [c.metadata["key"] for c in loaded if c.metadata] == [
        c.key for c in labelled.credentials
    ]


def test_each_provider_holds_its_recorded_quality_and_local_beats_hash(
    engine: Engine, labelled: LabelledSet
) -> None:
    # Given the labelled catalog embedded by both providers in a fresh database
    results = evaluate_providers(engine, labelled, [HashEmbedder(), LocalEmbedder.load()])
    by_provider: dict[str, ProviderQuality] = {r.provider: r for r in results}

    # Then neither falls below its recorded figures by more than the margin
    for provider, recorded in RECORDED.items():
        found = by_provider[provider]
        assert found.recall >= recorded.recall_at_5 - MARGIN, (provider, found.recall)
        assert found.ndcg >= recorded.ndcg_at_5 - MARGIN, (provider, found.ndcg)

    # And the model beats feature hashing clearly
    local, hashing = by_provider["local"], by_provider["hash"]
    assert local.recall >= hashing.recall + LOCAL_LEAD, (local.recall, hashing.recall)
    assert local.ndcg > hashing.ndcg, (local.ndcg, hashing.ndcg)
    # And every query was answered with a full top 5
    assert all(len(o.ranked) == 5 for r in results for o in r.outcomes)
