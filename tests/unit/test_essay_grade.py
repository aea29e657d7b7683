"""The model's answer: parsed strictly, clamped to each criterion, totalled in code."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from gradeflow.jobs.essays.grade import (
    SchemaViolation,
    criterion_scores,
    parse_answer,
    points,
)
from gradeflow.jobs.rubrics import EssayRubric

RUBRIC = EssayRubric.model_validate(
    {
        "criteria": [
            {
                "name": "accuracy",
                "description": "Is it right?",
                "levels": [
                    {"score": 0, "descriptor": "wrong"},
                    {"score": 5, "descriptor": "right"},
                ],
            },
            {
                "name": "clarity",
                "description": "Is it clear?",
                "levels": [
                    {"score": 1, "descriptor": "muddled"},
                    {"score": 3, "descriptor": "clear"},
                ],
            },
        ]
    }
)


def answer(accuracy: Any = 4, clarity: Any = 2, **extra: Any) -> str:
    return json.dumps(
        {
            "criteria": {
                "accuracy": {"rationale": "mostly right", "score": accuracy},
                "clarity": {"rationale": "clear enough", "score": clarity},
            },
            "injection_suspected": False,
            **extra,
        }
    )


def test_a_valid_answer_is_parsed() -> None:
    parsed = parse_answer(answer(), RUBRIC)
    assert parsed.criteria == {"accuracy": ("mostly right", 4), "clarity": ("clear enough", 2)}
    assert parsed.injection_suspected is False


def test_scores_are_clamped_to_each_criterion_range() -> None:
    parsed = parse_answer(answer(accuracy=9, clarity=-4), RUBRIC)
    accuracy, clarity = criterion_scores(RUBRIC, parsed.criteria)

    assert (accuracy.score, accuracy.proposed, accuracy.clamped) == (5, 9, True)
    assert (clarity.score, clarity.proposed, clarity.clamped) == (1, -4, True)
    assert accuracy.as_json()["clamped"] is True


def test_points_are_the_share_of_maximum_levels_times_the_weight() -> None:
    scores = criterion_scores(RUBRIC, parse_answer(answer(4, 2), RUBRIC).criteria)
    # (4 + 2) / (5 + 3) x 2
    assert points(scores, Decimal(2)) == Decimal("1.50")
    full = criterion_scores(RUBRIC, parse_answer(answer(100, 100), RUBRIC).criteria)
    assert points(full, Decimal("1.5")) == Decimal("1.50")


def test_the_models_own_total_is_ignored() -> None:
    parsed = parse_answer(answer(1, 1, total=100, score=100), RUBRIC)
    assert points(criterion_scores(RUBRIC, parsed.criteria), Decimal(1)) == Decimal("0.25")


def test_an_integral_float_is_an_integer() -> None:
    assert parse_answer(answer(accuracy=3.0), RUBRIC).criteria["accuracy"][1] == 3


def test_criteria_the_rubric_lacks_are_ignored() -> None:
    content = json.loads(answer())
    content["criteria"]["style"] = {"rationale": "nice", "score": 9}
    assert set(parse_answer(json.dumps(content), RUBRIC).criteria) == {"accuracy", "clarity"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"criteria": {"accuracy"', "not JSON"),
        (None, "not JSON"),
        ("[]", "no criteria object"),
        (json.dumps({"criteria": "good", "injection_suspected": False}), "no criteria object"),
        (answer(injection_suspected="no"), "not a boolean"),
        (answer(accuracy="four"), "not an integer"),
        (answer(accuracy=True), "not an integer"),
        (answer(accuracy=3.5), "not an integer"),
        (json.dumps({"criteria": {}, "injection_suspected": False}), "'accuracy' is missing"),
    ],
)
def test_a_schema_breaking_answer_is_rejected(content: str | None, reason: str) -> None:
    with pytest.raises(SchemaViolation, match=reason):
        parse_answer(content, RUBRIC)


def test_a_rationale_must_be_text() -> None:
    content = json.loads(answer())
    content["criteria"]["clarity"]["rationale"] = 7
    with pytest.raises(SchemaViolation, match="rationale"):
        parse_answer(json.dumps(content), RUBRIC)
