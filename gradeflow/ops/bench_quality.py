"""``gradeflow bench quality``: recall@5 and nDCG@5 of retrieval on a hand-labelled set.

The set (``tests/data/recommendation_quality``: 222 credentials, 40 users with the
credentials a reviewer judged relevant to their gaps, graded 1-3) is loaded into a
fresh catalog in the database ``gradeflow_bench_quality`` next to the configured
(or embedded) one, embedded by ``hash`` and ``local``, and every user's query (the
product's own query text) is searched with the production top-k query. The
evaluation itself is :mod:`gradeflow.jobs.recommendations.quality`.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import text

from gradeflow.db.engine import make_engine
from gradeflow.jobs.embeddings.hashing import HashEmbedder
from gradeflow.jobs.embeddings.providers import Embedder
from gradeflow.jobs.recommendations.quality import (
    K,
    LabelledSet,
    ProviderQuality,
    evaluate_providers,
    read_labelled_set,
)
from gradeflow.ops.bench_support import BenchError, bench_database_url, machine, report
from gradeflow.ops.context import err, fail, stack

BENCH_DATABASE = "gradeflow_bench_quality"
SECTION_HEADING = "## Recommendation quality (`gradeflow bench quality`)"
DATA_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "recommendation_quality"
#: A 1-minute load average above this (other work on the machine) is noted with the figures.
BUSY_LOAD = 1.0
#: Queries listed per provider under "where local misses".
WORST_SHOWN = 5


def empty_catalog(database_url: str) -> None:
    """The bench database's catalog, emptied: the set must be all there is to find."""
    engine = make_engine(database_url, pool_size=None)
    try:
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE credential_catalog, embedding_artifacts CASCADE"))
    finally:
        engine.dispose()


def embedders() -> list[Embedder]:
    from gradeflow.jobs.embeddings.local import LocalEmbedder

    return [HashEmbedder(), LocalEmbedder.load()]


def run(database_url: str, labelled: LabelledSet) -> tuple[list[ProviderQuality], float]:
    """Every provider's figures on a fresh catalog, and the seconds it took."""
    empty_catalog(database_url)
    engine = make_engine(database_url, pool_size=2, application_name="gradeflow-bench-quality")
    started = time.perf_counter()
    try:
        results = evaluate_providers(engine, labelled, embedders())
    finally:
        engine.dispose()
    return results, time.perf_counter() - started


def figures(results: list[ProviderQuality]) -> dict[str, Any]:
    """The JSON figures: ``<provider>_recall_at_5`` etc., and each query's outcome."""
    flat: dict[str, Any] = {}
    for quality in results:
        flat[f"{quality.provider}_recall_at_{K}"] = round(quality.recall, 4)
        flat[f"{quality.provider}_ndcg_at_{K}"] = round(quality.ndcg, 4)
        flat[f"{quality.provider}_model"] = quality.model
    flat["per_query"] = {
        quality.provider: {
            o.query_id: {"recall": round(o.recall, 3), "ndcg": round(o.ndcg, 3), "top": o.ranked}
            for o in quality.outcomes
        }
        for quality in results
    }
    return flat


def section(
    r: dict[str, Any],
    results: list[ProviderQuality],
    labelled: LabelledSet,
    box: dict[str, str],
    command: str,
    when: datetime,
) -> str:
    rows = [f"| `{q.provider}` ({q.model}) | {q.recall:.3f} | {q.ndcg:.3f} |" for q in results]
    judged = sum(len(q.relevant) for q in labelled.queries)
    by_provider = {q.provider: q for q in results}
    lines = [
        SECTION_HEADING,
        "",
        f"Measured {when:%Y-%m-%d %H:%M} UTC on {box['nproc']} CPUs ({box['cpu']}), "
        f"{box['memory']} RAM; Python {box['python']}, PostgreSQL {box['postgres']}. "
        f"Load average (1 min) {r['load_avg_start']} before the run, {r['load_avg_end']} "
        "after it" + (" (the figures do not depend on it)." if busy(r) else "."),
        "",
        f"Command: `{command}` — {len(labelled.credentials)} credentials, "
        f"{len(labelled.queries)} users, {judged} relevance judgements; "
        f"{r['seconds']:.1f} s for loading, embedding and searching with both providers.",
        "",
        f"| provider | recall@{K} | nDCG@{K} |",
        "|---|---:|---:|",
        *rows,
    ]
    if "local" in by_provider and "hash" in by_provider:
        local, hashing = by_provider["local"], by_provider["hash"]
        lines += [
            f"| `local` minus `hash` | {local.recall - hashing.recall:+.3f} "
            f"| {local.ndcg - hashing.ndcg:+.3f} |",
            "",
            f"Where `local` does worst (nDCG@{K}; its top {K} by key):",
            "",
            *worst_lines(local, labelled),
        ]
    lines += [
        "",
        "How: the labelled set is `tests/data/recommendation_quality/` (its README says how "
        "the labels were judged: by what a credential teaches against the user's gaps, "
        "graded 3 for a largest gap, 2 for another gap or part of a largest one, 1 for a "
        "little). It is loaded into an empty catalog with the catalog's own insert, each "
        "credential embedded from `credential_text` by both providers and stored with "
        "`upsert_artifacts`; each user's query is the product's "
        "(`skill_gaps` → `query_text(gaps, role_skills=…)`), embedded by the same provider "
        f"and searched with the production `nearest_credentials` (top {K}, HNSW). "
        f"recall@{K} is the relevant credentials among the first {K} over "
        f"min({K}, relevant ones), any grade; nDCG@{K} uses gain 2^grade - 1 and a "
        "log2(rank + 1) discount over the best ordering of the judged credentials. Both are "
        "means over the users. `tests/integration/test_recommendation_quality.py` fails if "
        "either provider falls more than 0.05 below these figures, or `local` stops "
        "beating `hash` clearly.",
    ]
    return "\n".join([*lines, ""])


def worst_lines(quality: ProviderQuality, labelled: LabelledSet) -> list[str]:
    """The provider's weakest queries: what a change to the query text should fix first."""
    roles = {q.id: q.role for q in labelled.queries}
    relevant = {q.id: q.relevant for q in labelled.queries}
    worst = sorted(quality.outcomes, key=lambda o: (o.ndcg, o.query_id))[:WORST_SHOWN]
    return [
        f"- {o.query_id} ({roles[o.query_id]}), nDCG {o.ndcg:.2f}: "
        f"query “{o.text.splitlines()[0]}” → "
        + ", ".join(f"{key} ({relevant[o.query_id].get(key, 0)})" for key in o.ranked)
        for o in worst
    ]


def busy(r: dict[str, Any]) -> bool:
    return bool(max(r["load_avg_start"], r["load_avg_end"]) > BUSY_LOAD)


def quality_command(
    data: Annotated[
        Path,
        typer.Option(
            exists=True, file_okay=False, help="Directory of credentials.jsonl and queries.jsonl."
        ),
    ] = DATA_DIR,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on the last line.")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write/--no-write", help="Record the figures in BENCHMARKS.md.")
    ] = True,
) -> None:
    """recall@5 and nDCG@5 of the hash and local embeddings on a hand-labelled set.

    Runs in a database gradeflow_bench_quality next to the configured (or embedded) one.
    """
    command = "gradeflow " + shlex.join(sys.argv[1:])
    when = datetime.now(UTC)
    try:
        labelled = read_labelled_set(data)
    except (OSError, ValueError, KeyError) as exc:
        raise fail(f"cannot read the labelled set in {data}: {exc}") from None
    result: dict[str, Any] = {"load_avg_start": round(os.getloadavg()[0], 2)}
    with stack() as resolved:
        try:
            database_url = bench_database_url(resolved.database_url, BENCH_DATABASE)
            err.print(
                f"{len(labelled.credentials)} credentials, {len(labelled.queries)} users: "
                "hash and local",
                highlight=False,
            )
            results, seconds = run(database_url, labelled)
            box = machine(database_url, resolved.redis_url)
        except BenchError as exc:
            raise fail(str(exc)) from None
    result.update(
        k=K,
        credentials=len(labelled.credentials),
        queries=len(labelled.queries),
        seconds=round(seconds, 1),
        load_avg_end=round(os.getloadavg()[0], 2),
        **figures(results),
    )
    body = section(result, results, labelled, box, command, when)
    report(body, SECTION_HEADING, result, box, command, write=write, as_json=as_json)
