"""What a rubric looks like for each question type, checked before a question is stored.

The API validates a rubric with these models when a question is created, so a
rubric the scorers could not apply is refused with a 422 there, never found
out by a job later. The scoring jobs parse the stored rubric with the same
models.

Skill levels use one scale everywhere: a number from 0 to 100 (a role's
``skills_profile`` targets, a profile answer's level, a skill's score).

Cross-checks against the question's choices (a correct answer must be one of
the choices; a profile mapping must cover every choice) run when the caller
passes the choice ids in the validation context: ``{"choice_ids": [...]}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

#: A skill's level (target or achieved): 0 (none) to 100 (full).
SkillLevel = Annotated[StrictFloat, Field(ge=0, le=100)]
SkillName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
ChoiceId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class StrictModel(BaseModel):
    """Unknown fields are refused: a typo must not silently drop part of a rubric.

    So is text PostgreSQL cannot store (anywhere in the input, free-form parts
    included), each problem naming where it is.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        problems = [
            InitErrorDetails(
                type=PydanticCustomError("unstorable_text", reason), loc=path, input=None
            )
            for path, reason in unstorable_text(data)
        ]
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return data


def unstorable_text(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Where ``value`` holds a NUL character or an unpaired surrogate, and which.

    A bad key is reported at its mapping, so the error never repeats the bad text.
    """
    if isinstance(value, str):
        if reason := text_problem(value):
            yield path, reason
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (reason := text_problem(key)):
                yield path, f"a key {reason}"
            else:
                yield from unstorable_text(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unstorable_text(item, (*path, index))


def text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode"
    return None


class Choice(StrictModel):
    id: ChoiceId
    text: Text


def choice_ids_in(info: ValidationInfo) -> set[str] | None:
    """The choice ids the caller passed in the validation context, if any."""
    ids = (info.context or {}).get("choice_ids")
    return None if ids is None else set(ids)


def unique(values: list[str], what: str) -> list[str]:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique; repeated: {', '.join(repeated)}")
    return values


class MultipleChoiceRubric(StrictModel):
    """Right answers by choice id; a single-select question has exactly one."""

    correct: list[ChoiceId] = Field(min_length=1)
    multi_select: StrictBool = False
    #: Points taken off per wrong choice selected (0: no negative marking).
    negative_marking: StrictFloat = Field(default=0, ge=0)
    skills: list[SkillName] = Field(default_factory=list)

    @field_validator("correct")
    @classmethod
    def _correct_are_choices(cls, correct: list[str], info: ValidationInfo) -> list[str]:
        unique(correct, "correct choice ids")
        ids = choice_ids_in(info)
        unknown = [c for c in correct if ids is not None and c not in ids]
        if unknown:
            raise ValueError(
                f"not among the question's choice ids ({', '.join(sorted(ids or ()))}): "
                f"{', '.join(unknown)}"
            )
        return correct

    @model_validator(mode="after")
    def _single_select_has_one_answer(self) -> MultipleChoiceRubric:
        if not self.multi_select and len(self.correct) != 1:
            raise ValueError("multi_select is false, so correct must name exactly one choice")
        return self


class EssayLevel(StrictModel):
    score: StrictInt = Field(ge=0, le=100)
    descriptor: Text


class EssayCriterion(StrictModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    description: Text
    levels: list[EssayLevel] = Field(min_length=2)
    keywords: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] | None = None

    @field_validator("levels")
    @classmethod
    def _scores_distinct(cls, levels: list[EssayLevel]) -> list[EssayLevel]:
        unique([str(level.score) for level in levels], "level scores")
        return levels


class EssayRubric(StrictModel):
    """Criteria an LLM (or the offline scorer) grades, each on its own levels."""

    criteria: list[EssayCriterion] = Field(min_length=1)
    skills: list[SkillName] = Field(default_factory=list)

    @field_validator("criteria")
    @classmethod
    def _names_distinct(cls, criteria: list[EssayCriterion]) -> list[EssayCriterion]:
        unique([c.name for c in criteria], "criterion names")
        return criteria


class Scale(StrictModel):
    """A numeric answer between ``min`` and ``max``, mapped linearly onto 0-100."""

    min: StrictFloat
    max: StrictFloat

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if self.max <= self.min:
            raise ValueError("scale.max must be greater than scale.min")
        return self


class ProfileRubric(StrictModel):
    """A self-reported answer mapped to a level of one skill.

    Exactly one of ``mapping`` (the answer is one of its keys, or with
    ``multi_select`` a list of them, scored by their mean level) and ``scale``
    (the answer is a number within it).
    """

    skill: SkillName
    mapping: (
        dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], SkillLevel] | None
    ) = Field(default=None, min_length=1)
    scale: Scale | None = None
    multi_select: StrictBool = False

    @field_validator("mapping")
    @classmethod
    def _covers_the_choices(
        cls, mapping: dict[str, float] | None, info: ValidationInfo
    ) -> dict[str, float] | None:
        ids = choice_ids_in(info)
        if ids is None or mapping is None:
            return mapping
        missing, extra = sorted(ids - mapping.keys()), sorted(mapping.keys() - ids)
        if missing or extra:
            raise ValueError(
                "must map exactly the question's choice ids"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; not a choice: {', '.join(extra)}" if extra else "")
            )
        return mapping

    @model_validator(mode="after")
    def _one_way_to_answer(self) -> ProfileRubric:
        if (self.mapping is None) == (self.scale is None):
            raise ValueError("a profile rubric needs exactly one of mapping and scale")
        if self.multi_select and self.mapping is None:
            raise ValueError("multi_select needs a mapping (a list of numbers has no level)")
        return self


Rubric = MultipleChoiceRubric | EssayRubric | ProfileRubric

RUBRIC_MODELS: dict[str, type[MultipleChoiceRubric | EssayRubric | ProfileRubric]] = {
    "multiple_choice": MultipleChoiceRubric,
    "essay": EssayRubric,
    "profile": ProfileRubric,
}


def parse_rubric(question_type: str, rubric: Any, choice_ids: list[str] | None = None) -> Rubric:
    """The rubric of a ``question_type`` question, checked against its choices.

    Raises:
      pydantic.ValidationError: the rubric cannot be applied (locations relative to it).
      KeyError: an unknown question type.
    """
    context = None if choice_ids is None else {"choice_ids": choice_ids}
    return RUBRIC_MODELS[question_type].model_validate(rubric, context=context)
