"""The pure figures of ``gradeflow bench essays``."""

from __future__ import annotations

from gradeflow.ops.bench_essays import over_limit, sustained_rate


def test_sustained_rate_leaves_out_the_first_and_last_tenth() -> None:
    # 100 completions, one every 10 ms, after a slow start and before a slow end.
    times = [0.0] * 10 + [1.0 + i * 0.01 for i in range(80)] + [5.0] * 10
    assert abs(sustained_rate(times) - 79 / 0.79) < 1e-6


def test_sustained_rate_of_too_few_completions_is_zero() -> None:
    assert sustained_rate([]) == 0.0
    assert sustained_rate([1.0, 1.0, 1.0]) == 0.0


def test_over_limit_counts_requests_with_the_limit_or_more_others_in_the_window() -> None:
    arrivals = [0.0, 1.0, 2.0, 59.0, 61.5]
    assert over_limit(arrivals, 3) == (1, 4)  # 59.0 has three others before it
    assert over_limit(arrivals, 4) == (0, 4)
