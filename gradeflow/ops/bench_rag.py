"""``gradeflow bench rag``: retrieval over pgvector, and local embedding throughput.

1. **Catalog** — N credentials (100,000 by default) with synthetic 384-d unit vectors
   are bulk-loaded with binary ``COPY``; the migration's HNSW cosine index is
   dropped first and re-created from its own definition afterwards (a bulk build
   is much faster than N inserts into the graph). Like real sentence embeddings,
   the vectors fill a low-dimensional subspace (a 24-d latent Gaussian mapped into
   384-d, plus noise); 10 % of the credentials are inactive, so every search is a
   filtered one.
2. **Retrieval** — once pg_prewarm has loaded the index and the tables a query
   reads into shared buffers, for held-out query vectors from the same distribution,
   the production query (:func:`gradeflow.db.embeddings.nearest_credentials`: HNSW,
   iterative scan, active filter) is timed per call from this client, for each
   ``ef_search`` of a sweep, and its top-10 compared with an exact scan of the
   same query (``SET LOCAL enable_indexscan = off``) in the same run: recall@10.
   The headline figures are those of the setting production uses
   (``DEFAULT_EF_SEARCH``); the sweep shows what a smaller one would give.
3. **Embedding** — the local provider (:class:`LocalEmbedder`) and
   sentence-transformers' own ``model.encode``, on the same model object, texts
   and batch size, interleaved chunk by chunk over several rounds, by the clock;
   then by CPU time on one thread. The tokens each side's dense layers carry
   (padding included) explain the difference.

Runs in a database ``gradeflow_bench_rag`` next to the configured (or embedded)
one, whose catalog tables it empties: never in yours.
"""

from __future__ import annotations

import os
import random
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from sqlalchemy import Engine, text

from gradeflow.db.embeddings import (
    CREDENTIAL,
    DEFAULT_EF_SEARCH,
    Neighbour,
    explain_nearest,
    nearest_credentials,
)
from gradeflow.db.engine import libpq_url, make_engine
from gradeflow.db.schema.catalog import EMBEDDING_DIMENSIONS
from gradeflow.ops.bench_support import (
    BenchError,
    bench_database_url,
    percentile,
    report,
)
from gradeflow.ops.bench_support import machine as describe_machine
from gradeflow.ops.context import err, fail, stack

BENCH_DATABASE = "gradeflow_bench_rag"
SECTION_HEADING = "## Retrieval and embeddings (`gradeflow bench rag`)"
INDEX_NAME = "idx_embedding_artifacts_vector_hnsw"
#: The provider name of the synthetic vectors (never one a real provider uses).
PROVIDER = "bench-synthetic"

#: Targets of the issue, on the reference 2-core machine.
TARGET_P95_MS = 10.0
TARGET_RECALL = 0.95
TARGET_RATIO = 1.0
#: A 1-minute load average above this (other work on the machine) is noted with the figures.
BUSY_LOAD = 1.0

K = 10
EF_SWEEP = (40, 64, 100, 150, 200, 300)
#: Sentence embeddings fill a low-dimensional part of their space. The synthetic
#: vectors come from a 24-d Gaussian mapped into 384-d, plus a little isotropic
#: noise: nearest neighbours at cosine ~0.75, the 10th at ~0.69, unrelated items
#: near 0, as with all-MiniLM-L6-v2 over a catalog.
LATENT_DIMENSIONS = 24
NOISE = 0.3
INACTIVE_SHARE = 0.1
#: Timed runs of every query per ef_search setting.
PASSES = 2

Progress = Callable[[str], None]


# -- the catalog ----------------------------------------------------------------------------


def synthetic_vectors(count: int, basis: Any, seed: int) -> Any:
    """``count`` unit vectors: a latent Gaussian through ``basis``, plus noise (numpy)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((count, len(basis))).astype(np.float32)
    noise = rng.standard_normal((count, EMBEDDING_DIMENSIONS)).astype(np.float32)
    points = latent @ basis / np.sqrt(len(basis)) + noise * (NOISE / np.sqrt(EMBEDDING_DIMENSIONS))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points


def make_basis(seed: int) -> Any:
    """A random map from the latent space into the 384 dimensions."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.standard_normal((LATENT_DIMENSIONS, EMBEDDING_DIMENSIONS)).astype(np.float32)


def fingerprint(credentials: int, seed: int) -> str:
    """Names one synthetic catalog (stored as the vectors' model): what ``--reuse`` checks."""
    return f"synthetic-n{credentials}-s{seed}-l{LATENT_DIMENSIONS}-e{NOISE}"


def catalog_present(database_url: str, model: str, credentials: int) -> bool:
    engine = make_engine(database_url, pool_size=None)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT count(*) FROM embedding_artifacts WHERE provider = :p AND model = :m"),
                {"p": PROVIDER, "m": model},
            ).scalar_one()
    finally:
        engine.dispose()
    return bool(found == credentials)


def load_catalog(database_url: str, vectors: Any, seed: int, model: str) -> dict[str, Any]:
    """Empty the catalog, COPY credentials and their vectors in, rebuild the HNSW index."""
    import psycopg
    from pgvector.psycopg import register_vector

    rng = random.Random(seed)
    ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(len(vectors))]
    with psycopg.connect(libpq_url(database_url)) as conn:
        register_vector(conn)
        definition = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (INDEX_NAME,)
        ).fetchone()
        if definition is None:
            raise BenchError(f"index {INDEX_NAME} is missing: is the database migrated?")
        conn.execute("TRUNCATE credential_catalog, embedding_artifacts CASCADE")
        conn.execute(f"DROP INDEX {INDEX_NAME}")
        started = time.perf_counter()
        with conn.cursor().copy(
            "COPY credential_catalog (id, title, active) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "text", "bool"])
            for number, credential_id in enumerate(ids):
                copy.write_row(
                    (credential_id, f"Credential {number}", rng.random() >= INACTIVE_SHARE)
                )
        with conn.cursor().copy(
            "COPY embedding_artifacts (entity_type, entity_id, provider, model, vector)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["varchar", "uuid", "varchar", "varchar", "vector"])
            for credential_id, vector in zip(ids, vectors, strict=True):
                copy.write_row((CREDENTIAL, credential_id, PROVIDER, model, vector))
        copied = time.perf_counter() - started
        # A graph of 100k x 384-d fits in memory this way; one extra worker per spare core.
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {max(0, (os.cpu_count() or 1) - 1)}")
        started = time.perf_counter()
        conn.execute(definition[0])
        built = time.perf_counter() - started
        conn.commit()
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE credential_catalog, embedding_artifacts")
    return {"copy_s": round(copied, 2), "index_build_s": round(built, 2), "index": definition[0]}


# -- retrieval --------------------------------------------------------------------------------


#: What a query reads: the HNSW index, the vectors' rows and the catalog it joins.
PREWARM_RELATIONS = (
    INDEX_NAME,
    "embedding_artifacts",
    "credential_catalog",
    "pk_credential_catalog",
)


def prewarm(database_url: str) -> bool:
    """Load what a query reads into shared buffers with pg_prewarm; False without it.

    Without it, the first passes of the sweep would time reads from the operating
    system's cache, and its first ``ef_search`` setting would look slower than it is.
    """
    import psycopg

    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        except psycopg.Error:
            return False
        for relation in PREWARM_RELATIONS:
            conn.execute("SELECT pg_prewarm(CAST(%s AS regclass))", (relation,))
    return True


def search(engine: Engine, query: Sequence[float], ef_search: int, exact: bool) -> list[Neighbour]:
    """The production query in its own transaction; ``exact`` forbids the index."""
    with engine.begin() as conn:
        if exact:
            conn.execute(text("SELECT set_config('enable_indexscan', 'off', true)"))
        return nearest_credentials(conn, query, PROVIDER, K, ef_search=ef_search)


def plan_of(engine: Engine, query: Sequence[float], ef_search: int, exact: bool) -> str:
    """The plan PostgreSQL chose: proof the index is (or is not) used."""
    with engine.begin() as conn:
        if exact:
            conn.execute(text("SELECT set_config('enable_indexscan', 'off', true)"))
        return explain_nearest(conn, query, PROVIDER, K, ef_search=ef_search)


@dataclass(frozen=True)
class Sweep:
    ef_search: int
    p50_ms: float
    p95_ms: float
    recall_at_10: float


def measure(
    engine: Engine, queries: Any, truth: list[set[uuid.UUID]], ef_search: int, passes: int
) -> Sweep:
    """Latency over ``passes`` runs of every query, recall from the first."""
    latencies: list[float] = []
    hits = 0
    for number in range(passes):
        for query, expected in zip(queries, truth, strict=True):
            vector = query.tolist()
            started = time.perf_counter()
            found = search(engine, vector, ef_search, exact=False)
            latencies.append((time.perf_counter() - started) * 1000)
            if number == 0:
                hits += len({n.credential_id for n in found} & expected)
    return Sweep(
        ef_search=ef_search,
        p50_ms=round(statistics.median(latencies), 2),
        p95_ms=round(percentile(latencies, 0.95), 2),
        recall_at_10=round(hits / (K * len(queries)), 4),
    )


def smallest_meeting_target(sweeps: Sequence[Sweep]) -> int | None:
    """The smallest ef_search of the sweep that reaches the recall target, if any."""
    return next((s.ef_search for s in sweeps if s.recall_at_10 >= TARGET_RECALL), None)


def retrieval_phase(
    database_url: str, credentials: int, queries: int, seed: int, reuse: bool, progress: Progress
) -> dict[str, Any]:
    basis = make_basis(seed)
    model = fingerprint(credentials, seed)
    loaded: dict[str, Any] = {"copy_s": None, "index_build_s": None, "index": INDEX_NAME}
    if reuse and catalog_present(database_url, model, credentials):
        progress(f"catalog: {credentials} credentials of an earlier run, reused")
    else:
        progress(f"catalog: {credentials} credentials, synthetic vectors, COPY")
        vectors = synthetic_vectors(credentials, basis, seed + 1)
        loaded = load_catalog(database_url, vectors, seed, model)
        progress(f"  copied in {loaded['copy_s']} s, index built in {loaded['index_build_s']} s")
    held_out = synthetic_vectors(queries, basis, seed + 2)
    engine = make_engine(
        database_url, pool_size=2, application_name="gradeflow-bench-rag", pre_ping=False
    )
    try:
        index_plan = plan_of(engine, held_out[0].tolist(), EF_SWEEP[0], exact=False)
        exact_plan = plan_of(engine, held_out[0].tolist(), EF_SWEEP[0], exact=True)
        if INDEX_NAME not in index_plan or INDEX_NAME in exact_plan:
            raise BenchError(f"unexpected plans:\n{index_plan}\n---\n{exact_plan}")
        progress(f"exact top-{K} of {queries} queries (enable_indexscan = off)")
        truth = [
            {n.credential_id for n in search(engine, q.tolist(), EF_SWEEP[0], exact=True)}
            for q in held_out
        ]
        prewarmed = prewarm(database_url)
        progress(
            "prewarmed the index and tables into shared buffers (pg_prewarm)"
            if prewarmed
            else "pg_prewarm is not available: warming up with one pass of the queries"
        )
        for query in held_out:  # untimed: connections, prepared plans, what prewarm missed
            search(engine, query.tolist(), EF_SWEEP[-1], exact=False)
        sweeps = []
        for ef_search in EF_SWEEP:
            sweep = measure(engine, held_out, truth, ef_search, PASSES)
            progress(
                f"  ef_search {ef_search}: p50 {sweep.p50_ms} ms, p95 {sweep.p95_ms} ms, "
                f"recall@10 {sweep.recall_at_10}"
            )
            sweeps.append(sweep)
    finally:
        engine.dispose()
    # The headline figures are those of the setting production uses.
    chosen = next(s for s in sweeps if s.ef_search == DEFAULT_EF_SEARCH)
    return {
        "smallest_ef_search_meeting_recall": smallest_meeting_target(sweeps),
        "prewarmed": prewarmed,
        "credentials": credentials,
        "queries": queries,
        **{k: v for k, v in loaded.items()},
        **asdict(chosen),
        "sweep": [asdict(s) for s in sweeps],
    }


# -- embedding throughput ----------------------------------------------------------------------

# fmt: off
_WORDS = (
    "data", "analysis", "sql", "python", "statistics", "cloud", "security", "network", "design",
    "leadership", "project", "management", "agile", "scrum", "machine", "learning", "deep",
    "neural", "models", "testing", "automation", "devops", "kubernetes", "containers", "linux",
    "databases", "postgres", "reporting", "dashboards", "finance", "accounting", "marketing",
    "communication", "writing", "research", "ethics", "privacy", "compliance", "audit", "risk",
    "quality", "customer", "support", "sales", "negotiation", "operations", "logistics",
    "supply", "chain", "excel", "visualization",
)
# fmt: on


def sentences(count: int, seed: int) -> list[str]:
    """Catalog-like texts of 8 to 42 words, the same for both sides."""
    rng = random.Random(seed)
    return [
        "Certificate in " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 40)))
        for _ in range(count)
    ]


def embedding_phase(count: int, batch_size: int, rounds: int, progress: Progress) -> dict[str, Any]:
    """Both sides on the same model object, texts and batch size, finely interleaved.

    Twice: by the clock with torch's own threads (the throughput a worker gets),
    then by CPU time on one thread (the work each side does: with two threads, a
    thread that waits for its partner spins, so on a busy machine CPU time grows
    with the load, and the clock with it).
    """
    import torch

    from gradeflow.jobs.embeddings.local import LocalEmbedder

    embedder = LocalEmbedder.load()
    embedder.batch_size = batch_size
    model = embedder.st_model
    texts = sentences(count, seed=7)
    embedder.embed(texts[:batch_size])  # first calls allocate; time neither
    model.encode(texts[:batch_size], batch_size=batch_size, show_progress_bar=False)
    sides: Sides = {
        "ours": lambda chunk: embedder.embed(chunk),
        "baseline": lambda chunk: model.encode(
            chunk, batch_size=batch_size, show_progress_bar=False
        ),
    }
    step = batch_size * 4
    chunks = [texts[start : start + step] for start in range(0, len(texts), step)]
    threads = torch.get_num_threads()
    clock = interleaved(sides, chunks, rounds, progress)
    torch.set_num_threads(1)
    try:
        work = interleaved(sides, chunks, WORK_ROUNDS, progress)
    finally:
        torch.set_num_threads(threads)
    done, worked = count * rounds, count * WORK_ROUNDS
    return {
        "embed_sentences": count,
        "embed_batch_size": batch_size,
        "embed_rounds": rounds,
        "embed_sentences_per_s": round(done / clock["ours"].wall, 1),
        "baseline_sentences_per_s": round(done / clock["baseline"].wall, 1),
        "embed_ratio": round(clock["baseline"].wall / clock["ours"].wall, 3),
        "embed_cpu_ms_per_sentence": round(work["ours"].cpu * 1000 / worked, 2),
        "baseline_cpu_ms_per_sentence": round(work["baseline"].cpu * 1000 / worked, 2),
        "embed_cpu_ratio": round(work["baseline"].cpu / work["ours"].cpu, 3),
        **padded_tokens(model, chunks, batch_size),
        "torch_threads": threads,
        "torch": torch.__version__,
    }


#: Rounds of the one-thread CPU-time comparison (CPU time varies little between rounds).
WORK_ROUNDS = 1
Sides = dict[str, Callable[[list[str]], object]]


def interleaved(
    sides: Sides, chunks: list[list[str]], rounds: int, progress: Progress
) -> dict[str, Spent]:
    """Each side's time over ``rounds`` passes through ``chunks``, side by side.

    Each chunk is embedded by one side and then the other, the order alternating,
    so a burst of other work on the machine lands on both sides alike.
    """
    import torch

    count = sum(len(chunk) for chunk in chunks)
    totals = {name: Spent() for name in sides}
    turn = 0
    for round_number in range(rounds):
        spent = {name: Spent() for name in sides}
        for chunk in chunks:
            order = list(sides) if turn % 2 == 0 else list(reversed(sides))
            for name in order:
                spent[name] = spent[name] + timed(sides[name], chunk)
            turn += 1
        progress(
            f"  {torch.get_num_threads()} thread(s), round {round_number + 1}: "
            f"gradeflow {count / spent['ours'].wall:.0f}/s "
            f"({spent['ours'].cpu * 1000 / count:.1f} CPU ms each), "
            f"sentence-transformers {count / spent['baseline'].wall:.0f}/s "
            f"({spent['baseline'].cpu * 1000 / count:.1f} CPU ms each)"
        )
        totals = {name: totals[name] + spent[name] for name in totals}
    return totals


@dataclass(frozen=True)
class Spent:
    """Seconds by the clock and of this process's CPU (every thread's)."""

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Spent) -> Spent:
        return Spent(self.wall + other.wall, self.cpu + other.cpu)


def padded_tokens(model: Any, chunks: list[list[str]], batch_size: int) -> dict[str, int]:
    """Tokens each side's batches carry through the dense layers: what the ratio comes from.

    Both sides see one chunk at a time. sentence-transformers orders a chunk's texts
    by character count (``np.argsort`` of the negated lengths, as its ``encode``
    does) and pads each batch to its longest text; gradeflow's dense layers see the
    real tokens only (its attention sees batches by token count, padded).
    """
    import numpy as np

    from gradeflow.jobs.embeddings.local import token_lengths

    real = padded = 0
    for chunk in chunks:
        lengths = token_lengths(model, chunk)
        order = [int(i) for i in np.argsort([-len(text) for text in chunk])]
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        real += sum(lengths)
        padded += sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    return {"embed_dense_tokens": real, "baseline_dense_tokens": padded}


def timed(embed: Callable[[list[str]], object], chunk: list[str]) -> Spent:
    wall, cpu = time.perf_counter(), time.process_time()
    embed(chunk)
    return Spent(time.perf_counter() - wall, time.process_time() - cpu)


# -- where it runs, and the record ----------------------------------------------------------------


def machine(database_url: str, redis_url: str) -> dict[str, str]:
    """The shared description, plus what retrieval speed depends on."""
    engine = make_engine(database_url, pool_size=None)
    try:
        with engine.connect() as conn:
            pgvector = str(
                conn.execute(
                    text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                ).scalar_one()
            )
            shared_buffers = str(conn.execute(text("SHOW shared_buffers")).scalar_one())
            index_size = str(
                conn.execute(
                    text("SELECT pg_size_pretty(pg_relation_size(CAST(:name AS regclass)))"),
                    {"name": INDEX_NAME},
                ).scalar_one()
            )
    finally:
        engine.dispose()
    return {
        **describe_machine(database_url, redis_url),
        "pgvector": pgvector,
        "shared_buffers": shared_buffers,
        "index_size": index_size,
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def section(r: dict[str, Any], box: dict[str, str], command: str, when: datetime) -> str:
    sweep_rows = [
        f"| {s['ef_search']} | {s['p50_ms']:.2f} | {s['p95_ms']:.2f} | {s['recall_at_10']:.3f} |"
        for s in r["sweep"]
    ]
    lines = [
        SECTION_HEADING,
        "",
        f"Measured {when:%Y-%m-%d %H:%M} UTC on {box['nproc']} CPUs ({box['cpu']}), "
        f"{box['memory']} RAM; Python {box['python']}, PostgreSQL {box['postgres']} with "
        f"pgvector {box['pgvector']}. Load average (1 min) {r['load_avg_start']} before the "
        f"run, {r['load_avg_end']} after it."
        + (
            " The machine was busy with other work: latencies and throughputs are "
            "pessimistic (recall is not affected; both sides of the embedding ratio share "
            "the load)."
            if max(r["load_avg_start"], r["load_avg_end"]) > BUSY_LOAD
            else ""
        ),
        "",
        f"Command: `{command}`",
        "",
        "| | figure | target |",
        "|---|---:|---|",
        f"| top-{K} query latency p50 / p95 (ms), HNSW, ef_search = {r['ef_search']} "
        f"| {r['p50_ms']:.2f} / {r['p95_ms']:.2f} | p95 < {TARGET_P95_MS:.0f} "
        f"({verdict(r['p95_ms'] < TARGET_P95_MS)}) |",
        f"| recall@{K} against an exact scan | {r['recall_at_10']:.3f} | ≥ {TARGET_RECALL} "
        f"({verdict(r['recall_at_10'] >= TARGET_RECALL)}) |",
    ]
    if r.get("embed_sentences_per_s") is not None:
        lines += [
            f"| local embedding, gradeflow `LocalEmbedder.embed` (sentences/s) "
            f"| {r['embed_sentences_per_s']:.0f} | |",
            f"| sentence-transformers `model.encode`, same texts and batch (sentences/s) "
            f"| {r['baseline_sentences_per_s']:.0f} | |",
            f"| ratio | {r['embed_ratio']:.3f} | ≥ {TARGET_RATIO} "
            f"({verdict(r['embed_ratio'] >= TARGET_RATIO)}) |",
            f"| work, one thread: CPU ms per sentence, gradeflow / sentence-transformers "
            f"| {r['embed_cpu_ms_per_sentence']:.2f} / {r['baseline_cpu_ms_per_sentence']:.2f} "
            f"(ratio {r['embed_cpu_ratio']:.3f}) | |",
        ]
    lines += [
        "",
        f"`ef_search` sweep ({r['queries']} held-out queries, top-{K}, filter `active`, "
        "iterative scan `relaxed_order`). The smallest value reaching the recall target "
        f"here is {r['smallest_ef_search_meeting_recall']}; the figures above are those of "
        f"`DEFAULT_EF_SEARCH` = {r['ef_search']} (`gradeflow/db/embeddings.py`), the "
        "setting production uses, which leaves a margin for real embeddings:",
        "",
        "| ef_search | p50 (ms) | p95 (ms) | recall@10 |",
        "|---:|---:|---:|---:|",
        *sweep_rows,
        "",
        f"How: {r['credentials']:,} credentials ({INACTIVE_SHARE:.0%} inactive) with synthetic "
        f"384-d unit vectors ({LATENT_DIMENSIONS}-d latent Gaussian mapped into 384-d plus "
        f"noise {NOISE}; nearest neighbour at cosine ~0.75), loaded with binary COPY"
        + (
            f" in {r['copy_s']} s; the migration's HNSW index (`{r['index']}`, pgvector's "
            f"defaults m = 16, ef_construction = 64) re-built after the load in "
            f"{r['index_build_s']} s."
            if r["copy_s"] is not None
            else " by an earlier run (`--reuse`), the migration's HNSW index (pgvector's "
            "defaults m = 16, ef_construction = 64) re-built after that load."
        )
        + " Each query is the production "
        "`nearest_credentials` (join to `credential_catalog` for `active`, provider filter, "
        "`SET LOCAL hnsw.ef_search`, `hnsw.iterative_scan = relaxed_order`) in its own "
        "transaction, timed from this client over a local socket; recall compares its ids "
        "with the same query under `SET LOCAL enable_indexscan = off` (a sequential scan and "
        "exact sort; the plans are checked). The server's `shared_buffers` is "
        f"{box['shared_buffers']}"
        + (
            " (gradeflow sizes its embedded server's to the machine, `gradeflow/db/embedded.py`;"
            " initdb's 128MB is smaller than this index)"
            if r.get("embedded_database")
            else ""
        )
        + f" and the HNSW index {box['index_size']}; "
        + (
            "before timing, pg_prewarm loaded the index, the vectors' table and the catalog it "
            "joins into shared buffers, then one untimed pass ran every query. "
            if r.get("prewarmed")
            else "pg_prewarm is not available: one untimed pass of every query warmed them. "
        )
        + "An index that does not fit in shared buffers makes part of every graph walk read "
        "pages from the operating system's cache, at several times the cost.",
    ]
    if r.get("embed_sentences_per_s") is not None:
        lines.append("")
        lines.append(
            f"Embedding: {r['embed_sentences']} catalog-like sentences (8 to 42 words), batch "
            f"{r['embed_batch_size']}, torch {r['torch']} on {r['torch_threads']} threads, one "
            f"model object for both sides; {r['embed_rounds']} rounds, each chunk of four batches "
            "embedded by both sides in alternating order, rates over the totals; then once more "
            "on one thread, timed by this process's CPU time. Both sides compute the model's "
            "vectors (transformer, mean pooling, normalisation; they agree to a cosine above "
            "0.9999), on the same chunks of texts: sentence-transformers pads each batch to its "
            f"longest text, so its dense layers carry {r['baseline_dense_tokens']:,} tokens; "
            f"gradeflow's run on the {r['embed_dense_tokens']:,} real ones, and only its "
            "attention sees padding (batches by token count)."
        )
    return "\n".join([*lines, ""])


# -- the command ----------------------------------------------------------------------------------


def rag_command(
    credentials: Annotated[int, typer.Option(min=1000, help="Catalog size.")] = 100_000,
    queries: Annotated[int, typer.Option(min=10, help="Held-out query vectors.")] = 300,
    sentences_count: Annotated[
        int, typer.Option("--sentences", min=64, help="Texts for the embedding throughput.")
    ] = 1024,
    batch_size: Annotated[int, typer.Option(min=1, help="Embedding batch size.")] = 64,
    rounds: Annotated[int, typer.Option(min=1, help="Embedding rounds per side.")] = 5,
    embeddings: Annotated[
        bool, typer.Option("--embeddings/--no-embeddings", help="Measure local embedding too.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 42,
    reuse: Annotated[
        bool, typer.Option("--reuse", help="Keep the catalog of an earlier run of the same size.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on the last line.")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write/--no-write", help="Record the figures in BENCHMARKS.md.")
    ] = True,
) -> None:
    """Top-10 retrieval latency and recall over pgvector HNSW; local embedding throughput.

    Runs in a database gradeflow_bench_rag next to the configured (or embedded) one.
    """
    command = "gradeflow " + shlex.join(sys.argv[1:])
    when = datetime.now(UTC)
    progress: Progress = lambda line: err.print(line, highlight=False)  # noqa: E731
    result: dict[str, Any] = {"load_avg_start": round(os.getloadavg()[0], 2)}
    with stack() as resolved:
        try:
            database_url = bench_database_url(resolved.database_url, BENCH_DATABASE)
            result["embedded_database"] = resolved.embedded_database
            result.update(
                retrieval_phase(database_url, credentials, queries, seed, reuse, progress)
            )
            box = machine(database_url, resolved.redis_url)
        except BenchError as exc:
            raise fail(str(exc)) from None
    if embeddings:
        progress(f"local embedding: {sentences_count} sentences, batch {batch_size}")
        result.update(embedding_phase(sentences_count, batch_size, rounds, progress))
    else:
        result.update(embed_sentences_per_s=None, baseline_sentences_per_s=None, embed_ratio=None)
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    body = section(result, box, command, when)
    report(body, SECTION_HEADING, result, box, command, write=write, as_json=as_json)
