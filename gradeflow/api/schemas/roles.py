"""``/v1/roles``: a role of the catalog and the skill levels it targets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StrictBool, StringConstraints

from gradeflow.db.schema import RoleCatalog
from gradeflow.jobs.rubrics import SkillLevel, SkillName, StrictModel


class RoleIn(StrictModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None
    skills_profile: dict[SkillName, SkillLevel] = Field(
        default_factory=dict,
        description="Target level of each skill, from 0 (none) to 100 (full).",
        examples=[{"sql": 80, "python": 60}],
    )
    active: StrictBool = True


class RoleOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    skills_profile: dict[str, float]
    active: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: RoleCatalog) -> RoleOut:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            skills_profile=row.skills_profile or {},
            active=row.active,
            created_at=row.created_at,
        )


class RoleList(BaseModel):
    items: list[RoleOut]
