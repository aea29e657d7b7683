"""Rule scoring of one answer: points, explanation and the rule that fired."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from gradeflow.db.scores import AnsweredQuestion
from gradeflow.jobs.answers import parse_answer
from gradeflow.jobs.errors import PermanentError
from gradeflow.jobs.rubrics import MultipleChoiceRubric, ProfileRubric, parse_rubric
from gradeflow.jobs.rules import RuleResult, rule_score, score_answer

CHOICES = ["a", "b", "c", "d", "e"]


@dataclass(frozen=True)
class Case:
    name: str
    question_type: str
    rubric: dict[str, Any]
    answer: Any
    weight: str
    points: str
    rule: str
    #: Every one of these appears in the explanation.
    says: tuple[str, ...]
    choices: tuple[str, ...] | None = tuple(CHOICES)


def multi(correct: list[str], negative_marking: float = 0) -> dict[str, Any]:
    return {"correct": correct, "multi_select": True, "negative_marking": negative_marking}


MAPPING = {"none": 0, "weekly": 55, "daily": 90}

CASES = [
    Case(
        "single select, right",
        "multiple_choice", {"correct": ["a"]}, "a", "1.5",
        "1.50", "multiple_choice.single_select", ("Chose a", "1.50 of 1.50 points"),
    ),
    Case(
        "single select, wrong",
        "multiple_choice", {"correct": ["a"]}, "b", "1.5",
        "0.00", "multiple_choice.single_select", ("Chose b", "correct choice is a", "0.00 of 1.50"),
    ),
    Case(
        "single select, wrong with negative marking: floored at 0",
        "multiple_choice", {"correct": ["a"], "negative_marking": 0.25}, "b", "1",
        "0.00", "multiple_choice.single_select", ("0.00 of 1.00", "0.25", "never scores below 0"),
    ),
    Case(
        "multi select, every correct choice",
        "multiple_choice", multi(["a", "b", "c"]), ["c", "a", "b"], "2",
        "2.00", "multiple_choice.partial_credit", ("3 of 3 correct", "no wrong", "2.00 of 2.00"),
    ),
    Case(
        "multi select, partial credit",
        "multiple_choice", multi(["a", "b", "c"]), ["a", "b"], "2",
        "1.33", "multiple_choice.partial_credit", ("2 of 3 correct", "1.33 of 2.00"),
    ),
    Case(
        "multi select, a wrong choice without negative marking costs nothing",
        "multiple_choice", multi(["a", "b", "c"]), ["a", "d"], "2",
        "0.67", "multiple_choice.partial_credit",
        ("1 of 3 correct", "1 wrong choice", "no negative marking", "0.67 of 2.00"),
    ),
    Case(
        "multi select, negative marking",
        "multiple_choice", multi(["a", "b", "c"], 0.5), ["a", "b", "d"], "2",
        "1.00", "multiple_choice.partial_credit",
        ("2 of 3 correct", "1 wrong choice", "-0.5 each", "(2 - 0.5 x 1) / 3", "50%",
         "1.00 of 2.00"),
    ),
    Case(
        "multi select, negative marking clamped at 0",
        "multiple_choice", multi(["a", "b", "c"], 1), ["a", "d", "e"], "2",
        "0.00", "multiple_choice.partial_credit",
        ("1 of 3 correct", "2 wrong choices", "floored at 0", "0.00 of 2.00"),
    ),
    Case(
        "multi select, nothing selected",
        "multiple_choice", multi(["a", "b"]), [], "1",
        "0.00", "multiple_choice.partial_credit", ("0 of 2 correct", "0.00 of 1.00"),
    ),
    Case(
        "weight scales the fraction; half a cent rounds up",
        "multiple_choice", multi(["a", "b"]), ["a"], "0.25",
        "0.13", "multiple_choice.partial_credit", ("1 of 2 correct", "0.13 of 0.25"),
    ),
    Case(
        "profile, mapped choice",
        "profile", {"skill": "sql", "mapping": MAPPING}, "daily", "1",
        "0.90", "profile.mapping", ("daily", "sql level 90 of 100", "0.90 of 1.00"),
        tuple(MAPPING),
    ),
    Case(
        "profile, mean of mapped choices",
        "profile", {"skill": "sql", "mapping": MAPPING, "multi_select": True},
        ["daily", "weekly"], "3",
        "2.18", "profile.mapping_mean",
        ("daily (90), weekly (55)", "mean", "sql level 72.5 of 100", "2.18 of 3.00"),
        tuple(MAPPING),
    ),
    Case(
        "profile, linear on the scale",
        "profile", {"skill": "python", "scale": {"min": 1, "max": 10}}, 7, "2",
        "1.33", "profile.scale",
        ("7 on a scale of 1 to 10", "python level 66.67 of 100", "1.33 of 2.00"), None,
    ),
    Case(
        "profile, bottom of the scale",
        "profile", {"skill": "python", "scale": {"min": -5, "max": 5}}, -5, "2",
        "0.00", "profile.scale", ("python level 0 of 100", "0.00 of 2.00"), None,
    ),
    Case(
        "profile, top of the scale",
        "profile", {"skill": "python", "scale": {"min": 0, "max": 4}}, 4.0, "1.5",
        "1.50", "profile.scale", ("python level 100 of 100", "1.50 of 1.50"), None,
    ),
]  # fmt: skip


def scored(case: Case) -> RuleResult:
    choices = None if case.choices is None else list(case.choices)
    rubric = parse_rubric(case.question_type, case.rubric, choices)
    assert isinstance(rubric, MultipleChoiceRubric | ProfileRubric)
    return score_answer(rubric, parse_answer(rubric, choices, case.answer), Decimal(case.weight))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_points_rule_and_explanation(case: Case) -> None:
    result = scored(case)

    assert result.points == Decimal(case.points)
    assert result.points.as_tuple().exponent == -2
    assert result.rules_applied["rule"] == case.rule
    assert result.rules_applied["points"] == float(case.points)
    for words in case.says:
        assert words in result.explanation, result.explanation


def test_multiple_choice_records_what_was_right_wrong_and_missed() -> None:
    result = scored(CASES[6])

    assert result.rules_applied == {
        "rule": "multiple_choice.partial_credit",
        "selected": ["a", "b", "d"],
        "correct": ["a", "b", "c"],
        "right": ["a", "b"],
        "wrong": ["d"],
        "missed": ["c"],
        "negative_marking": 0.5,
        "fraction": 0.5,
        "weight": 2.0,
        "points": 1.0,
    }


@pytest.mark.parametrize(
    ("case", "skill", "level"),
    [(CASES[10], "sql", 90.0), (CASES[11], "sql", 72.5), (CASES[12], "python", 66.67)],
    ids=["mapping", "mapping_mean", "scale"],
)
def test_profile_records_skill_and_level(case: Case, skill: str, level: float) -> None:
    applied = scored(case).rules_applied

    assert (applied["skill"], applied["level"]) == (skill, level)


ESSAY_RUBRIC = {
    "criteria": [
        {
            "name": "accuracy",
            "description": "Is it right?",
            "levels": [{"score": 0, "descriptor": "wrong"}, {"score": 5, "descriptor": "right"}],
        }
    ]
}


def answered(rubric: Any, answer: Any, question_type: str = "multiple_choice") -> AnsweredQuestion:
    return AnsweredQuestion(
        assessment_id=uuid.uuid4(),
        snapshot_id=uuid.uuid4(),
        question_id=uuid.uuid4(),
        question_type=question_type,
        prompt="Which?",
        rubric=rubric,
        choices=[{"id": "a", "text": "A"}, {"id": "b", "text": "B"}],
        weight=Decimal("2.00"),
        version="1",
        answer=answer,
    )


def test_rule_score_of_a_stored_answer() -> None:
    question = answered({"correct": ["b"], "skills": ["sql"]}, "b")

    new = rule_score(question)

    assert (new.assessment_id, new.snapshot_id) == (question.assessment_id, question.snapshot_id)
    assert new.score == Decimal("2.00")
    assert new.rules_applied["rule"] == "multiple_choice.single_select"


@pytest.mark.parametrize(
    ("rubric", "answer", "question_type", "complaint"),
    [
        ({"correct": "a"}, "a", "multiple_choice", "correct"),
        ({"correct": ["z"]}, "a", "multiple_choice", "not among the question's choice ids"),
        ({"correct": ["a"]}, ["a"], "multiple_choice", "takes one choice id"),
        (ESSAY_RUBRIC, "An index is a b-tree.", "essay", "not scored by rules"),
    ],
    ids=["malformed rubric", "rubric names no choice", "answer of the wrong shape", "an essay"],
)
def test_an_unscorable_question_is_a_permanent_error_naming_it(
    rubric: Any, answer: Any, question_type: str, complaint: str
) -> None:
    question = answered(rubric, answer, question_type)

    with pytest.raises(PermanentError) as raised:
        rule_score(question)

    assert str(question.question_id) in str(raised.value)
    assert complaint in str(raised.value)
