"""``POST /v1/assessments`` (submitters) and ``GET /v1/assessments/{id}`` (its owner).

A submission is checked whole before anything is written, then written in one
transaction: the user, the assessment, a snapshot of each answered question as
it is now, the answers, and the scoring jobs. Only the questions answered are
part of the assessment (the upstream app chooses which questions it asks).

The submission is the API's hot path: its endpoint is ``async`` and does all of
its database work in one trip to the thread pool, on a bare driver cursor (each
thread hop and each SQLAlchemy statement costs more CPU than the SQL it runs).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Header, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from gradeflow.api.auth import RecentSubmitter, SubmitterClient, confirm_key
from gradeflow.api.errors import ApiError
from gradeflow.api.keys import Caller
from gradeflow.api.known_questions import KnownQuestion, KnownQuestions
from gradeflow.api.schemas.assessments import AssessmentIn
from gradeflow.api.schemas.errors import AUTHENTICATED, WITH_BODY, error_responses
from gradeflow.api.services import Services, get_services
from gradeflow.api.transaction import TransactionDep, driver_transaction
from gradeflow.db.assessments import (
    AskedQuestion,
    AssessmentRecord,
    InsertedAssessment,
    NewAssessment,
    NotWritten,
    QuestionResult,
    active_questions,
    assessment_record,
    insert_submission,
    plan_ids,
    question_results,
    role_is_active,
)
from gradeflow.db.idempotency import claim_key, store_response
from gradeflow.db.jobs import DriverCursor, Message, autocommit_cursor
from gradeflow.db.recommendations import recommendation_record
from gradeflow.jobs.answers import InvalidAnswer, parse_answer
from gradeflow.jobs.enqueue import job_row
from gradeflow.jobs.pipeline import scoring_jobs
from gradeflow.jobs.registry import queue_of
from gradeflow.jobs.views import AssessmentOut, assessment_view
from gradeflow.workers.messages import send_messages

router = APIRouter(prefix="/v1/assessments", tags=["assessments"])

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Retries with the same key and body get the first answer back "
        "(kept at least 24 h); the same key with another body is a 409.",
    ),
]
ServicesDep = Annotated[Services, Depends(get_services)]


@router.post(
    "",
    status_code=202,
    response_model=AssessmentOut,
    responses=error_responses(*AUTHENTICATED, *WITH_BODY, 409),
)
async def submit_assessment(
    body: AssessmentIn,
    caller: RecentSubmitter,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Accept an assessment for grading; it is scored asynchronously (poll ``links.self``)."""
    return await run_in_threadpool(accept, services, caller, body, idempotency_key)


@dataclass(frozen=True)
class Submission:
    """One ``POST``: who sent which body, under which ``Idempotency-Key`` (if any)."""

    client_id: uuid.UUID
    body: AssessmentIn
    key: str | None


def accept(services: Services, caller: Caller, body: AssessmentIn, key: str | None) -> Response:
    """Check and write the caller's submission, committed (durably) before this
    returns; then send its jobs' messages. A replayed key answers as it did first,
    to its client only while the client's key is active.

    Without an ``Idempotency-Key`` the one write is a single statement, so it runs
    in autocommit: atomic on its own, and two round trips (BEGIN, COMMIT) cheaper.
    """
    submission = Submission(caller.holder.id, body, key)
    opened = autocommit_cursor if key is None else driver_transaction
    with opened(services.engine) as cursor:
        if key is not None:
            confirm_key(cursor, services, caller)
            replay = replay_or_claim(cursor, submission)
            if replay is not None:
                return replay
        questions, inserted, messages = checked_and_written(cursor, services, caller, submission)
        out = assessment_view(
            submitted_record(submission, inserted),
            unscored(list(questions.values()), inserted.snapshot_ids),
            None,
        )
        if key is not None:
            store_response(cursor, submission.client_id, key, 202, out.model_dump(mode="json"))
    send_messages(services.broker, messages)
    # Already an AssessmentOut: FastAPI need not validate it again on the way out.
    return Response(
        out.model_dump_json(),
        202,
        headers={"Location": out.links.self},
        media_type="application/json",
    )


def checked_and_written(
    cursor: DriverCursor, services: Services, caller: Caller, submission: Submission
) -> tuple[dict[uuid.UUID, AskedQuestion], InsertedAssessment, list[Message]]:
    """The submission's questions, once its answers check out, and what its write did.

    Answers are checked against the questions as intake knows them. If the write
    finds one of them (or the role) retired since, or the caller's key revoked, it
    writes nothing, and the checks run again on what the database says now: a
    401, or a 422 naming the retired question.
    """
    known, role_id = services.known_questions, submission.body.role_id
    questions = checked_questions(cursor, submission.body, known)
    try:
        return (questions, *write(cursor, services, submission, questions))
    except NotWritten:
        confirm_key(cursor, services, caller)
        known.forget_role(role_id)
    questions = checked_questions(cursor, submission.body, known)
    try:
        return (questions, *write(cursor, services, submission, questions))
    except NotWritten:
        raise ApiError(
            409, "conflict", f"the questions of role {role_id} changed during the submission"
        ) from None


def write(
    cursor: DriverCursor,
    services: Services,
    submission: Submission,
    questions: dict[uuid.UUID, AskedQuestion],
) -> tuple[InsertedAssessment, list[Message]]:
    """Insert the assessment and its scoring jobs (one statement); 409 on a taken email."""
    body = submission.body
    new = NewAssessment(
        client_id=submission.client_id,
        external_id=body.user.external_id,
        email=body.user.email,
        role_id=body.role_id,
        metadata=body.metadata,
        answers=[(r.question_id, r.answer) for r in body.responses],
    )
    ids = plan_ids(new)
    types = {ids.snapshot_ids[q.id]: q.question_type for q in questions.values()}
    jobs = scoring_jobs(ids.assessment_id, submission.client_id, types)
    windows = services.full_windows
    rows = [
        job_row(job, send_now=windows.send_now(job.client_id, queue_of(job.job_type)))
        for job in jobs
    ]
    try:
        submitted = insert_submission(cursor, new, ids, rows, services.settings.dispatch_window)
    except psycopg.IntegrityError:
        raise ApiError(
            409,
            "conflict",
            "another user of yours (another external_id) already has this email",
            [{"location": "body", "field": "user.email", "reason": "email already in use"}],
        ) from None
    windows.found_full(submission.client_id, submitted.full_queues)
    return submitted.assessment, submitted.messages


def submitted_record(submission: Submission, inserted: InsertedAssessment) -> AssessmentRecord:
    """The new assessment as a read would show it (built without reading it back)."""
    body = submission.body
    return AssessmentRecord(
        id=inserted.id,
        client_id=submission.client_id,
        status="awaiting_async",
        degraded=False,
        role_id=body.role_id,
        metadata=body.metadata,
        total_score=None,
        skill_scores=None,
        created_at=inserted.created_at,
        completed_at=None,
        user_id=inserted.user_id,
        external_id=body.user.external_id,
        email=body.user.email,
    )


def replay_or_claim(cursor: DriverCursor, submission: Submission) -> JSONResponse | None:
    """The first answer given to the submission's key, or None once this request owns it."""
    assert submission.key is not None
    request_hash = hashlib.sha256(
        json.dumps(submission.body.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()
    stored = claim_key(cursor, submission.client_id, submission.key, request_hash)
    if stored is None:
        return None
    if stored.request_hash != request_hash:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different body",
            [
                {
                    "location": "header",
                    "field": "Idempotency-Key",
                    "reason": "used with another body",
                }
            ],
        )
    headers = {
        "Location": stored.response_body.get("links", {}).get("self", ""),
        "Idempotent-Replayed": "true",
    }
    return JSONResponse(stored.response_body, stored.response_status, headers=headers)


def checked_questions(
    cursor: DriverCursor, body: AssessmentIn, known: KnownQuestions
) -> dict[uuid.UUID, AskedQuestion]:
    """The answered questions by id, once the role, every question and every answer check out.

    Questions not yet ``known`` are read (as active questions of the role) and
    learned. Every problem is reported at once, each naming its ``responses[i]`` field.
    """
    ids = [r.question_id for r in body.responses]
    questions = known.of_role(body.role_id, ids)
    unknown = [question_id for question_id in ids if question_id not in questions]
    if unknown:
        read = active_questions(cursor, body.role_id, unknown)
        questions.update(known.learn(body.role_id, read.values()))
    if len(questions) < len(set(ids)) and not role_is_active(cursor, body.role_id):
        raise RequestValidationError(
            [problem(("role_id",), f"no active role has the id {body.role_id}")]
        )
    problems: list[dict[str, Any]] = []
    first_seen: dict[uuid.UUID, int] = {}
    for index, item in enumerate(body.responses):
        where = ("responses", index)
        if item.question_id in first_seen:
            problems.append(
                problem(
                    (*where, "question_id"),
                    f"answered twice (first at responses[{first_seen[item.question_id]}])",
                )
            )
            continue
        first_seen[item.question_id] = index
        question = questions.get(item.question_id)
        if question is None:
            problems.append(
                problem(
                    (*where, "question_id"),
                    f"not an active question of role {body.role_id}",
                )
            )
            continue
        reason = answer_problem(question, item.answer)
        if reason is not None:
            problems.append(problem((*where, "answer"), reason))
    if problems:
        raise RequestValidationError(problems)
    return {question_id: known.question for question_id, known in questions.items()}


def answer_problem(question: KnownQuestion, answer: Any) -> str | None:
    try:
        parse_answer(question.rubric, question.choice_ids, answer)
    except InvalidAnswer as exc:
        return str(exc)
    return None


def problem(path: Sequence[str | int], reason: str) -> dict[str, Any]:
    return {"type": "value_error", "loc": ("body", *path), "msg": reason}


def unscored(
    questions: Sequence[AskedQuestion], snapshot_ids: dict[uuid.UUID, uuid.UUID]
) -> list[QuestionResult]:
    """A new assessment's questions, none scored yet (built without reading them back)."""
    return [
        QuestionResult(
            snapshot_id=snapshot_ids[q.id],
            question_id=q.id,
            question_type=q.question_type,
            version=q.version,
            weight=q.weight,
            rubric=q.rubric,
            score=None,
            explanation=None,
            rules_applied=None,
            model=None,
            essay_payload=None,
        )
        for q in sorted(questions, key=lambda q: q.id)
    ]


@router.get(
    "/{assessment_id}",
    response_model=AssessmentOut,
    responses=error_responses(*AUTHENTICATED, 404),
)
def get_assessment(
    assessment_id: uuid.UUID, client: SubmitterClient, transaction: TransactionDep
) -> AssessmentOut:
    """Status, per-question scores with explanations, total and skill scores, timings."""
    assessment = assessment_record(transaction.session, assessment_id, client_id=client.id)
    if assessment is None:
        raise ApiError(404, "not_found", f"no assessment {assessment_id} of yours")
    session = transaction.session
    return assessment_view(
        assessment,
        question_results(session, assessment.id),
        recommendation_record(session, assessment.id),
    )
