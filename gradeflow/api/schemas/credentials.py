"""``/v1/credentials``: the credentials recommendations are drawn from."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    Field,
    RootModel,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from gradeflow.db.catalog import NewCredential
from gradeflow.db.schema import CredentialCatalog
from gradeflow.jobs.rubrics import SkillName, StrictModel

#: Most credentials one request may create.
MAX_BATCH = 1000


class CredentialIn(StrictModel):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    description: Annotated[str, StringConstraints(max_length=10000)] | None = None
    skills: list[SkillName] = Field(default_factory=list)
    provider: Annotated[str, StringConstraints(max_length=200)] | None = None
    metadata: dict[str, Any] | None = None
    active: StrictBool = True

    def to_new(self) -> NewCredential:
        return NewCredential(**self.model_dump())


Batch = Annotated[list[CredentialIn], Field(min_length=1, max_length=MAX_BATCH)]
_BATCH = TypeAdapter(Batch)


class CredentialsIn(RootModel[CredentialIn | Batch]):
    """One credential, or a list of 1 to 1,000 created all together or not at all."""

    @model_validator(mode="wrap")
    @classmethod
    def _one_or_many(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Validated by the input's own shape, so an error names the item's index
        # ("[5].title") rather than both alternatives of the union.
        if isinstance(value, cls):
            return value
        if isinstance(value, list):
            return cls.model_construct(_BATCH.validate_python(value))
        return cls.model_construct(CredentialIn.model_validate(value))

    def items(self) -> list[CredentialIn]:
        return self.root if isinstance(self.root, list) else [self.root]


class CredentialOut(BaseModel):
    id: uuid.UUID
    title: str
    description: str | None
    skills: list[str]
    provider: str | None
    metadata: dict[str, Any] | None
    active: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: CredentialCatalog) -> CredentialOut:
        return cls(
            id=row.id,
            title=row.title,
            description=row.description,
            skills=row.skills or [],
            provider=row.provider,
            metadata=row.metadata_,
            active=row.active,
            created_at=row.created_at,
        )


class CredentialPage(BaseModel):
    items: list[CredentialOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )


class CredentialQuery(StrictModel):
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None
