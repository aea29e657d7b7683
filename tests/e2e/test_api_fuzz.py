"""A schema-driven fuzz run (schemathesis) over ``/openapi.json`` of a real ``gradeflow api``.

Every operation of the spec gets generated requests, valid and invalid, sent over
HTTP to the app served by uvicorn (in a thread, so the test depends on no CLI) on a
real PostgreSQL and Redis with a seeded catalog. Most requests carry the key of a
role the operation admits (tests/security/access.py says which: submitter, operator
or admin); the rest the key of another role, a malformed, unknown or revoked key, or
none. Every answer must be documented by the spec: no 5xx, a documented status code,
content type, headers and body; invalid input must be refused with a 4xx. And the
key decides: an admitted key is never refused as a key (401/403), another role's key
always gets 403, a missing or bad key 401 (only a body too big or not JSON at all is
refused before the key is looked at). Each operation must have been called at least
once with an admitted key that got past authorization.

Generated ids rarely name anything, so some of them are swapped for ids of the
seeded data (a real role, question, assessment, recommendation, webhook endpoint,
event or job) and some answers for answers of the right shape; the swap keeps a
valid request valid and leaves an invalid one invalid. The run is derandomized and
bounded so CI stays quick and repeatable. The spec is built once at collection (one
test per operation) and must equal the one the server serves.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import CheckFunction
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import Engine, text

from gradeflow.api.app import create_app
from gradeflow.db.clients import revoke_client
from gradeflow.db.engine import transaction
from gradeflow.jobs.webhooks import emit_event
from gradeflow.settings import Settings
from gradeflow.workers.redis_server import free_port
from tests.integration.api_helpers import (
    Key,
    add_client,
    api_settings,
    credential_body,
    essay_body,
    multiple_choice_body,
    profile_body,
    role_body,
)
from tests.integration.test_api_assessments import add_recommendation
from tests.security.access import roles_admitted
from tests.support.processes import wait_for

#: Generated requests per operation (each with up to a few follow-up probes).
MAX_EXAMPLES = 40
#: How many times more often an admitted key is sent than each other kind of credential.
ADMITTED_WEIGHT = 3
#: Answers given before the key is looked at: a body that is not JSON (400) or too big
#: (413), a method the path does not serve (405).
BEFORE_AUTHENTICATION = (400, 405, 413)

#: ``positive_data_acceptance`` expects a 2xx for every schema-valid request, but a
#: well-formed id that names nothing is rightly a 404 or 422: the spec cannot say
#: which ids exist. Every other built-in check runs.
EXCLUDED_CHECKS: list[CheckFunction] = [positive_data_acceptance]


@dataclass(frozen=True)
class Seeded:
    """The catalog, the data and the keys the fuzzer's requests may name."""

    keys: dict[str, Key]
    revoked: Key
    role_id: str
    #: question id → answers of the right shape for it.
    answers: dict[str, list[Any]]
    assessment_id: str
    recommendation_id: str
    endpoint_id: str
    event_id: str
    job_id: str

    def real_id(self, parameter: str) -> str | None:
        """The seeded id for a path or query parameter of that name, if any."""
        return {
            "assessment_id": self.assessment_id,
            "recommendation_id": self.recommendation_id,
            "endpoint_id": self.endpoint_id,
            "event_id": self.event_id,
            "job_id": self.job_id,
            "role_id": self.role_id,
        }.get(parameter)


Credential = Literal["admitted", "other role", "no key", "bad key", "as generated"]


@dataclass(frozen=True)
class Sent:
    """The Authorization header a request carries, and what kind of credential it is."""

    headers: dict[str, str]
    kind: Credential


@dataclass
class Tally:
    """What the requests of one operation got, by the kind of credential they carried."""

    statuses: dict[Credential, list[int]] = field(default_factory=dict)

    def add(self, kind: Credential, status: int) -> None:
        self.statuses.setdefault(kind, []).append(status)


@pytest.fixture
def api_base(database_url: str, redis_url: str) -> Iterator[str]:
    """A uvicorn server of the app on a loopback port, in a thread of this process."""
    app = create_app(api_settings(database_url, redis_url))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="fuzzed-api", daemon=True)
    thread.start()
    assert wait_for(lambda: server.started or not thread.is_alive(), timeout=30)
    assert server.started, "the API did not start"
    base = f"http://127.0.0.1:{server.config.port}"
    assert httpx.get(f"{base}/openapi.json").json() == SPEC
    yield base
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def seeded(api_base: str, engine: Engine) -> Seeded:
    keys = {role: add_client(engine, role) for role in ("submitter", "operator", "admin")}
    with httpx.Client(base_url=api_base, headers=keys["admin"].headers, timeout=30) as admin:

        def created(path: str, body: Any) -> Any:
            response = admin.post(path, json=body)
            assert response.status_code == 201, response.text
            return response.json()

        role_id = created("/v1/roles", role_body())["id"]
        mc = created("/v1/questions", multiple_choice_body(role_id))["id"]
        essay = created("/v1/questions", essay_body(role_id))["id"]
        profile = created("/v1/questions", profile_body(role_id))["id"]
        created("/v1/credentials", [credential_body(i) for i in range(3)])
    answer_sets = {mc: ["a", "b"], essay: ["A b-tree keeps keys sorted."], profile: ["daily"]}
    with httpx.Client(base_url=api_base, headers=keys["submitter"].headers) as submitter:
        response = submitter.post(
            "/v1/assessments",
            json={
                "user": {"external_id": "seed", "email": "seed@example.com"},
                "role_id": role_id,
                "responses": [{"question_id": q, "answer": a[0]} for q, a in answer_sets.items()],
            },
        )
        assert response.status_code == 202, response.text
    assessment_id = response.json()["id"]
    recommendation_id = str(add_recommendation(engine, assessment_id))
    endpoint_id, event_id = seed_webhooks(api_base, engine, keys["submitter"])
    return Seeded(
        keys=keys,
        revoked=revoked_client(engine),
        role_id=role_id,
        answers=answer_sets,
        assessment_id=assessment_id,
        recommendation_id=recommendation_id,
        endpoint_id=endpoint_id,
        event_id=event_id,
        job_id=job_of(engine, assessment_id),
    )


def seed_webhooks(api_base: str, engine: Engine, submitter: Key) -> tuple[str, str]:
    """A webhook endpoint of the submitter and one event on it."""
    body = {"url": "https://93.184.216.34/hook", "event_types": ["assessment.completed"]}
    response = httpx.post(
        f"{api_base}/v1/webhook-endpoints", json=body, headers=submitter.headers, timeout=30
    )
    assert response.status_code == 201, response.text
    with engine.begin() as conn:
        [job] = emit_event(conn, submitter.client_id, "assessment.completed", {"seeded": True})
    return response.json()["id"], str(job.payload["event_id"])


def revoked_client(engine: Engine) -> Key:
    key = add_client(engine, "submitter")
    with transaction(engine) as session:
        assert revoke_client(session, key.client_id) is not None
    return key


def job_of(engine: Engine, assessment_id: str) -> str:
    with engine.connect() as conn:
        job_id = conn.execute(
            text("SELECT id FROM async_jobs WHERE assessment_id = :id LIMIT 1"),
            {"id": assessment_id},
        ).scalar_one()
    return str(job_id)


def served_spec() -> dict[str, Any]:
    """The spec the app serves (building the app connects to nothing)."""
    app = create_app(
        Settings(
            database_url="postgresql://spec@127.0.0.1/spec",
            redis_url="redis://127.0.0.1:6379/0",
            _env_file=None,
        )
    )
    try:
        return app.openapi()
    finally:
        app.state.services.close()


SPEC = served_spec()
schema = schemathesis.openapi.from_dict(SPEC)


def chance_of(case: Case[Any]) -> random.Random:
    """Choices made for ``case`` as a function of it, so a run repeats exactly.

    (Drawing them from Hypothesis would need ``@schema.given``, which turns off the
    spec's examples and schemathesis' coverage phase.)
    """
    generated = [case.method, case.path, case.path_parameters, case.query, case.headers]
    text = json.dumps([*generated, case.body], sort_keys=True, default=repr)
    return random.Random(hashlib.sha256(text.encode()).hexdigest())


def is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def negative_at(case: Case[Any], location: ParameterLocation) -> bool:
    return case.meta is not None and case.meta.is_negative_at(location)


def swap_ids(case: Case[Any], chance: random.Random, seeded: Seeded) -> None:
    """Point some well-formed generated ids (and answers) at the seeded catalog.

    Only in parts generated valid: a swap keeps them valid, and an invalid part is
    left exactly as the fuzzer meant it.
    """

    def maybe(value: Any, real: str) -> Any:
        return real if is_uuid(value) and chance.random() < 0.5 else value

    for location, values in (
        (ParameterLocation.PATH, case.path_parameters or {}),
        (ParameterLocation.QUERY, case.query or {}),
    ):
        if negative_at(case, location):
            continue
        for name, value in values.items():
            real = seeded.real_id(name)
            if real is not None:
                values[name] = maybe(value, real)
    body: Any = case.body
    if not isinstance(body, dict) or negative_at(case, ParameterLocation.BODY):
        return
    if "role_id" in body:
        body["role_id"] = maybe(body["role_id"], seeded.role_id)
    for item in body.get("responses") or []:
        if chance.random() < 0.5:
            question_id = chance.choice(sorted(seeded.answers))
            item["question_id"] = question_id
            if chance.random() < 0.5:
                item["answer"] = chance.choice(seeded.answers[question_id])


def credentials(case: Case[Any], chance: random.Random, seeded: Seeded) -> Sent:
    """The Authorization header to send: mostly the key of a role the operation admits;
    else another role's, a bad or revoked one, or none. Generated headers meant to be
    invalid are sent as they are."""
    if negative_at(case, ParameterLocation.HEADER):
        return Sent({}, "as generated")
    if case.headers:
        for name in [n for n in case.headers if n.lower() == "authorization"]:
            del case.headers[name]
    # An operation open to anyone admits every key.
    admitted = roles_admitted(case.method, case.path) or frozenset(seeded.keys)
    choices: list[Sent] = []
    for role, key in sorted(seeded.keys.items()):
        if role in admitted:
            choices += [Sent(key.headers, "admitted")] * ADMITTED_WEIGHT
        else:
            choices.append(Sent(key.headers, "other role"))
    bad = [
        {"Authorization": "Bearer gf_not-a-key"},
        {"Authorization": "Basic eDp5"},
        {"Authorization": "Bearer gf_" + "Q" * 43},
        seeded.revoked.headers,
    ]
    choices += [Sent({}, "no key"), *(Sent(headers, "bad key") for headers in bad)]
    return chance.choice(choices)


#: The statuses each kind of credential may get from an operation that needs a key.
ALLOWED_FOR: dict[Credential, tuple[int, ...]] = {
    "other role": (403, *BEFORE_AUTHENTICATION),
    "no key": (401, *BEFORE_AUTHENTICATION),
    "bad key": (401, *BEFORE_AUTHENTICATION),
}


def check_the_key_decides(case: Case[Any], sent: Sent, status: int) -> None:
    """An admitted key is never refused as a key; any other credential always is."""
    if not roles_admitted(case.method, case.path) or negative_at(case, ParameterLocation.PATH):
        return  # open to anyone, or a path that may not even reach the operation
    if sent.kind == "admitted":
        assert status not in (401, 403), f"an admitted key got {status}"
    elif sent.kind in ALLOWED_FOR:
        allowed = ALLOWED_FOR[sent.kind]
        assert status in allowed, f"{sent.kind}: {status}, expected one of {allowed}"


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """Once all of an operation's examples ran: an admitted key got past authorization
    (so the operation was really fuzzed, not just refused)."""
    seen = Tally()
    yield seen
    admitted = seen.statuses.get("admitted", [])
    assert [s for s in admitted if s not in (401, 403)], (
        f"{request.node.name}: no request with an admitted key got past authorization: {seen}"
    )


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_of_the_api_is_in_its_spec(
    case: Case[Any], api_base: str, seeded: Seeded, tally: Tally
) -> None:
    chance = chance_of(case)
    swap_ids(case, chance, seeded)
    sent = credentials(case, chance, seeded)
    response = case.call_and_validate(
        base_url=api_base,
        headers=sent.headers,
        excluded_checks=EXCLUDED_CHECKS,
        timeout=30,
    )
    check_the_key_decides(case, sent, response.status_code)
    tally.add(sent.kind, response.status_code)


# -- found by this run -------------------------------------------------------------------


def test_since_is_an_rfc3339_date_time_as_the_spec_says(api_base: str, seeded: Seeded) -> None:
    """A Unix timestamp, a bare date or a time without an offset is not a ``date-time``
    (pydantic alone took ``since=123`` as 1970-01-01T00:02:03Z)."""
    url = f"{api_base}/v1/webhook-endpoints/{seeded.endpoint_id}/recover"
    headers = seeded.keys["submitter"].headers
    refused = {
        since: httpx.post(url, params={"since": since}, headers=headers, timeout=30)
        for since in ("123", "0", "2020-01-01", "2020-01-01T00:00:00", "2020-01-01 00:00:00Z")
    }
    accepted = httpx.post(url, params={"since": "2020-01-01T00:00:00.5+02:00"}, headers=headers)

    assert {since: answer.status_code for since, answer in refused.items()} == dict.fromkeys(
        refused, 422
    )
    assert all(a.json()["error"]["details"][0]["field"] == "since" for a in refused.values())
    assert accepted.status_code == 200, accepted.text
