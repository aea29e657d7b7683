"""Submissions and reads in-process (FastAPI's TestClient) on a real PostgreSQL and Redis:
validation, one transaction, snapshots, idempotency, tenant isolation, recommendations."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from gradeflow.api.app import create_app
from gradeflow.db.clients import revoke_client
from gradeflow.db.engine import transaction
from gradeflow.db.schema import RagTrace, Recommendation, RecommendationItem
from gradeflow.jobs.answers import MAX_ESSAY_CHARS
from gradeflow.workers.maintenance import Pruner
from tests.integration.api_helpers import (
    Key,
    add_client,
    api_settings,
    essay_body,
    multiple_choice_body,
    profile_body,
    role_body,
)

Body = dict[str, Any]


@pytest.fixture
def app(database_url: str, redis_url: str) -> Iterator[FastAPI]:
    app = create_app(api_settings(database_url, redis_url))
    yield app
    app.state.services.close()


@pytest.fixture
def http(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def keys(engine: Engine) -> dict[str, Key]:
    return {role: add_client(engine, role) for role in ("submitter", "operator", "admin")}


@pytest.fixture
def submitter(keys: dict[str, Key]) -> dict[str, str]:
    return keys["submitter"].headers


@pytest.fixture
def catalog(http: TestClient, keys: dict[str, Key]) -> dict[str, str]:
    """A role with a multiple-choice, an essay, a profile and a scale question."""
    admin = keys["admin"].headers
    role = http.post("/v1/roles", json=role_body(), headers=admin).json()["id"]
    ids = {"role": role}
    bodies = {
        "mc": multiple_choice_body(role),
        "multi": multiple_choice_body(
            role,
            prompt="Which statements change data?",
            rubric={"correct": ["b", "c"], "multi_select": True, "skills": ["sql"]},
        ),
        "essay": essay_body(role),
        "profile": profile_body(role),
        "scale": profile_body(
            role, choices=None, rubric={"skill": "statistics", "scale": {"min": 1, "max": 10}}
        ),
    }
    for name, body in bodies.items():
        response = http.post("/v1/questions", json=body, headers=admin)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    return ids


def submission(catalog: dict[str, str], **overrides: Any) -> Body:
    return {
        "user": {"external_id": "u-1", "email": "Ada@Example.com"},
        "role_id": catalog["role"],
        "responses": [
            {"question_id": catalog["mc"], "answer": "a"},
            {"question_id": catalog["multi"], "answer": ["b"]},
            {"question_id": catalog["essay"], "answer": "A b-tree index keeps keys sorted."},
            {"question_id": catalog["profile"], "answer": "daily"},
            {"question_id": catalog["scale"], "answer": 7},
        ],
        "metadata": {"cohort": "2026-11"},
        **overrides,
    }


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def rows(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


WRITTEN_TABLES = ("users", "assessments", "assessment_question_snapshots", "assessment_responses")
#: The jobs submissions enqueue (the catalog's set-up enqueues its roles' embed jobs).
SUBMISSION_JOBS = "(SELECT * FROM async_jobs WHERE assessment_id IS NOT NULL) AS jobs"


def written(engine: Engine) -> dict[str, int]:
    counts = {table: count(engine, table) for table in WRITTEN_TABLES}
    return {**counts, "async_jobs": count(engine, SUBMISSION_JOBS)}


def test_a_submission_writes_everything_in_one_go(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    response = http.post("/v1/assessments", json=submission(catalog), headers=submitter)

    assert response.status_code == 202, response.text
    body = response.json()
    assessment_id = body["id"]
    assert body["status"] == "awaiting_async"
    assert body["user"]["email"] == "ada@example.com"
    assert body["metadata"] == {"cohort": "2026-11"}
    assert response.headers["location"] == f"/v1/assessments/{assessment_id}"
    assert body["links"]["recommendations"] == f"/v1/assessments/{assessment_id}/recommendations"
    assert {q["question_id"] for q in body["questions"]} == {
        catalog[n] for n in ("mc", "multi", "essay", "profile", "scale")
    }
    assert all(q["score"] is None and q["graded_by"] is None for q in body["questions"])
    assert written(engine) == {
        "users": 1,
        "assessments": 1,
        "assessment_question_snapshots": 5,
        "assessment_responses": 5,
        "async_jobs": 2,
    }
    jobs = rows(engine, f"SELECT job_type, payload, assessment_id, status FROM {SUBMISSION_JOBS}")
    assert sorted(j["job_type"] for j in jobs) == ["score_essay", "score_rules"]
    assert all(j["assessment_id"] == uuid.UUID(assessment_id) for j in jobs)
    assert all(j["status"] == "queued" for j in jobs)
    essay_job = next(j for j in jobs if j["job_type"] == "score_essay")
    snapshot = rows(
        engine,
        "SELECT id FROM assessment_question_snapshots WHERE question_id = :q",
        q=catalog["essay"],
    )
    assert essay_job["payload"]["snapshot_id"] == str(snapshot[0]["id"])


def test_the_assessment_reads_back_for_its_owner(
    http: TestClient, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    created = http.post("/v1/assessments", json=submission(catalog), headers=submitter).json()

    response = http.get(created["links"]["self"], headers=submitter)

    assert response.status_code == 200, response.text
    assert response.json() == created


def test_a_snapshot_keeps_the_question_as_it_was_asked(
    http: TestClient,
    engine: Engine,
    catalog: dict[str, str],
    keys: dict[str, Key],
    submitter: dict[str, str],
) -> None:
    created = http.post("/v1/assessments", json=submission(catalog), headers=submitter).json()
    new_version = multiple_choice_body(
        catalog["role"], prompt="Reworded", version="2", supersedes=catalog["mc"]
    )
    assert http.post("/v1/questions", json=new_version, headers=keys["admin"].headers).is_success

    read = http.get(created["links"]["self"], headers=submitter).json()

    mc = next(q for q in read["questions"] if q["question_id"] == catalog["mc"])
    assert mc["version"] == "1"
    snapshot = rows(
        engine,
        "SELECT prompt FROM assessment_question_snapshots WHERE question_id = :q",
        q=catalog["mc"],
    )
    assert snapshot == [{"prompt": "Which statement reads rows?"}]
    # ... and the retired version can no longer be answered.
    again = http.post("/v1/assessments", json=submission(catalog), headers=submitter)
    assert again.status_code == 422
    assert again.json()["error"]["details"][0]["field"] == "responses[0].question_id"


def test_a_user_is_upserted_by_external_id_within_the_client(
    http: TestClient,
    engine: Engine,
    catalog: dict[str, str],
    keys: dict[str, Key],
    submitter: dict[str, str],
) -> None:
    http.post("/v1/assessments", json=submission(catalog), headers=submitter)
    moved = submission(catalog, user={"external_id": "u-1", "email": "ada@new.example"})
    assert http.post("/v1/assessments", json=moved, headers=submitter).status_code == 202
    other_app = add_client(engine, "submitter")
    same_person = http.post("/v1/assessments", json=submission(catalog), headers=other_app.headers)

    assert same_person.status_code == 202
    users = rows(engine, "SELECT client_id, email FROM users ORDER BY email")
    assert users == [
        {"client_id": other_app.client_id, "email": "ada@example.com"},
        {"client_id": keys["submitter"].client_id, "email": "ada@new.example"},
    ]


def test_an_email_taken_by_another_user_of_the_client_is_a_conflict(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    http.post("/v1/assessments", json=submission(catalog), headers=submitter)
    before = written(engine)
    clash = submission(catalog, user={"external_id": "u-2", "email": "ada@example.com"})

    response = http.post("/v1/assessments", json=clash, headers=submitter)

    assert response.status_code == 409
    assert response.json()["error"]["details"][0]["field"] == "user.email"
    assert written(engine) == before


def without(body: Body, key: str) -> Body:
    return {k: v for k, v in body.items() if k != key}


def answer(catalog: dict[str, str], name: str, value: Any) -> Callable[[Body], Body]:
    def change(body: Body) -> Body:
        body["responses"] = [
            {**r, "answer": value} if r["question_id"] == catalog[name] else r
            for r in body["responses"]
        ]
        return body

    return change


def bad_bodies(catalog: dict[str, str]) -> list[tuple[str, Body, str, str]]:
    """(case, body, field named, words in the reason)."""
    good = submission(catalog)
    first = good["responses"][0]
    return [
        ("unknown field", {**good, "extra": 1}, "extra", "Extra inputs"),
        ("no user", without(good, "user"), "user", "required"),
        ("bad email", submission(catalog, user={"external_id": "x", "email": "nope"}),
         "user.email", "email"),
        ("role not a uuid", submission(catalog, role_id="r"), "role_id", "UUID"),
        ("unknown role", submission(catalog, role_id=str(uuid.uuid4())), "role_id",
         "no active role"),
        ("no responses", submission(catalog, responses=[]), "responses", "at least 1"),
        ("unknown question", submission(catalog, responses=[
            {"question_id": str(uuid.uuid4()), "answer": "a"}]),
         "responses[0].question_id", "not an active question"),
        ("duplicate answers", submission(catalog, responses=[first, first]),
         "responses[1].question_id", "answered twice"),
        ("not a choice", answer(catalog, "mc", "z")(submission(catalog)),
         "responses[0].answer", "not a choice"),
        ("list for single select", answer(catalog, "mc", ["a"])(submission(catalog)),
         "responses[0].answer", "one choice id"),
        ("text for multi select", answer(catalog, "multi", "b")(submission(catalog)),
         "responses[1].answer", "list of choice ids"),
        ("repeated choice", answer(catalog, "multi", ["b", "b"])(submission(catalog)),
         "responses[1].answer", "listed twice"),
        ("essay not text", answer(catalog, "essay", 5)(submission(catalog)),
         "responses[2].answer", "is text"),
        ("empty essay", answer(catalog, "essay", "  ")(submission(catalog)),
         "responses[2].answer", "must not be empty"),
        ("essay too long", answer(catalog, "essay", "x" * (MAX_ESSAY_CHARS + 1))(
            submission(catalog)), "responses[2].answer", "at most"),
        ("profile not a key", answer(catalog, "profile", "weekly")(submission(catalog)),
         "responses[3].answer", "not a choice"),
        ("scale out of range", answer(catalog, "scale", 11)(submission(catalog)),
         "responses[4].answer", "between 1 and 10"),
        ("scale not a number", answer(catalog, "scale", True)(submission(catalog)),
         "responses[4].answer", "takes a number"),
        ("metadata too big", submission(catalog, metadata={"x": "y" * 20000}),
         "metadata", "at most"),
    ]  # fmt: skip


def test_every_bad_submission_is_a_422_naming_the_field_and_writes_nothing(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    for case, body, field, reason in bad_bodies(catalog):
        response = http.post("/v1/assessments", json=body, headers=submitter)

        assert response.status_code == 422, (case, response.text)
        details = response.json()["error"]["details"]
        matching = [d for d in details if d["field"] == field]
        assert matching, (case, details)
        assert reason in matching[0]["reason"], (case, matching[0])
    assert written(engine) == dict.fromkeys((*WRITTEN_TABLES, "async_jobs"), 0)


def test_every_problem_of_a_submission_is_reported_at_once(
    http: TestClient, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    body = answer(catalog, "scale", 99)(answer(catalog, "mc", "z")(submission(catalog)))

    response = http.post("/v1/assessments", json=body, headers=submitter)

    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert fields == ["responses[0].answer", "responses[4].answer"]


def test_an_inactive_role_cannot_be_assessed(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE role_catalog SET active = false"))

    response = http.post("/v1/assessments", json=submission(catalog), headers=submitter)

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "role_id"


def test_a_role_retired_after_intake_knew_its_questions_is_refused_and_nothing_written(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    # The first submission makes the API process know the role's questions ...
    first = http.post("/v1/assessments", json=submission(catalog), headers=submitter)
    assert first.status_code == 202, first.text
    before = written(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE role_catalog SET active = false"))

    # ... and the write itself still refuses what was retired since.
    again = submission(catalog, user={"external_id": "u-2", "email": "bo@example.com"})
    response = http.post("/v1/assessments", json=again, headers=submitter)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "role_id"
    assert written(engine) == before


@pytest.mark.parametrize("idempotency_key", [None, "revoked-key-1"])
def test_a_key_revoked_right_after_a_submission_writes_nothing_more(
    http: TestClient,
    engine: Engine,
    catalog: dict[str, str],
    keys: dict[str, Key],
    idempotency_key: str | None,
) -> None:
    key = keys["submitter"]
    headers = dict(key.headers)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    assert http.post("/v1/assessments", json=submission(catalog), headers=headers).is_success
    before = written(engine)
    with transaction(engine) as session:
        assert revoke_client(session, key.client_id) is not None

    # At once: neither a new submission nor a replay of the first answer.
    response = http.post("/v1/assessments", json=submission(catalog), headers=headers)

    assert response.status_code == 401, response.text
    assert "revoked" in response.json()["error"]["message"]
    assert written(engine) == before


def test_a_question_of_another_role_is_refused(
    http: TestClient, catalog: dict[str, str], keys: dict[str, Key], submitter: dict[str, str]
) -> None:
    admin = keys["admin"].headers
    other_role = http.post("/v1/roles", json=role_body(name="Other"), headers=admin).json()["id"]
    foreign = http.post(
        "/v1/questions", json=multiple_choice_body(other_role), headers=admin
    ).json()["id"]
    body = submission(catalog, responses=[{"question_id": foreign, "answer": "a"}])

    response = http.post("/v1/assessments", json=body, headers=submitter)

    assert response.status_code == 422
    assert "not an active question of role" in response.json()["error"]["message"]


def test_malformed_json_and_oversized_bodies(
    http: TestClient, engine: Engine, submitter: dict[str, str]
) -> None:
    broken = http.post(
        "/v1/assessments",
        content=b'{"user": ',
        headers={**submitter, "Content-Type": "application/json"},
    )
    huge = http.post(
        "/v1/assessments",
        content=b"[" + b"1," * 600_000 + b"1]",
        headers={**submitter, "Content-Type": "application/json"},
    )

    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "malformed_json"
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "payload_too_large"
    assert count(engine, "assessments") == 0


def post_with_key(http: TestClient, key: str, body: Body, headers: dict[str, str]) -> Any:
    return http.post("/v1/assessments", json=body, headers={**headers, "Idempotency-Key": key})


def test_the_same_idempotency_key_and_body_returns_the_first_answer(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    first = post_with_key(http, "k-1", submission(catalog), submitter)
    again = post_with_key(http, "k-1", submission(catalog), submitter)

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert count(engine, "assessments") == 1
    assert count(engine, SUBMISSION_JOBS) == 2


def test_the_same_idempotency_key_with_another_body_is_a_conflict(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    post_with_key(http, "k-1", submission(catalog), submitter)

    other = post_with_key(http, "k-1", submission(catalog, metadata={"x": 1}), submitter)

    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert count(engine, "assessments") == 1


def test_idempotency_keys_are_per_client_and_only_kept_for_accepted_submissions(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    other_app = add_client(engine, "submitter")
    refused = post_with_key(http, "k-1", answer(catalog, "mc", "z")(submission(catalog)), submitter)
    mine = post_with_key(http, "k-1", submission(catalog), submitter)
    theirs = post_with_key(http, "k-1", submission(catalog), other_app.headers)

    assert refused.status_code == 422
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]
    assert count(engine, "assessments") == 2
    assert count(engine, "idempotency_keys") == 2


def test_simultaneous_requests_with_one_key_make_one_assessment(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: post_with_key(http, "k-race", submission(catalog), submitter), range(8)
            )
        )

    assert [a.status_code for a in answers] == [202] * 8
    assert len({a.json()["id"] for a in answers}) == 1
    assert count(engine, "assessments") == 1


def test_a_bad_idempotency_key_is_refused(
    http: TestClient, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    response = post_with_key(http, "has space", submission(catalog), submitter)

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["location"] == "header"


def add_recommendation(engine: Engine, assessment_id: str) -> uuid.UUID:
    with transaction(engine) as session:
        recommendation = Recommendation(
            assessment_id=uuid.UUID(assessment_id), status="ready", summary="Learn indexing"
        )
        session.add(recommendation)
        session.flush()
        trace = RagTrace(
            recommendation_id=recommendation.id,
            source_uri="credential:1",
            snippet="Indexing course",
            similarity=Decimal("0.812"),
        )
        session.add(trace)
        session.flush()
        for position, title in ((2, "Second"), (1, "First")):
            session.add(
                RecommendationItem(
                    recommendation_id=recommendation.id,
                    title=title,
                    confidence=Decimal("0.7"),
                    rationale="matches sql",
                    position=position,
                    source_trace_ids=[trace.id],
                )
            )
        return recommendation.id


def test_recommendations_are_pending_then_ready_with_items_in_order(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    created = http.post("/v1/assessments", json=submission(catalog), headers=submitter).json()
    link = created["links"]["recommendations"]
    pending = http.get(link, headers=submitter).json()
    add_recommendation(engine, created["id"])

    ready = http.get(link, headers=submitter).json()

    assert pending["status"] == "pending" and pending["items"] == []
    assert ready["status"] == "ready"
    assert [i["title"] for i in ready["items"]] == ["First", "Second"]
    assert ready["items"][0]["traces"][0]["snippet"] == "Indexing course"
    assert ready["items"][0]["traces"][0]["similarity"] == pytest.approx(0.812)


def test_feedback_is_stored_for_the_owner(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    created = http.post("/v1/assessments", json=submission(catalog), headers=submitter).json()
    recommendation_id = add_recommendation(engine, created["id"])
    url = f"/v1/recommendations/{recommendation_id}/feedback"

    stored = http.post(url, json={"relevance": 4, "acceptance": "accepted"}, headers=submitter)
    bad = http.post(url, json={"relevance": 6}, headers=submitter)

    assert stored.status_code == 201, stored.text
    assert stored.json()["relevance"] == 4
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "relevance"
    feedback = rows(
        engine, "SELECT relevance_score, acceptance_status FROM recommendation_feedback"
    )
    assert feedback == [{"relevance_score": 4, "acceptance_status": "accepted"}]


def test_another_clients_resources_are_404_and_other_roles_403(
    http: TestClient,
    engine: Engine,
    catalog: dict[str, str],
    keys: dict[str, Key],
    submitter: dict[str, str],
) -> None:
    created = http.post("/v1/assessments", json=submission(catalog), headers=submitter).json()
    recommendation_id = add_recommendation(engine, created["id"])
    stranger = add_client(engine, "submitter").headers
    feedback_url = f"/v1/recommendations/{recommendation_id}/feedback"

    reads = [
        http.get(created["links"]["self"], headers=stranger),
        http.get(created["links"]["recommendations"], headers=stranger),
        http.post(feedback_url, json={"relevance": 1}, headers=stranger),
        http.get(f"/v1/assessments/{uuid.uuid4()}", headers=submitter),
    ]
    wrong_role = [
        http.get(created["links"]["self"], headers=keys[role].headers)
        for role in ("operator", "admin")
    ]
    anonymous = http.post("/v1/assessments", json=submission(catalog))

    assert [r.status_code for r in reads] == [404] * 4
    assert all(r.json()["error"]["code"] == "not_found" for r in reads)
    assert [r.status_code for r in wrong_role] == [403, 403]
    assert anonymous.status_code == 401
    assert count(engine, "recommendation_feedback") == 0


# -- found by the fuzz run (tests/e2e/test_api_fuzz.py) ------------------------------


def test_text_postgres_cannot_store_is_422_naming_the_field_and_writes_nothing(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    """NUL characters and unpaired surrogates used to reach PostgreSQL (or the encoder)
    and answer 500."""
    essay = {"question_id": catalog["essay"], "answer": "A b-tree\u0000 index"}
    bodies = [
        (submission(catalog, responses=[essay]), "responses[0].answer", "NUL"),
        (submission(catalog, metadata={"k": ["\u0000"]}), "metadata.k[0]", "NUL"),
        (submission(catalog, metadata={"\ud83dk": 1}), "metadata", "unpaired surrogate"),
        (
            submission(catalog, user={"external_id": "u\u0000", "email": "a@example.com"}),
            "user.external_id",
            "NUL",
        ),
    ]
    headers = {**submitter, "Content-Type": "application/json"}
    for body, field, reason in bodies:
        response = http.post("/v1/assessments", content=json.dumps(body), headers=headers)

        assert response.status_code == 422, response.text
        details = response.json()["error"]["details"]
        assert [d["field"] for d in details] == [field], details
        assert reason in details[0]["reason"]
    assert written(engine) == dict.fromkeys((*WRITTEN_TABLES, "async_jobs"), 0)


def test_feedback_values_of_the_wrong_json_type_are_not_coerced(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    """``"relevance": "5"`` used to be stored as 5: the spec says integer."""
    created = http.post("/v1/assessments", json=submission(catalog), headers=submitter).json()
    url = f"/v1/recommendations/{add_recommendation(engine, created['id'])}/feedback"

    for relevance in ("5", True, 4.5):
        response = http.post(url, json={"relevance": relevance}, headers=submitter)

        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["field"] == "relevance"
    assert count(engine, "recommendation_feedback") == 0


def test_the_pruner_deletes_idempotency_keys_past_their_retention(
    http: TestClient, engine: Engine, catalog: dict[str, str], submitter: dict[str, str]
) -> None:
    post_with_key(http, "old", submission(catalog), submitter)
    post_with_key(http, "new", submission(catalog, metadata={"n": 2}), submitter)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE idempotency_keys SET created_at = now() - interval '49 hours'"
                 " WHERE key = 'old'")
        )  # fmt: skip

    Pruner(engine, retention_hours=24 * 7, idempotency_hours=48.5).run_once()

    assert [r["key"] for r in rows(engine, "SELECT key FROM idempotency_keys")] == ["new"]
