"""Rule scoring: multiple-choice and profile answers, scored by their rubric alone.

Every score is points earned: the fraction of the question earned (0 to 1)
times the question's weight, in ``Decimal`` and rounded half up to cents.

Multiple choice
  ``fraction = (correct selected - negative_marking x wrong selected) / correct choices``,
  clamped to [0, 1]. ``negative_marking`` is counted in correct choices: 0.5
  means a wrong pick cancels half of a right one. Correct choices left
  unselected earn nothing and cost nothing. A single-select question is the
  same formula with one correct choice: the right choice earns the full
  weight, any other earns 0.

  Floor at 0 per question: negative marking can take back what a question's
  right picks earned, never points earned on other questions. So a wrong
  single-select answer scores 0 with or without negative marking (the
  explanation says so), and a multi-select answer with more wrong than right
  picks scores 0.

Profile (a self-report of one skill)
  The answer's level (0-100) comes from the rubric's ``mapping`` (one key), the
  mean of the mapped levels (``multi_select``: a list of keys), or the answer's
  position on the ``scale`` (``min`` is 0, ``max`` is 100). Points are
  ``level / 100 x weight``; ``rules_applied`` records the skill and the level.

:func:`score_rules` is the ``score_rules`` job: it scores every rule-scored
answer of one assessment and writes all of them in one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import structlog
from pydantic import ValidationError

from gradeflow.db.scores import (
    AnsweredQuestion,
    NewRuleScore,
    answered_questions,
    upsert_rule_scores,
)
from gradeflow.jobs.answers import Answer, ChoiceAnswer, InvalidAnswer, ScaleAnswer, parse_answer
from gradeflow.jobs.errors import PermanentError
from gradeflow.jobs.pipeline import RULE_QUESTION_TYPES, SCORE_RULES, advance
from gradeflow.jobs.registry import JobContext, JobType, register
from gradeflow.jobs.rubrics import MultipleChoiceRubric, ProfileRubric, parse_rubric

log = structlog.get_logger(__name__)

CENT = Decimal("0.01")
ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class RuleResult:
    """One answer's score: points earned, why in words, and the rule that fired."""

    points: Decimal
    explanation: str
    rules_applied: dict[str, Any]


# -- pure scoring ------------------------------------------------------------------


def score_answer(
    rubric: MultipleChoiceRubric | ProfileRubric, answer: Answer, weight: Decimal
) -> RuleResult:
    """The score of ``answer`` under ``rubric`` (both already parsed) on a ``weight`` question."""
    if isinstance(rubric, MultipleChoiceRubric) and isinstance(answer, ChoiceAnswer):
        return score_multiple_choice(rubric, answer, weight)
    if isinstance(rubric, ProfileRubric) and isinstance(answer, ChoiceAnswer | ScaleAnswer):
        return score_profile(rubric, answer, weight)
    raise TypeError(f"a {type(rubric).__name__} cannot score a {type(answer).__name__}")


def score_multiple_choice(
    rubric: MultipleChoiceRubric, answer: ChoiceAnswer, weight: Decimal
) -> RuleResult:
    right = [c for c in answer.selected if c in rubric.correct]
    wrong = [c for c in answer.selected if c not in rubric.correct]
    missed = [c for c in rubric.correct if c not in answer.selected]
    penalty = decimal(rubric.negative_marking)
    raw = (len(right) - penalty * len(wrong)) / len(rubric.correct)
    fraction = min(max(raw, ZERO), ONE)
    points = cents(fraction * weight)
    explain = explain_multi_select if rubric.multi_select else explain_single_select
    return RuleResult(
        points=points,
        explanation=explain(rubric, right, wrong, raw, points, weight),
        rules_applied={
            "rule": (
                "multiple_choice.partial_credit"
                if rubric.multi_select
                else "multiple_choice.single_select"
            ),
            "selected": list(answer.selected),
            "correct": list(rubric.correct),
            "right": right,
            "wrong": wrong,
            "missed": missed,
            "negative_marking": rubric.negative_marking,
            "fraction": float(fraction.quantize(Decimal("0.0001"), ROUND_HALF_UP)),
            "weight": float(weight),
            "points": float(points),
        },
    )


def explain_single_select(
    rubric: MultipleChoiceRubric,
    right: list[str],
    wrong: list[str],
    raw: Decimal,
    points: Decimal,
    weight: Decimal,
) -> str:
    if right:
        return f"Chose {right[0]}, the correct choice: {of(points, weight)}."
    floored = (
        f" (negative marking of {rubric.negative_marking:g} is floored: a question never"
        " scores below 0)"
        if raw < 0
        else ""
    )
    answer_key = rubric.correct[0]
    return f"Chose {wrong[0]}; the correct choice is {answer_key}: {of(points, weight)}{floored}."


def explain_multi_select(
    rubric: MultipleChoiceRubric,
    right: list[str],
    wrong: list[str],
    raw: Decimal,
    points: Decimal,
    weight: Decimal,
) -> str:
    picked = f"{len(right)} of {len(rubric.correct)} correct choices selected"
    if not wrong:
        return f"{picked}, no wrong choice: {of(points, weight)}."
    wrongs = f"{len(wrong)} wrong choice{'s' if len(wrong) > 1 else ''}"
    if not rubric.negative_marking:
        return f"{picked}, {wrongs} (no negative marking): {of(points, weight)}."
    formula = f"({len(right)} - {rubric.negative_marking:g} x {len(wrong)}) / {len(rubric.correct)}"
    floored = ", floored at 0" if raw < 0 else ""
    return (
        f"{picked}, {wrongs} (-{rubric.negative_marking:g} each): {formula}{floored}"
        f" = {percent(max(raw, ZERO))} of the question, {of(points, weight)}."
    )


def score_profile(
    rubric: ProfileRubric, answer: ChoiceAnswer | ScaleAnswer, weight: Decimal
) -> RuleResult:
    if isinstance(answer, ScaleAnswer):
        rule, level, reason = scale_level(rubric, answer)
    elif answer.multi:
        rule, level, reason = mean_mapped_level(rubric, answer)
    else:
        rule, level, reason = mapped_level(rubric, answer)
    points = cents(level / HUNDRED * weight)
    shown = cents(level)
    return RuleResult(
        points=points,
        explanation=f"{reason}: {rubric.skill} level {number(shown)} of 100, {of(points, weight)}.",
        rules_applied={
            "rule": rule,
            "skill": rubric.skill,
            "level": float(shown),
            "answer": answer.value if isinstance(answer, ScaleAnswer) else list(answer.selected),
            "weight": float(weight),
            "points": float(points),
        },
    )


def mapped_level(rubric: ProfileRubric, answer: ChoiceAnswer) -> tuple[str, Decimal, str]:
    assert rubric.mapping is not None
    [choice] = answer.selected
    return "profile.mapping", decimal(rubric.mapping[choice]), f"Answered {choice}"


def mean_mapped_level(rubric: ProfileRubric, answer: ChoiceAnswer) -> tuple[str, Decimal, str]:
    assert rubric.mapping is not None
    levels = [decimal(rubric.mapping[choice]) for choice in answer.selected]
    mean = sum(levels, ZERO) / len(levels)
    listed = ", ".join(
        f"{c} ({number(level)})" for c, level in zip(answer.selected, levels, strict=True)
    )
    return "profile.mapping_mean", mean, f"Answered {listed}, the mean of their levels"


def scale_level(rubric: ProfileRubric, answer: ScaleAnswer) -> tuple[str, Decimal, str]:
    assert rubric.scale is not None
    low, high = decimal(rubric.scale.min), decimal(rubric.scale.max)
    level = (decimal(answer.value) - low) / (high - low) * HUNDRED
    reason = f"Answered {answer.value:g} on a scale of {number(low)} to {number(high)}"
    return "profile.scale", level, reason


def decimal(number: float) -> Decimal:
    """``number`` as written (0.1 stays 0.1, not its binary approximation)."""
    return Decimal(str(number))


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, ROUND_HALF_UP)


def of(points: Decimal, weight: Decimal) -> str:
    return f"{points:.2f} of {weight:.2f} points"


def percent(fraction: Decimal) -> str:
    return f"{number(fraction * HUNDRED)}%"


def number(amount: Decimal) -> str:
    """``amount`` to at most two decimals, without trailing zeros: 90, 66.67, 0.5."""
    return f"{cents(amount):.2f}".rstrip("0").rstrip(".")


# -- the job -------------------------------------------------------------------------


def rule_score(question: AnsweredQuestion) -> NewRuleScore:
    """Score one answered question; :class:`PermanentError` when its rubric or answer
    cannot be applied (intake validates both, so only a corrupted row gets here)."""
    try:
        choice_ids = None if question.choices is None else [c["id"] for c in question.choices]
        rubric = parse_rubric(question.question_type, question.rubric, choice_ids)
        answer = parse_answer(rubric, choice_ids, question.answer)
        if not isinstance(rubric, MultipleChoiceRubric | ProfileRubric):
            raise TypeError(f"{question.question_type} questions are not scored by rules")
        result = score_answer(rubric, answer, question.weight)
    except (ValidationError, InvalidAnswer, KeyError, TypeError) as error:
        raise PermanentError(
            f"question {question.question_id} (snapshot {question.snapshot_id},"
            f" {question.question_type}) cannot be scored by rules: {error}"
        ) from error
    return NewRuleScore(
        assessment_id=question.assessment_id,
        snapshot_id=question.snapshot_id,
        score=result.points,
        explanation=result.explanation,
        rules_applied=result.rules_applied,
    )


def assessment_of(ctx: JobContext) -> uuid.UUID:
    if ctx.assessment_id is not None:
        return ctx.assessment_id
    try:
        return uuid.UUID(str(ctx.payload["assessment_id"]))
    except (KeyError, ValueError) as error:
        raise PermanentError(f"the job names no assessment: {error}") from error


def score_rules(ctx: JobContext) -> None:
    """Score every multiple-choice and profile answer of the job's assessment.

    All or nothing: one unscorable answer fails the job without writing any score.
    """
    assessment_id = assessment_of(ctx)
    with ctx.engine.begin() as conn:
        questions = answered_questions(conn, assessment_id, question_types=RULE_QUESTION_TYPES)
        upsert_rule_scores(conn, [rule_score(q) for q in questions])
    log.info("rule scores written", assessment_id=str(assessment_id), questions=len(questions))


SCORE_RULES_JOB = register(
    JobType(name=SCORE_RULES, handler=score_rules, queue="cpu", on_finish=advance)
)
