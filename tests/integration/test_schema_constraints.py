"""The database itself refuses rows that break seed 002's rules."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


def insert(session: Session, statement: str, **params: object) -> None:
    session.execute(text(statement), params)


def make_assessment_with_snapshot(session: Session) -> tuple[uuid.UUID, uuid.UUID]:
    assessment_id, snapshot_id = uuid.uuid4(), uuid.uuid4()
    insert(
        session,
        "INSERT INTO assessments (id, status) VALUES (:id, 'awaiting_async')",
        id=assessment_id,
    )
    insert(
        session,
        "INSERT INTO assessment_question_snapshots"
        " (id, assessment_id, question_id, prompt, rubric, question_type, version)"
        " VALUES (:id, :a, gen_random_uuid(), 'Q?', '{}', 'essay', 'v1')",
        id=snapshot_id,
        a=assessment_id,
    )
    return assessment_id, snapshot_id


def test_assessment_status_outside_its_check_is_refused(session: Session) -> None:
    with pytest.raises(IntegrityError, match="ck_assessments_status"):
        insert(session, "INSERT INTO assessments (id, status) VALUES (gen_random_uuid(), 'done')")


def test_job_status_outside_its_check_is_refused(session: Session) -> None:
    with pytest.raises(IntegrityError, match="ck_async_jobs_status"):
        insert(
            session,
            "INSERT INTO async_jobs (id, job_type, status) VALUES (gen_random_uuid(), 'x', 'lost')",
        )


def test_running_job_without_a_lease_is_refused(session: Session) -> None:
    with pytest.raises(IntegrityError, match="ck_async_jobs_running_has_lease"):
        insert(
            session,
            "INSERT INTO async_jobs (id, job_type, status)"
            " VALUES (gen_random_uuid(), 'x', 'running')",
        )


def test_finished_job_without_completion_time_is_refused(session: Session) -> None:
    with pytest.raises(IntegrityError, match="ck_async_jobs_completed_at_iff_finished"):
        insert(
            session,
            "INSERT INTO async_jobs (id, job_type, status)"
            " VALUES (gen_random_uuid(), 'x', 'succeeded')",
        )


def test_response_for_another_assessments_snapshot_is_refused(session: Session) -> None:
    assessment_a, _ = make_assessment_with_snapshot(session)
    _, snapshot_of_b = make_assessment_with_snapshot(session)
    with pytest.raises(IntegrityError, match="snapshot_of_same_assessment"):
        insert(
            session,
            "INSERT INTO assessment_responses (id, assessment_id, question_snapshot_id, answer)"
            " VALUES (gen_random_uuid(), :a, :s, '\"B\"')",
            a=assessment_a,
            s=snapshot_of_b,
        )


def test_duplicate_response_for_one_snapshot_is_refused(session: Session) -> None:
    assessment_id, snapshot_id = make_assessment_with_snapshot(session)
    statement = (
        "INSERT INTO assessment_responses (id, assessment_id, question_snapshot_id, answer)"
        " VALUES (gen_random_uuid(), :a, :s, '\"B\"')"
    )
    insert(session, statement, a=assessment_id, s=snapshot_id)
    with pytest.raises(
        IntegrityError, match="uq_assessment_responses_assessment_id_question_snapshot_id"
    ):
        insert(session, statement, a=assessment_id, s=snapshot_id)


def test_duplicate_rule_score_is_refused(session: Session) -> None:
    assessment_id, snapshot_id = make_assessment_with_snapshot(session)
    statement = (
        "INSERT INTO rule_scores (id, assessment_id, question_snapshot_id, score)"
        " VALUES (gen_random_uuid(), :a, :s, 1)"
    )
    insert(session, statement, a=assessment_id, s=snapshot_id)
    with pytest.raises(IntegrityError, match="uq_rule_scores"):
        insert(session, statement, a=assessment_id, s=snapshot_id)


def test_user_email_is_case_insensitively_unique_within_a_client(session: Session) -> None:
    clients = [uuid.uuid4(), uuid.uuid4()]
    for client_id in clients:
        insert(
            session,
            "INSERT INTO api_clients (id, name, role, key_hash, key_prefix)"
            " VALUES (CAST(:id AS uuid), :id, 'submitter', :id, 'gf_x')",
            id=str(client_id),
        )
    statement = (
        "INSERT INTO users (id, client_id, email, role)"
        " VALUES (gen_random_uuid(), :c, :e, 'student')"
    )
    insert(session, statement, c=clients[0], e="Ada@Example.org")
    insert(session, statement, c=clients[1], e="ada@example.org")  # another app's user
    with pytest.raises(IntegrityError, match="uq_users_client_id_email"):
        insert(session, statement, c=clients[0], e="ada@example.ORG")


def test_deleting_an_assessment_cascades_to_its_snapshots(session: Session) -> None:
    assessment_id, _ = make_assessment_with_snapshot(session)
    insert(session, "DELETE FROM assessments WHERE id = :a", a=assessment_id)
    remaining = session.execute(
        text("SELECT count(*) FROM assessment_question_snapshots WHERE assessment_id = :a"),
        {"a": assessment_id},
    ).scalar_one()
    assert remaining == 0
