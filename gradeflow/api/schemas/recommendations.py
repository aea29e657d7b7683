"""Recommendations of an assessment, and feedback on them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictInt, StringConstraints

from gradeflow.jobs.rubrics import StrictModel
from gradeflow.jobs.views import ItemOut, RecommendationsOut, TraceOut

__all__ = ["FeedbackIn", "FeedbackOut", "ItemOut", "RecommendationsOut", "TraceOut"]


class FeedbackIn(StrictModel):
    relevance: StrictInt = Field(ge=1, le=5, description="1 (useless) to 5 (exactly right).")
    acceptance: Literal["accepted", "rejected", "undecided"] | None = None
    comments: Annotated[str, StringConstraints(max_length=4000)] | None = None
    submitted_by_role: Literal["student", "advisor", "admin"] = Field(
        default="student", description="Who, at your end, gave this feedback."
    )


class FeedbackOut(BaseModel):
    id: uuid.UUID
    recommendation_id: uuid.UUID
    relevance: int
    acceptance: str | None
    comments: str | None
    submitted_by_role: str
    submitted_at: datetime
