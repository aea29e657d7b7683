"""What a submitter sees of an assessment and its recommendations: the bodies of
``GET /v1/assessments/{id}`` and ``GET /v1/assessments/{id}/recommendations``, and the
``data`` of their webhook events (built once, when the event is emitted)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from gradeflow.db.assessments import AssessmentRecord, QuestionResult
from gradeflow.db.recommendations import ItemRecord, RecommendationRecord
from gradeflow.jobs.results import FALLBACK_MODEL_PREFIX


class Links(BaseModel):
    self: str
    recommendations: str


class UserOut(BaseModel):
    id: uuid.UUID
    external_id: str | None
    email: str


class Timings(BaseModel):
    submitted_at: datetime
    completed_at: datetime | None
    duration_ms: int | None = Field(description="From submission to completion.")


class QuestionScore(BaseModel):
    question_id: uuid.UUID
    snapshot_id: uuid.UUID
    question_type: str
    version: str
    max_score: float = Field(description="The question's weight.")
    score: float | None = Field(description="Points earned; null until scored.")
    graded_by: Literal["rules", "llm", "fallback"] | None = Field(
        description="fallback: the offline essay scorer, used when no LLM could grade it."
    )
    model: str | None
    explanation: str | None
    injection_suspected: bool = Field(
        default=False, description="Essays: the text looked like an attempt to steer the grader."
    )


class TraceOut(BaseModel):
    id: uuid.UUID
    source_uri: str
    snippet: str
    similarity: float = Field(description="Cosine similarity of the query and the passage.")


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


def recommendations_view(
    assessment_id: uuid.UUID, record: RecommendationRecord | None
) -> RecommendationsOut:
    """The recommendation as its submitter sees it (``pending`` before the stage starts)."""
    if record is None:
        return RecommendationsOut(
            id=None,
            assessment_id=assessment_id,
            status="pending",
            degraded=False,
            summary=None,
            generated_at=None,
            items=[],
        )
    return RecommendationsOut(
        id=record.id,
        assessment_id=assessment_id,
        status=record.status,
        degraded=record.degraded,
        summary=record.summary,
        generated_at=record.generated_at,
        items=[item_view(item, record) for item in record.items],
    )


def item_view(item: ItemRecord, record: RecommendationRecord) -> ItemOut:
    return ItemOut(
        credential_id=item.credential_id,
        title=item.title,
        confidence=float(item.confidence),
        rationale=item.rationale,
        position=item.position,
        traces=[
            TraceOut(
                id=trace.id,
                source_uri=trace.source_uri,
                snippet=trace.snippet,
                similarity=float(trace.similarity),
            )
            for trace_id in item.source_trace_ids
            if (trace := record.traces.get(trace_id)) is not None
        ],
    )


class AssessmentOut(BaseModel):
    id: uuid.UUID
    status: Literal["awaiting_async", "completed", "failed"]
    degraded: bool = Field(description="Some essay was graded by the offline fallback scorer.")
    role_id: uuid.UUID
    user: UserOut
    metadata: dict[str, Any] | None
    total_score: float | None = Field(
        description="Percent of the graded questions' weight earned (0-100)."
    )
    skill_scores: dict[str, float] | None = Field(description="Per skill, 0-100.")
    questions: list[QuestionScore]
    recommendations: RecommendationsOut = Field(
        description="The credentials recommended next; part of the result once completed."
    )
    timings: Timings
    links: Links


def assessment_view(
    assessment: AssessmentRecord,
    questions: Sequence[QuestionResult],
    recommendation: RecommendationRecord | None,
) -> AssessmentOut:
    link = f"/v1/assessments/{assessment.id}"
    completed = assessment.completed_at
    return AssessmentOut(
        id=assessment.id,
        status=assessment.status,
        degraded=assessment.degraded,
        role_id=assessment.role_id,
        user=UserOut(
            id=assessment.user_id, external_id=assessment.external_id, email=assessment.email
        ),
        metadata=assessment.metadata,
        total_score=float(assessment.total_score) if assessment.total_score is not None else None,
        skill_scores=assessment.skill_scores,
        questions=[question_score(q) for q in questions],
        recommendations=recommendations_view(assessment.id, recommendation),
        timings=Timings(
            submitted_at=assessment.created_at,
            completed_at=completed,
            duration_ms=(
                round((completed - assessment.created_at).total_seconds() * 1000)
                if completed
                else None
            ),
        ),
        links=Links(self=link, recommendations=f"{link}/recommendations"),
    )


def question_score(result: QuestionResult) -> QuestionScore:
    payload = result.essay_payload or {}
    return QuestionScore(
        question_id=result.question_id,
        snapshot_id=result.snapshot_id,
        question_type=result.question_type,
        version=result.version,
        max_score=float(result.weight),
        score=float(result.score) if result.score is not None else None,
        graded_by=graded_by(result),
        model=result.model,
        explanation=result.explanation or essay_explanation(payload),
        injection_suspected=bool(payload.get("injection", {}).get("suspected", False)),
    )


def graded_by(result: QuestionResult) -> Any:
    if result.score is None:
        return None
    if result.model is None:
        return "rules"
    return "fallback" if result.model.startswith(FALLBACK_MODEL_PREFIX) else "llm"


def essay_explanation(payload: dict[str, Any]) -> str | None:
    """Each criterion's score and rationale, in words; who graded it when it was no LLM."""
    criteria = payload.get("criteria")
    if not criteria:
        return None
    parts = [
        f"{c['name']}: {c['score']} of {c['maximum']}"
        + (f" ({c['rationale'].rstrip('.')})" if c.get("rationale") else "")
        for c in criteria
    ]
    grader = f"Graded by the {payload['label']}. " if payload.get("fallback") else ""
    return grader + "; ".join(parts) + "."
