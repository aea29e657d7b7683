"""``POST /v1/questions`` and ``GET /v1/questions?role_id=`` (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from gradeflow.api.auth import AdminClient, actor
from gradeflow.api.errors import ApiError, invalid_input
from gradeflow.api.schemas.errors import AUTHENTICATED, WITH_BODY, error_responses
from gradeflow.api.schemas.questions import QuestionIn, QuestionList, QuestionOut, QuestionQuery
from gradeflow.api.transaction import TransactionDep
from gradeflow.db.audit import AuditEntry, record_audit
from gradeflow.db.catalog import (
    NewQuestion,
    get_question,
    insert_question,
    list_questions,
    retire_question,
    role_exists,
    version_exists,
)
from gradeflow.db.schema import Question

router = APIRouter(prefix="/v1/questions", tags=["catalog"])


@router.post("", status_code=201, responses=error_responses(*AUTHENTICATED, *WITH_BODY, 409))
def create_question(
    body: QuestionIn, client: AdminClient, transaction: TransactionDep
) -> QuestionOut:
    """Add a question, or (with ``supersedes``) a new version of an active one."""
    session = transaction.session
    if not role_exists(session, body.role_id):
        raise invalid_input("body", ["role_id"], f"no role has the id {body.role_id}")
    retired = retire_superseded(session, body) if body.supersedes else None
    lineage_id = retired.lineage_id if retired else None
    if lineage_id and version_exists(session, lineage_id, body.version):
        raise ApiError(
            409, "conflict", f"version {body.version!r} already exists in this question's lineage"
        )
    question = insert_question(
        session,
        NewQuestion(
            role_id=body.role_id,
            question_type=body.question_type,
            prompt=body.prompt,
            choices=[c.model_dump() for c in body.choices] if body.choices else None,
            rubric=body.rubric.model_dump(mode="json"),
            weight=body.weight,
            version=body.version,
            lineage_id=lineage_id,
            supersedes_id=body.supersedes,
        ),
    )
    entries = [
        AuditEntry(
            actor(client),
            "question.create",
            "question",
            question.id,
            {
                "role_id": str(body.role_id),
                "version": body.version,
                "supersedes": str(body.supersedes) if body.supersedes else None,
            },
        )
    ]
    if retired:
        entries.append(
            AuditEntry(
                actor(client),
                "question.deactivate",
                "question",
                retired.id,
                {"superseded_by": str(question.id)},
            )
        )
    record_audit(session, entries)
    return QuestionOut.from_row(question)


def retire_superseded(session: Session, body: QuestionIn) -> Question:
    """Deactivate the version ``body`` replaces, or explain why it cannot be replaced."""
    assert body.supersedes is not None
    retired = retire_question(session, body.supersedes)
    if retired is None:
        if get_question(session, body.supersedes) is None:
            raise invalid_input("body", ["supersedes"], f"no question has the id {body.supersedes}")
        raise ApiError(
            409,
            "conflict",
            f"question {body.supersedes} is not the active version of its lineage",
        )
    if retired.role_id != body.role_id:
        raise invalid_input(
            "body", ["supersedes"], "a new version must belong to the same role as the old one"
        )
    return retired


@router.get("", responses=error_responses(*AUTHENTICATED))
def get_questions(
    query: Annotated[QuestionQuery, Query()], client: AdminClient, transaction: TransactionDep
) -> QuestionList:
    """Active questions (with ``include_inactive``, every version), oldest first."""
    rows = list_questions(
        transaction.session, role_id=query.role_id, include_inactive=query.include_inactive
    )
    return QuestionList(items=[QuestionOut.from_row(q) for q in rows])
