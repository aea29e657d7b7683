"""What an answer looks like for each question type, checked at intake and read by the scorers.

| question type | rubric | answer |
|---|---|---|
| ``multiple_choice`` | single select | a choice id: ``"b"`` |
| ``multiple_choice`` | ``multi_select`` | distinct choice ids, maybe none: ``["a", "c"]`` |
| ``essay`` | | text, 1 to :data:`MAX_ESSAY_CHARS` characters |
| ``profile`` | ``mapping`` | one of the mapping's keys: ``"daily"`` |
| ``profile`` | ``mapping`` + ``multi_select`` | a list of distinct keys (at least one) |
| ``profile`` | ``scale`` | a number within the scale: ``7`` |

:func:`parse_answer` is the one check; the API turns its ``InvalidAnswer`` into
a 422 naming the response, and the scorers call it again on the stored answer
(a snapshot is never edited, so it cannot fail there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradeflow.jobs.rubrics import EssayRubric, MultipleChoiceRubric, ProfileRubric, Rubric

#: The longest essay accepted, in characters (the prompt-injection check flags far less).
MAX_ESSAY_CHARS = 20_000


class InvalidAnswer(ValueError):
    """The answer does not have the shape its question needs; the message says why."""


@dataclass(frozen=True)
class ChoiceAnswer:
    """One or more choice (or mapping) ids, in the order given, without repeats."""

    selected: tuple[str, ...]
    multi: bool


@dataclass(frozen=True)
class EssayAnswer:
    text: str


@dataclass(frozen=True)
class ScaleAnswer:
    value: float


Answer = ChoiceAnswer | EssayAnswer | ScaleAnswer


def parse_answer(rubric: Rubric, choice_ids: list[str] | None, raw: Any) -> Answer:
    """``raw`` as the answer ``rubric``'s question takes, or :class:`InvalidAnswer`."""
    if isinstance(rubric, EssayRubric):
        return _essay(raw)
    if isinstance(rubric, MultipleChoiceRubric):
        return _choices(raw, choice_ids or [], multi=rubric.multi_select, allow_empty=True)
    if rubric.scale is not None:
        return _scale(raw, rubric)
    assert rubric.mapping is not None
    return _choices(raw, list(rubric.mapping), multi=rubric.multi_select, allow_empty=False)


def _essay(raw: Any) -> EssayAnswer:
    if not isinstance(raw, str):
        raise InvalidAnswer(f"an essay answer is text, not {_kind(raw)}")
    if not raw.strip():
        raise InvalidAnswer("an essay answer must not be empty")
    if len(raw) > MAX_ESSAY_CHARS:
        raise InvalidAnswer(f"an essay answer has at most {MAX_ESSAY_CHARS} characters")
    return EssayAnswer(raw)


def _choices(raw: Any, allowed: list[str], *, multi: bool, allow_empty: bool) -> ChoiceAnswer:
    listing = ", ".join(allowed)
    if multi:
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise InvalidAnswer(f"this question takes a list of choice ids ({listing})")
        if not raw and not allow_empty:
            raise InvalidAnswer("choose at least one")
        if len(set(raw)) != len(raw):
            raise InvalidAnswer("a choice is listed twice")
        selected = tuple(raw)
    else:
        if not isinstance(raw, str):
            raise InvalidAnswer(f"this question takes one choice id ({listing}), not {_kind(raw)}")
        selected = (raw,)
    unknown = [s for s in selected if s not in allowed]
    if unknown:
        raise InvalidAnswer(f"not a choice of this question ({listing}): {', '.join(unknown)}")
    return ChoiceAnswer(selected, multi)


def _scale(raw: Any, rubric: ProfileRubric) -> ScaleAnswer:
    assert rubric.scale is not None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise InvalidAnswer(f"this question takes a number, not {_kind(raw)}")
    if not rubric.scale.min <= raw <= rubric.scale.max:
        raise InvalidAnswer(
            f"the answer must be between {rubric.scale.min:g} and {rubric.scale.max:g}"
        )
    return ScaleAnswer(float(raw))


def _kind(raw: Any) -> str:
    """A JSON value's type in JSON's words, for messages."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "text"}
    names |= {list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(raw), type(raw).__name__)
