"""recall@k and nDCG@k on rankings small enough to check by hand, and the query text."""

from __future__ import annotations

import math

import pytest

from gradeflow.jobs.recommendations.quality import (
    LabelledCredential,
    LabelledQuery,
    check_labels,
    dcg_at_k,
    ndcg_at_k,
    recall_at_k,
    search_text,
)


def test_recall_counts_hits_over_the_relevant_ones_when_fewer_than_k() -> None:
    # 2 of the 3 relevant credentials are in the top 5.
    assert recall_at_k(["a", "b", "c", "d", "e"], {"a": 3, "c": 1, "x": 2}, k=5) == pytest.approx(
        2 / 3
    )


def test_recall_is_over_k_when_more_than_k_are_relevant() -> None:
    relevant = {key: 1 for key in "abcdefg"}
    # 4 relevant in the top 5, 7 relevant in all: 4 / min(5, 7).
    assert recall_at_k(["a", "z", "b", "c", "d"], relevant, k=5) == pytest.approx(4 / 5)


def test_recall_ignores_grades_and_what_comes_after_k() -> None:
    assert recall_at_k(["z", "y", "x", "w", "v", "a"], {"a": 3}, k=5) == 0.0
    assert recall_at_k(["a"], {"a": 1}, k=5) == recall_at_k(["a"], {"a": 3}, k=5) == 1.0


def test_recall_of_nothing_relevant_is_zero() -> None:
    assert recall_at_k(["a", "b"], {}, k=5) == 0.0


def test_dcg_gains_two_to_the_grade_minus_one_discounted_by_log2_of_rank_plus_one() -> None:
    # (2^3 - 1) / log2(2) + 0 / log2(3) + (2^2 - 1) / log2(4) = 7 + 0 + 1.5
    assert dcg_at_k([3, 0, 2], k=5) == pytest.approx(8.5)
    assert dcg_at_k([3, 0, 2], k=1) == pytest.approx(7.0)


def test_ndcg_of_the_ideal_ordering_is_one() -> None:
    assert ndcg_at_k(["a", "b", "c"], {"a": 3, "b": 2, "c": 1}, k=5) == pytest.approx(1.0)


def test_ndcg_by_hand() -> None:
    # Ranked c (grade 1) then a (grade 3):   1/1 + 7/log2(3)
    # Ideal a then c:                        7/1 + 1/log2(3)
    expected = (1 + 7 / math.log2(3)) / (7 + 1 / math.log2(3))
    assert ndcg_at_k(["c", "a", "z"], {"a": 3, "c": 1}, k=5) == pytest.approx(expected)
    assert expected == pytest.approx(0.7098, abs=1e-4)


def test_ndcg_ideal_takes_only_the_best_k_grades() -> None:
    relevant = {"a": 3, "b": 3, "c": 1}
    # With k = 2 the ideal is the two grade-3 credentials, 7 + 7 / log2(3); the ranking
    # earns 7 for a at rank 1 and nothing for z at rank 2 (b, at rank 3, is past k).
    assert ndcg_at_k(["a", "z", "b"], relevant, k=2) == pytest.approx(7 / (7 + 7 / math.log2(3)))


def test_ndcg_is_zero_with_no_relevant_credential_retrieved_or_judged() -> None:
    assert ndcg_at_k(["x", "y"], {"a": 2}, k=5) == 0.0
    assert ndcg_at_k(["x", "y"], {}, k=5) == 0.0


def test_the_query_is_the_products_text_for_the_users_gaps() -> None:
    query = LabelledQuery(
        id="q",
        role="Data analyst",
        skills_profile={"sql": 80, "data_visualization": 70, "excel": 60},
        skill_scores={"sql": 20, "data_visualization": 60, "excel": 90},
        relevant={"a": 3},
    )
    assert search_text(query) == "Learn sql, data visualization.\nSkills: sql, data visualization"


def test_labels_must_name_known_credentials_with_grades_one_to_three() -> None:
    credentials = [LabelledCredential("a", "A", None, [])]

    def query(relevant: dict[str, int]) -> LabelledQuery:
        return LabelledQuery("q", "r", {"sql": 80}, {}, relevant)

    check_labels(credentials, [query({"a": 3})])
    with pytest.raises(ValueError, match="unknown credential keys"):
        check_labels(credentials, [query({"b": 3})])
    with pytest.raises(ValueError, match="graded 1 to 3"):
        check_labels(credentials, [query({"a": 4})])
    with pytest.raises(ValueError, match="unique"):
        check_labels(credentials * 2, [])
