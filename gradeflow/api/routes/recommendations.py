"""``GET /v1/assessments/{id}/recommendations`` and ``POST /v1/recommendations/{id}/feedback``.

Both only for the submitter that owns the assessment; anyone else gets a 404.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from gradeflow.api.auth import SubmitterClient
from gradeflow.api.errors import ApiError
from gradeflow.api.schemas.errors import AUTHENTICATED, WITH_BODY, error_responses
from gradeflow.api.schemas.recommendations import FeedbackIn, FeedbackOut, RecommendationsOut
from gradeflow.api.transaction import TransactionDep
from gradeflow.db.assessments import assessment_record
from gradeflow.db.recommendations import (
    insert_feedback,
    own_recommendation,
    recommendation_record,
)
from gradeflow.jobs.views import recommendations_view

router = APIRouter(tags=["recommendations"])


@router.get(
    "/v1/assessments/{assessment_id}/recommendations",
    responses=error_responses(*AUTHENTICATED, 404),
)
def get_recommendations(
    assessment_id: uuid.UUID, client: SubmitterClient, transaction: TransactionDep
) -> RecommendationsOut:
    """The credentials recommended after the assessment, best first (``pending`` until built)."""
    session = transaction.session
    if assessment_record(session, assessment_id, client_id=client.id) is None:
        raise ApiError(404, "not_found", f"no assessment {assessment_id} of yours")
    return recommendations_view(assessment_id, recommendation_record(session, assessment_id))


@router.post(
    "/v1/recommendations/{recommendation_id}/feedback",
    status_code=201,
    responses=error_responses(*AUTHENTICATED, *WITH_BODY, 404),
)
def post_feedback(
    recommendation_id: uuid.UUID,
    body: FeedbackIn,
    client: SubmitterClient,
    transaction: TransactionDep,
) -> FeedbackOut:
    """Record how relevant the recommendation was, and whether it was taken up."""
    owned = own_recommendation(transaction.session, client.id, recommendation_id)
    if owned is None:
        raise ApiError(404, "not_found", f"no recommendation {recommendation_id} of yours")
    feedback = insert_feedback(
        transaction.session,
        recommendation_id=recommendation_id,
        user_id=owned.user_id,
        submitted_by_role=body.submitted_by_role,
        relevance_score=body.relevance,
        acceptance_status=body.acceptance,
        comments=body.comments,
    )
    return FeedbackOut(
        id=feedback.id,
        recommendation_id=recommendation_id,
        relevance=body.relevance,
        acceptance=body.acceptance,
        comments=body.comments,
        submitted_by_role=body.submitted_by_role,
        submitted_at=feedback.submitted_at,
    )
