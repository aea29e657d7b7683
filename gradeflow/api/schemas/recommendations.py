"""Recommendations of an assessment, and feedback on them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictInt, StringConstraints

from gradeflow.jobs.rubrics import StrictModel


class TraceOut(BaseModel):
    id: uuid.UUID
    source_uri: str
    snippet: str
    similarity: float


class ItemOut(BaseModel):
    credential_id: uuid.UUID | None
    title: str
    confidence: float = Field(description="0-1; the README explains how it is computed.")
    rationale: str | None
    position: int
    traces: list[TraceOut] = Field(description="The retrieved passages this item rests on.")


class RecommendationsOut(BaseModel):
    id: uuid.UUID | None = Field(description="Null until the recommendation stage starts.")
    assessment_id: uuid.UUID
    status: Literal["pending", "ready", "failed"]
    degraded: bool = Field(description="Ranked and explained without an LLM.")
    summary: str | None
    generated_at: datetime | None
    items: list[ItemOut]


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
