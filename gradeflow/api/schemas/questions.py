"""``/v1/questions``: a question, its choices and a rubric checked for its type.

A new version of a question names the version it replaces in ``supersedes``:
it joins that question's lineage, and the old row is deactivated but kept
(assessments already submitted reference it through their snapshots).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from gradeflow.db.schema import Question
from gradeflow.jobs.rubrics import Choice, Rubric, StrictModel, parse_rubric, unique

QuestionType = Literal["multiple_choice", "essay", "profile"]


class QuestionIn(StrictModel):
    role_id: uuid.UUID
    question_type: QuestionType
    prompt: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
    choices: list[Choice] | None = Field(
        default=None,
        validate_default=True,
        description="multiple_choice: at least 2; profile: optional; essay: none.",
    )
    rubric: Rubric = Field(description="The shape follows question_type (see the README).")
    weight: Decimal = Field(gt=0, le=Decimal("999.99"), decimal_places=2)
    version: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    supersedes: uuid.UUID | None = Field(
        default=None,
        description="The active question this one replaces: same lineage; the old one "
        "is deactivated and kept for the assessments that used it.",
    )

    @field_validator("choices")
    @classmethod
    def _choices_fit_the_type(
        cls, choices: list[Choice] | None, info: ValidationInfo
    ) -> list[Choice] | None:
        question_type = info.data.get("question_type")
        if question_type == "essay" and choices is not None:
            raise ValueError("essay questions take no choices")
        if question_type == "multiple_choice" and (choices is None or len(choices) < 2):
            raise ValueError("multiple_choice questions need at least 2 choices")
        if choices is not None:
            unique([c.id for c in choices], "choice ids")
        return choices

    @field_validator("rubric", mode="wrap")
    @classmethod
    def _rubric_fits_the_type(
        cls, rubric: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        question_type = info.data.get("question_type")
        if question_type is None:  # already refused; a rubric cannot be checked without it
            return rubric
        # No choices (or refused ones): the rubric is checked on its own.
        choices: list[Choice] | None = info.data.get("choices")
        return parse_rubric(
            question_type, rubric, None if choices is None else [c.id for c in choices]
        )


class QuestionOut(BaseModel):
    id: uuid.UUID
    role_id: uuid.UUID | None
    question_type: str
    prompt: str
    choices: list[Choice] | None
    rubric: dict[str, Any]
    weight: float
    version: str
    active: bool
    lineage_id: uuid.UUID | None = Field(description="Shared by every version of a question.")
    supersedes_id: uuid.UUID | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Question) -> QuestionOut:
        return cls(
            id=row.id,
            role_id=row.role_id,
            question_type=row.question_type,
            prompt=row.prompt,
            choices=[Choice.model_validate(c) for c in row.choices] if row.choices else None,
            rubric=row.rubric,
            weight=float(row.weight),
            version=row.version,
            active=row.active,
            lineage_id=row.lineage_id,
            supersedes_id=row.supersedes_id,
            created_at=row.created_at,
        )


class QuestionList(BaseModel):
    items: list[QuestionOut]


class QuestionQuery(StrictModel):
    role_id: uuid.UUID | None = Field(default=None, description="Only this role's questions.")
    include_inactive: bool = Field(default=False, description="Also superseded versions.")
