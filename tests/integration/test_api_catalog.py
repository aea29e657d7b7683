"""The catalog endpoints in-process (FastAPI's TestClient) on a real PostgreSQL and Redis:
roles, versioned questions with checked rubrics, credentials in bulk with embed jobs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from gradeflow.api.app import create_app
from tests.integration.api_helpers import (
    CHOICES,
    Key,
    add_client,
    api_settings,
    credential_body,
    essay_body,
    multiple_choice_body,
    profile_body,
    role_body,
)


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
def admin(keys: dict[str, Key]) -> dict[str, str]:
    return keys["admin"].headers


@pytest.fixture
def role_id(http: TestClient, admin: dict[str, str]) -> str:
    response = http.post("/v1/roles", json=role_body(), headers=admin)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def audit_rows(engine: Engine, action: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM audit_logs WHERE action = :action ORDER BY created_at"),
            {"action": action},
        )
        return [dict(row._mapping) for row in rows]


def assert_invalid(response: Any, field: str, reason: str = "") -> None:
    """A 422 in the one error shape whose details name ``field`` (and ``reason``)."""
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    matching = [d for d in error["details"] if d["field"] == field and reason in d["reason"]]
    assert matching, error


# -- roles -------------------------------------------------------------------------


def test_admin_creates_a_role_every_client_lists_it(
    http: TestClient, keys: dict[str, Key], engine: Engine
) -> None:
    created = http.post("/v1/roles", json=role_body(), headers=keys["admin"].headers)
    assert created.status_code == 201, created.text
    role = created.json()
    assert role["name"] == "Data analyst"
    assert role["skills_profile"] == {"sql": 80, "statistics": 60}
    assert role["active"] is True
    for key in keys.values():
        listed = http.get("/v1/roles", headers=key.headers)
        assert listed.status_code == 200
        assert [r["id"] for r in listed.json()["items"]] == [role["id"]]
    (audit,) = audit_rows(engine, "role.create")
    assert audit["actor_id"] == keys["admin"].client_id
    assert audit["actor_role"] == "admin"
    assert (audit["resource_type"], str(audit["resource_id"])) == ("role", role["id"])
    # Its skill profile is embedded for retrieval, like a credential.
    with engine.connect() as conn:
        jobs = conn.execute(text("SELECT job_type, payload FROM async_jobs")).all()
    assert [tuple(job) for job in jobs] == [("embed_role", {"role_id": role["id"]})]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (role_body(skills_profile={"sql": 150}), "skills_profile.sql", "less than or equal to 100"),
        (role_body(skills_profile={"sql": -1}), "skills_profile.sql", "greater than or equal to 0"),
        (role_body(skills_profile={"sql": "high"}), "skills_profile.sql", "valid number"),
        (role_body(skills_profile=["sql"]), "skills_profile", "valid dictionary"),
        (role_body(colour="blue"), "colour", "Extra inputs are not permitted"),
        (role_body(name=""), "name", "at least 1 character"),
        (role_body(name="x" * 65), "name", "at most 64 characters"),
        ({"description": "no name"}, "name", "Field required"),
        (role_body(active="maybe"), "active", "valid boolean"),
    ],
)
def test_bad_role_bodies_are_422_naming_the_field(
    http: TestClient, admin: dict[str, str], engine: Engine, body: Any, field: str, reason: str
) -> None:
    assert_invalid(http.post("/v1/roles", json=body, headers=admin), field, reason)
    assert scalar(engine, "SELECT count(*) FROM role_catalog") == 0


# -- questions ---------------------------------------------------------------------


def test_each_question_type_is_stored_with_its_rubric(
    http: TestClient, admin: dict[str, str], role_id: str, engine: Engine
) -> None:
    bodies = [multiple_choice_body(role_id), essay_body(role_id), profile_body(role_id)]
    created = [http.post("/v1/questions", json=b, headers=admin) for b in bodies]
    assert [r.status_code for r in created] == [201, 201, 201], [r.text for r in created]
    mc, essay, profile = (r.json() for r in created)
    assert mc["choices"] == CHOICES and mc["weight"] == 1.5
    assert mc["rubric"] == {
        "correct": ["a"], "multi_select": False, "negative_marking": 0.0, "skills": ["sql"],
    }  # fmt: skip
    assert essay["choices"] is None
    assert essay["rubric"]["criteria"][0]["levels"][1] == {"score": 5, "descriptor": "right"}
    assert profile["rubric"] == {
        "skill": "sql",
        "mapping": {"none": 0.0, "daily": 90.0},
        "scale": None,
        "multi_select": False,
    }
    for question in (mc, essay, profile):
        assert question["active"] is True and question["lineage_id"] == question["id"]
    listed = http.get("/v1/questions", params={"role_id": role_id}, headers=admin).json()
    assert [q["id"] for q in listed["items"]] == [mc["id"], essay["id"], profile["id"]]
    other_role = http.get("/v1/questions", params={"role_id": str(uuid.uuid4())}, headers=admin)
    assert other_role.json() == {"items": []}
    assert len(audit_rows(engine, "question.create")) == 3


def mc(role_id: str, **rubric: Any) -> dict[str, Any]:
    base = {"correct": ["a"], "multi_select": False, "negative_marking": 0, "skills": []}
    return multiple_choice_body(role_id, rubric={**base, **rubric})


def essay_criteria(**criterion: Any) -> dict[str, Any]:
    levels = [{"score": 0, "descriptor": "no"}, {"score": 1, "descriptor": "yes"}]
    base = {"name": "c", "description": "d", "levels": levels}
    return {"criteria": [{**base, **criterion}], "skills": []}


BAD_QUESTIONS: list[tuple[str, Any, str, str]] = [
    ("correct not a choice", lambda r: mc(r, correct=["z"]), "rubric.correct", "z"),
    ("two answers, single select", lambda r: mc(r, correct=["a", "b"]), "rubric", "exactly one"),
    ("repeated answer", lambda r: mc(r, correct=["a", "a"], multi_select=True), "rubric.correct",
     "unique"),
    ("no answer", lambda r: mc(r, correct=[]), "rubric.correct", "at least 1"),
    ("negative marking < 0", lambda r: mc(r, negative_marking=-1), "rubric.negative_marking",
     "greater than or equal to 0"),
    ("unknown rubric field", lambda r: mc(r, answer="a"), "rubric.answer", "Extra inputs"),
    ("no choices", lambda r: multiple_choice_body(r, choices=None), "choices", "at least 2"),
    ("one choice", lambda r: multiple_choice_body(r, choices=CHOICES[:1]), "choices",
     "at least 2"),
    ("repeated choice id", lambda r: multiple_choice_body(r, choices=[CHOICES[0], CHOICES[0]]),
     "choices", "unique"),
    ("choice without text", lambda r: multiple_choice_body(r, choices=[{"id": "a"}, CHOICES[1]]),
     "choices[0].text", "Field required"),
    ("essay with choices", lambda r: essay_body(r, choices=CHOICES), "choices", "no choices"),
    ("essay rubric of a profile", lambda r: essay_body(r, rubric={"skill": "x", "mapping": {}}),
     "rubric.criteria", "Field required"),
    ("one level", lambda r: essay_body(r, rubric=essay_criteria(
        levels=[{"score": 1, "descriptor": "x"}])), "rubric.criteria[0].levels", "at least 2"),
    ("repeated level score", lambda r: essay_body(r, rubric=essay_criteria(
        levels=[{"score": 1, "descriptor": "x"}, {"score": 1, "descriptor": "y"}])),
     "rubric.criteria[0].levels", "unique"),
    ("fractional score", lambda r: essay_body(r, rubric=essay_criteria(
        levels=[{"score": 0.5, "descriptor": "x"}, {"score": 1, "descriptor": "y"}])),
     "rubric.criteria[0].levels[0].score", "integer"),
    ("no criteria", lambda r: essay_body(r, rubric={"criteria": [], "skills": []}),
     "rubric.criteria", "at least 1"),
    ("mapping misses a choice", lambda r: profile_body(r, rubric={"skill": "sql",
     "mapping": {"none": 0}}), "rubric.mapping", "missing: daily"),
    ("mapping level > 100", lambda r: profile_body(r, rubric={"skill": "sql",
     "mapping": {"none": 0, "daily": 101}}), "rubric.mapping.daily", "less than or equal to 100"),
    ("profile without skill", lambda r: profile_body(r, rubric={"mapping": {"none": 0,
     "daily": 1}}), "rubric.skill", "Field required"),
    ("unknown type", lambda r: multiple_choice_body(r, question_type="quiz"), "question_type",
     "multiple_choice"),
    ("zero weight", lambda r: multiple_choice_body(r, weight=0), "weight", "greater than 0"),
    ("weight too big", lambda r: multiple_choice_body(r, weight=1000), "weight",
     "less than or equal to 999.99"),
    ("weight with 3 decimals", lambda r: multiple_choice_body(r, weight=1.125), "weight",
     "2 decimal places"),
    ("empty version", lambda r: multiple_choice_body(r, version=""), "version", "at least 1"),
    ("unknown role", lambda r: multiple_choice_body(str(uuid.uuid4())), "role_id", "no role"),
    ("role id not a uuid", lambda r: multiple_choice_body("role-1"), "role_id", "valid UUID"),
    ("unknown supersedes", lambda r: multiple_choice_body(r, supersedes=str(uuid.uuid4())),
     "supersedes", "no question"),
    ("unknown field", lambda r: multiple_choice_body(r, key="q1"), "key", "Extra inputs"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "field", "reason"), BAD_QUESTIONS)
def test_a_question_that_cannot_be_applied_is_422_naming_the_field(
    http: TestClient,
    admin: dict[str, str],
    role_id: str,
    engine: Engine,
    case: str,
    body: Any,
    field: str,
    reason: str,
) -> None:
    assert_invalid(http.post("/v1/questions", json=body(role_id), headers=admin), field, reason)
    assert scalar(engine, "SELECT count(*) FROM questions") == 0


def test_a_new_version_supersedes_the_old_which_stays_for_snapshots(
    http: TestClient, admin: dict[str, str], role_id: str, engine: Engine
) -> None:
    v1 = http.post("/v1/questions", json=multiple_choice_body(role_id), headers=admin).json()
    v2_body = multiple_choice_body(role_id, version="2", prompt="Which reads?", supersedes=v1["id"])
    v2 = http.post("/v1/questions", json=v2_body, headers=admin)
    assert v2.status_code == 201, v2.text
    assert v2.json()["lineage_id"] == v1["id"] and v2.json()["supersedes_id"] == v1["id"]

    active = http.get("/v1/questions", params={"role_id": role_id}, headers=admin).json()
    assert [q["version"] for q in active["items"]] == ["2"]
    every = http.get(
        "/v1/questions", params={"role_id": role_id, "include_inactive": "true"}, headers=admin
    ).json()
    assert {(q["version"], q["active"]) for q in every["items"]} == {("1", False), ("2", True)}

    again = http.post(
        "/v1/questions", json={**v2_body, "version": "3"}, headers=admin
    )  # v1 is no longer the active version
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    same_version = http.post(
        "/v1/questions", json={**v2_body, "supersedes": v2.json()["id"]}, headers=admin
    )
    assert same_version.status_code == 409
    assert "already exists" in same_version.json()["error"]["message"]
    other_role = http.post("/v1/roles", json=role_body(name="Other"), headers=admin).json()["id"]
    moved = http.post(
        "/v1/questions",
        json={**v2_body, "role_id": other_role, "version": "3", "supersedes": v2.json()["id"]},
        headers=admin,
    )
    assert_invalid(moved, "supersedes", "same role")

    # Refused requests changed nothing: v2 is still the one active version.
    assert scalar(engine, "SELECT count(*) FROM questions WHERE active") == 1
    assert scalar(engine, "SELECT count(*) FROM questions") == 2
    (deactivated,) = audit_rows(engine, "question.deactivate")
    assert str(deactivated["resource_id"]) == v1["id"]
    assert deactivated["metadata"] == {"superseded_by": v2.json()["id"]}


def test_question_list_rejects_bad_query_parameters(
    http: TestClient, admin: dict[str, str]
) -> None:
    bad_id = http.get("/v1/questions", params={"role_id": "x"}, headers=admin)
    assert_invalid(bad_id, "role_id", "valid UUID")
    assert bad_id.json()["error"]["details"][0]["location"] == "query"
    assert_invalid(
        http.get("/v1/questions", params={"role": "x"}, headers=admin), "role", "Extra inputs"
    )


# -- credentials ---------------------------------------------------------------------


def embed_jobs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM async_jobs WHERE job_type = 'embed_credential' ORDER BY queued_at")
        )
        return [dict(row._mapping) for row in rows]


def test_one_credential_is_created_with_an_embed_job_and_its_message(
    http: TestClient, keys: dict[str, Key], engine: Engine, redis_url: str
) -> None:
    response = http.post("/v1/credentials", json=credential_body(), headers=keys["admin"].headers)
    assert response.status_code == 201, response.text
    credential = response.json()
    assert credential["title"] == "SQL certificate 0" and credential["metadata"] == {"hours": 20}
    (job,) = embed_jobs(engine)
    assert job["payload"] == {"credential_id": credential["id"]}
    assert job["status"] == "queued" and job["client_id"] == keys["admin"].client_id
    assert job["sent_at"] is not None  # its message went to Redis after the commit
    queued = redis.Redis.from_url(redis_url).hgetall("dramatiq:cpu.msgs")
    assert len(queued) == 1 and str(job["id"]).encode() in next(iter(queued.values()))
    (audit,) = audit_rows(engine, "credential.create")
    assert str(audit["resource_id"]) == credential["id"]


def test_a_list_of_1000_credentials_is_created_in_one_request(
    http: TestClient, admin: dict[str, str], engine: Engine
) -> None:
    body = [credential_body(i) for i in range(1000)]
    response = http.post("/v1/credentials", json=body, headers=admin)
    assert response.status_code == 201, response.text
    created = response.json()
    assert [c["title"] for c in created] == [b["title"] for b in body]
    jobs = embed_jobs(engine)
    assert len(jobs) == 1000
    assert {j["payload"]["credential_id"] for j in jobs} == {c["id"] for c in created}
    assert scalar(engine, "SELECT count(*) FROM credential_catalog") == 1000
    assert len(audit_rows(engine, "credential.create")) == 1000


def test_one_bad_item_in_1000_writes_nothing_and_names_its_index(
    http: TestClient, admin: dict[str, str], engine: Engine, redis_url: str
) -> None:
    body = [credential_body(i) for i in range(1000)]
    body[637]["title"] = ""
    body[901]["skills"] = "sql"
    response = http.post("/v1/credentials", json=body, headers=admin)
    assert_invalid(response, "[637].title", "at least 1 character")
    assert_invalid(response, "[901].skills", "valid list")
    assert len(response.json()["error"]["details"]) == 2
    for table in ("credential_catalog", "async_jobs", "audit_logs"):
        assert scalar(engine, f"SELECT count(*) FROM {table}") == 0
    assert redis.Redis.from_url(redis_url).hlen("dramatiq:cpu.msgs") == 0


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ([], "body", "at least 1 item"),
        ([credential_body(i) for i in range(1001)], "body", "at most 1000 items"),
        (credential_body(isbn="x"), "isbn", "Extra inputs"),
        ({"description": "untitled"}, "title", "Field required"),
        ("a credential", "title", "Field required"),
        ([credential_body(), 5], "[1]", "valid dictionary"),
    ],
)
def test_bad_credential_bodies_are_422(
    http: TestClient, admin: dict[str, str], engine: Engine, body: Any, field: str, reason: str
) -> None:
    if isinstance(body, str):  # a JSON string, not an object
        response = http.post(
            "/v1/credentials",
            content=f'"{body}"',
            headers={**admin, "Content-Type": "application/json"},
        )
        assert_invalid(response, "body", "valid dictionary")
        return
    assert_invalid(http.post("/v1/credentials", json=body, headers=admin), field, reason)
    assert scalar(engine, "SELECT count(*) FROM credential_catalog") == 0


def test_credentials_are_listed_in_pages_by_cursor(http: TestClient, admin: dict[str, str]) -> None:
    first = http.post(
        "/v1/credentials", json=[credential_body(i) for i in range(15)], headers=admin
    )
    second = http.post(
        "/v1/credentials", json=[credential_body(i) for i in range(15, 25)], headers=admin
    )
    expected = {c["id"] for c in first.json() + second.json()}
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/credentials", params=params, headers=admin)
        assert page.status_code == 200, page.text
        seen += [c["id"] for c in page.json()["items"]]
        pages += 1
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 25 and set(seen) == expected


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"cursor": "not-a-cursor"}, "cursor", "not a cursor"),
        ({"cursor": "W10"}, "cursor", "not a cursor"),  # base64 of []
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 1001}, "limit", "less than or equal to 1000"),
        ({"limit": "ten"}, "limit", "valid integer"),
        ({"offset": 5}, "offset", "Extra inputs"),
    ],
)
def test_bad_credential_list_queries_are_422(
    http: TestClient, admin: dict[str, str], params: dict[str, Any], field: str, reason: str
) -> None:
    response = http.get("/v1/credentials", params=params, headers=admin)
    assert_invalid(response, field, reason)
    assert response.json()["error"]["details"][0]["location"] == "query"


# -- who may call what -----------------------------------------------------------------

ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/v1/roles", lambda role_id: role_body(name="Another")),
    ("GET", "/v1/roles", None),
    ("POST", "/v1/questions", lambda role_id: multiple_choice_body(role_id)),
    ("GET", "/v1/questions", None),
    ("POST", "/v1/credentials", lambda role_id: credential_body()),
    ("GET", "/v1/credentials", None),
]
ALLOWED = {
    ("POST", "/v1/roles"): {"admin"},
    ("GET", "/v1/roles"): {"admin", "operator", "submitter"},
    ("POST", "/v1/questions"): {"admin"},
    ("GET", "/v1/questions"): {"admin"},
    ("POST", "/v1/credentials"): {"admin"},
    ("GET", "/v1/credentials"): {"admin"},
}


@pytest.mark.parametrize("caller", ["admin", "operator", "submitter", "nobody"])
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_roles_matrix_of_the_catalog_routes(
    http: TestClient,
    keys: dict[str, Key],
    role_id: str,
    engine: Engine,
    caller: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    headers = keys[caller].headers if caller in keys else {}
    audit_before = scalar(engine, "SELECT count(*) FROM audit_logs")
    response = http.request(method, path, json=body(role_id) if body else None, headers=headers)
    if caller == "nobody":
        expected, code = 401, "unauthorized"
    elif caller in ALLOWED[(method, path)]:
        expected, code = (201 if method == "POST" else 200), None
    else:
        expected, code = 403, "forbidden"
    assert response.status_code == expected, response.text
    if code:
        assert response.json()["error"]["code"] == code
    writes = 1 if method == "POST" and expected == 201 else 0
    assert scalar(engine, "SELECT count(*) FROM audit_logs") == audit_before + writes


# -- found by the fuzz run (tests/e2e/test_api_fuzz.py) ------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/roles", role_body(active=0), "active"),
        ("/v1/roles", role_body(active="true"), "active"),
        ("/v1/roles", role_body(skills_profile={"sql": "80"}), "skills_profile.sql"),
        ("/v1/credentials", [credential_body(active=0)], "[0].active"),
        ("/v1/credentials", credential_body(active=1), "active"),
    ],
)
def test_values_of_the_wrong_json_type_are_not_coerced(
    http: TestClient, admin: dict[str, str], engine: Engine, path: str, body: Any, field: str
) -> None:
    """Pydantic's lax mode used to store ``"active": 0`` as false: the spec says boolean."""
    assert_invalid(http.post(path, json=body, headers=admin), field)
    assert scalar(engine, "SELECT count(*) FROM role_catalog") == 0
    assert scalar(engine, "SELECT count(*) FROM credential_catalog") == 0


@pytest.mark.parametrize(
    ("rubric", "field"),
    [
        ({"correct": ["a"], "multi_select": "false"}, "rubric.multi_select"),
        ({"correct": ["a"], "negative_marking": "0.5"}, "rubric.negative_marking"),
    ],
)
def test_rubric_values_of_the_wrong_json_type_are_not_coerced(
    http: TestClient, admin: dict[str, str], role_id: str, rubric: Any, field: str
) -> None:
    body = multiple_choice_body(role_id, rubric=rubric)
    assert_invalid(http.post("/v1/questions", json=body, headers=admin), field)


@pytest.mark.parametrize(
    ("path", "body", "field", "reason"),
    [
        ("/v1/credentials", {"title": "ok", "metadata": {"\u0000k": 1}}, "metadata", "a key"),
        ("/v1/credentials", [credential_body(), credential_body(title="a\u0000")], "[1].title",
         "NUL"),
        ("/v1/roles", role_body(description="x\u0000y"), "description", "NUL"),
        ("/v1/roles", role_body(name="\ud800"), "name", "unpaired surrogate"),
    ],
)  # fmt: skip
def test_text_postgres_cannot_store_is_422_not_500(
    http: TestClient,
    admin: dict[str, str],
    engine: Engine,
    path: str,
    body: Any,
    field: str,
    reason: str,
) -> None:
    """NUL characters and unpaired surrogates are valid JSON but not storable: they used
    to fail in PostgreSQL (or in encoding) and answer 500."""
    content = json.dumps(body)  # ASCII: escapes the surrogate as JSON allows
    headers = {**admin, "Content-Type": "application/json"}
    assert_invalid(http.post(path, content=content, headers=headers), field, reason)
    assert scalar(engine, "SELECT count(*) FROM role_catalog") == 0
    assert scalar(engine, "SELECT count(*) FROM credential_catalog") == 0
