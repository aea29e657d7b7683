"""An assessment's result from its questions' scores: a pure function.

- ``total_score``: the points earned on graded questions (multiple choice and
  essays) as a percentage of their weights, 0-100. Profile questions are
  self-reports: they feed skills, never the total.
- ``skill_scores``: per skill, the weighted mean (by question weight) of the
  percentage earned on every question that measures it (a rubric's ``skills``,
  or a profile rubric's ``skill``), on the 0-100 scale of role skill targets.
- ``degraded``: some essay was graded by the offline fallback scorer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from gradeflow.db.assessments import QuestionResult

#: Prefix of the ``model`` an offline-graded essay records.
FALLBACK_MODEL_PREFIX = "fallback:"
GRADED_TYPES = ("multiple_choice", "essay")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Result:
    total_score: Decimal | None
    skill_scores: dict[str, float]
    degraded: bool


def compute_result(questions: Sequence[QuestionResult]) -> Result:
    scored = [q for q in questions if q.score is not None]
    graded = [q for q in scored if q.question_type in GRADED_TYPES]
    weights = sum((q.weight for q in graded), Decimal(0))
    total = (
        (sum((q.score or Decimal(0) for q in graded), Decimal(0)) / weights * 100).quantize(
            CENT, ROUND_HALF_UP
        )
        if weights > 0
        else None
    )
    return Result(
        total_score=total,
        skill_scores=skill_scores(scored),
        degraded=any((q.model or "").startswith(FALLBACK_MODEL_PREFIX) for q in questions),
    )


def skill_scores(questions: Sequence[QuestionResult]) -> dict[str, float]:
    earned: dict[str, Decimal] = {}
    weights: dict[str, Decimal] = {}
    for question in questions:
        percent = (question.score or Decimal(0)) / question.weight * 100
        for skill in skills_measured(question):
            earned[skill] = earned.get(skill, Decimal(0)) + percent * question.weight
            weights[skill] = weights.get(skill, Decimal(0)) + question.weight
    return {
        skill: float((earned[skill] / weights[skill]).quantize(CENT, ROUND_HALF_UP))
        for skill in sorted(earned)
    }


def skills_measured(question: QuestionResult) -> list[str]:
    rubric = question.rubric
    if question.question_type == "profile":
        return [rubric["skill"]]
    return list(rubric.get("skills", []))
