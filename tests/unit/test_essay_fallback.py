"""The offline scorer: deterministic, within the rubric's ranges, labelled as a fallback."""

from __future__ import annotations

from gradeflow.jobs.essays.fallback import FALLBACK_MODEL, grade_offline, stem, words
from gradeflow.jobs.results import FALLBACK_MODEL_PREFIX
from gradeflow.jobs.rubrics import EssayRubric

RUBRIC = EssayRubric.model_validate(
    {
        "criteria": [
            {
                "name": "accuracy",
                "description": "Explains how an index speeds up lookups.",
                "levels": [
                    {"score": 0, "descriptor": "Wrong or missing."},
                    {"score": 5, "descriptor": "Names the b-tree structure and sorted keys."},
                ],
                "keywords": ["b-tree", "sorted keys", "write cost"],
            },
            {
                "name": "tradeoffs",
                "description": "Discusses the costs of maintaining indexes.",
                "levels": [
                    {"score": 1, "descriptor": "No costs."},
                    {"score": 4, "descriptor": "Storage and write overhead explained."},
                ],
            },
        ]
    }
)
GOOD = (
    "An index speeds up lookups: the database keeps sorted keys in a b-tree structure, so it "
    "finds a row in a few page reads instead of scanning the table. Indexes are not free: "
    "every insert pays a write cost to maintain them, and they take storage, so the overhead "
    "of maintaining indexes must be weighed against the lookups they speed up for each query."
)
POOR = (
    "Databases are useful and many companies use them every day for their business needs. "
    "They store information for applications and people like them a lot in general."
)


def total(essay: str) -> int:
    scores, _ = grade_offline(RUBRIC, essay)
    return sum(s.score for s in scores)


def test_the_same_essay_always_gets_the_same_scores() -> None:
    assert grade_offline(RUBRIC, GOOD) == grade_offline(RUBRIC, GOOD)


def test_covering_the_rubric_scores_higher() -> None:
    assert total(GOOD) > total(POOR)
    good, _ = grade_offline(RUBRIC, GOOD)
    assert [s.score for s in good] == [s.maximum for s in good]


def test_scores_stay_within_each_criterion_range() -> None:
    for essay in (GOOD, POOR, "", "b-tree"):
        for score in grade_offline(RUBRIC, essay)[0]:
            assert score.minimum <= score.score <= score.maximum
    poor, _ = grade_offline(RUBRIC, "")
    assert [s.score for s in poor] == [0, 1]


def test_a_bare_list_of_keywords_is_not_an_essay() -> None:
    stuffed, _ = grade_offline(RUBRIC, "b-tree sorted keys write cost")
    assert stuffed[0].score < stuffed[0].maximum


def test_coverage_is_explained_and_labelled_as_fallback() -> None:
    scores, details = grade_offline(RUBRIC, GOOD)
    assert details[0]["keywords_found"] == ["b-tree", "sorted keys", "write cost"]
    assert scores[0].rationale.startswith("Offline fallback, not an LLM")
    assert FALLBACK_MODEL.startswith(FALLBACK_MODEL_PREFIX)


def test_words_are_compared_lightly_stemmed() -> None:
    assert stem("indexes") == stem("index") == "index"
    assert words("B-Tree queries") == ["b", "tree", "query"]
