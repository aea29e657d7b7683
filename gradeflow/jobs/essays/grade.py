"""From criterion scores to points, and from a model's answer to criterion scores.

The model's numbers are never trusted as they come: each criterion is clamped
to its levels' range, and the total is computed here, never read from the
model. An answer that is not the JSON the schema asks for is rejected with
:class:`SchemaViolation`, which the job retries (and, repeated, gives up on).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from gradeflow.jobs.essays.prompt import criterion_range
from gradeflow.jobs.rubrics import EssayRubric

CENT = Decimal("0.01")


class SchemaViolation(Exception):
    """The model's answer breaks the response schema; the message says how."""


@dataclass(frozen=True)
class CriterionScore:
    name: str
    #: The score used: the proposed one clamped to [minimum, maximum].
    score: int
    #: What the grader proposed before clamping.
    proposed: int
    minimum: int
    maximum: int
    rationale: str

    @property
    def clamped(self) -> bool:
        return self.score != self.proposed

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "clamped": self.clamped}


@dataclass(frozen=True)
class ModelAnswer:
    """The parts of a schema-valid answer: per criterion (rationale, score), and the flag."""

    criteria: dict[str, tuple[str, int]]
    injection_suspected: bool


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def criterion_scores(
    rubric: EssayRubric, proposed: dict[str, tuple[str, int]]
) -> list[CriterionScore]:
    """Each of the rubric's criteria with its proposed (rationale, score), clamped."""
    scores = []
    for criterion in rubric.criteria:
        rationale, value = proposed[criterion.name]
        low, high = criterion_range(criterion)
        scores.append(
            CriterionScore(criterion.name, clamp(value, low, high), value, low, high, rationale)
        )
    return scores


def points(scores: Sequence[CriterionScore], weight: Decimal) -> Decimal:
    """The question's points: sum of scores / sum of maximum levels x its weight."""
    possible = sum(s.maximum for s in scores)
    if possible <= 0:
        return Decimal(0)
    earned = Decimal(sum(s.score for s in scores))
    return (earned / Decimal(possible) * weight).quantize(CENT, ROUND_HALF_UP)


def parse_answer(content: str | None, rubric: EssayRubric) -> ModelAnswer:
    """The model's message content as a :class:`ModelAnswer`, or :class:`SchemaViolation`.

    Criteria the rubric does not have are ignored; a missing one is a violation.
    """
    try:
        data = json.loads(content or "")
    except ValueError as exc:
        raise SchemaViolation(f"the answer is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("criteria"), dict):
        raise SchemaViolation("the answer has no criteria object")
    flag = data.get("injection_suspected")
    if not isinstance(flag, bool):
        raise SchemaViolation("injection_suspected is not a boolean")
    criteria = {c.name: parse_criterion(data["criteria"], c.name) for c in rubric.criteria}
    return ModelAnswer(criteria, flag)


def parse_criterion(criteria: dict[str, Any], name: str) -> tuple[str, int]:
    item = criteria.get(name)
    if not isinstance(item, dict):
        raise SchemaViolation(f"criterion {name!r} is missing")
    rationale, score = item.get("rationale"), item.get("score")
    if isinstance(score, float) and score.is_integer():
        score = int(score)  # some compatible servers write 3 as 3.0
    # bool is an int to Python, never to the schema.
    if not isinstance(score, int) or isinstance(score, bool):
        raise SchemaViolation(f"criterion {name!r}: score is not an integer")
    if not isinstance(rationale, str):
        raise SchemaViolation(f"criterion {name!r}: rationale is not a string")
    return rationale, score
