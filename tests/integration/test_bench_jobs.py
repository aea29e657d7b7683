"""`gradeflow bench jobs` core, tiny: every phase on real processes, sane figures."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gradeflow.ops.bench import SECTION_HEADING, run_jobs_benchmark, section
from gradeflow.ops.bench_support import write_section

KEYS = (
    "raw_jobs_per_s",
    "tracked_jobs_per_s",
    "ratio",
    "pickup_p50_ms",
    "pickup_p95_ms",
    "pickup_p99_ms",
    "recovery_s",
)


@pytest.mark.timeout(120)
def test_the_benchmark_measures_both_sides_latency_and_recovery(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    result = run_jobs_benchmark(
        database_url, redis_url, jobs=200, threads=4, latency_seconds=2.0, warmup_seconds=0.5
    )
    elapsed = time.monotonic() - started

    figures = json.loads(json.dumps(result))  # what --json prints
    assert all(isinstance(figures[key], int | float) for key in KEYS), figures
    assert figures["raw_jobs_per_s"] > 0
    assert figures["tracked_jobs_per_s"] > 0
    assert figures["ratio"] == pytest.approx(
        figures["tracked_jobs_per_s"] / figures["raw_jobs_per_s"], abs=0.01
    )
    assert 0 <= figures["pickup_p50_ms"] <= figures["pickup_p95_ms"] <= figures["pickup_p99_ms"]
    assert figures["latency_jobs"] > 0
    # Default lease (15 s), renewed every 4 s: the orphans come back between the two.
    assert 0 < figures["recovery_s"] < 60
    assert figures["recovery_jobs"] == 4
    assert elapsed < 60, f"the tiny benchmark took {elapsed:.0f} s"

    box = {
        "nproc": "2", "memory": "1 GiB", "cpu": "test CPU", "python": "3",
        "postgres": "18", "broker": "Redis 7", "host": "test",
    }  # fmt: skip
    record = tmp_path / "BENCHMARKS.md"
    record.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    body = section(result, box, "gradeflow bench jobs --jobs 200", datetime.now(UTC))
    write_section(record, body, SECTION_HEADING)
    write_section(record, body, SECTION_HEADING)  # a second run replaces its section
    text = record.read_text()
    assert text.count(SECTION_HEADING) == 1
    assert "## Other\n\nkept" in text
