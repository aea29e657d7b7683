"""A schema-driven fuzz run (schemathesis) over ``/openapi.json`` of a real ``gradeflow api``.

Every operation of the spec gets generated requests, valid and invalid, sent over
HTTP to the app served by uvicorn (in a thread, so the test depends on no CLI) on a
real PostgreSQL and Redis with a seeded catalog. Each
request carries the key of a role the operation admits, of another role, a
malformed key or none. Every answer must be documented by the spec: no 5xx, a
documented status code, content type, headers and body; invalid input must be
refused with a 4xx; and an operation that needs a key must refuse a request
without one or with a bad one.

Generated ids rarely name anything, so some of them are swapped for ids of the
seeded catalog (a real role, question, assessment or recommendation) and some
answers for answers of the right shape; the swap keeps a valid request valid and
leaves an invalid one invalid. The run is derandomized and bounded so CI stays
quick and repeatable. The spec is built once at collection (one test per operation)
and must equal the one the server serves.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import CheckFunction
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import Engine

from gradeflow.api.app import create_app
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
from tests.support.processes import wait_for

#: Generated requests per operation (each with up to a few follow-up probes).
MAX_EXAMPLES = 40

#: Who may call what (DESIGN.md, "External contract"), by path prefix: the key an
#: operation is mostly called with. An operation not listed gets every key alike.
ROLE_OF_PATH = {
    "/v1/assessments": "submitter",
    "/v1/recommendations": "submitter",
    "/v1/webhook-endpoints": "submitter",
    "/v1/webhook-events": "submitter",
    "/v1/jobs": "operator",
    "/v1/roles": "admin",
    "/v1/questions": "admin",
    "/v1/credentials": "admin",
}

#: ``positive_data_acceptance`` expects a 2xx for every schema-valid request, but a
#: well-formed id that names nothing is rightly a 404 or 422: the spec cannot say
#: which ids exist. Every other built-in check runs.
EXCLUDED_CHECKS: list[CheckFunction] = [positive_data_acceptance]


@dataclass(frozen=True)
class Seeded:
    """The catalog and the keys the fuzzer's requests may name."""

    keys: dict[str, Key]
    role_id: str
    #: question id → answers of the right shape for it.
    answers: dict[str, list[Any]]
    assessment_id: str
    recommendation_id: str


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
    return Seeded(keys, role_id, answer_sets, assessment_id, recommendation_id)


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


def right_role(path: str) -> str | None:
    return next((role for prefix, role in ROLE_OF_PATH.items() if path.startswith(prefix)), None)


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

    path = case.path_parameters or {}
    if not negative_at(case, ParameterLocation.PATH):
        if "assessment_id" in path:
            path["assessment_id"] = maybe(path["assessment_id"], seeded.assessment_id)
        if "recommendation_id" in path:
            path["recommendation_id"] = maybe(path["recommendation_id"], seeded.recommendation_id)
    query = case.query or {}
    if "role_id" in query and not negative_at(case, ParameterLocation.QUERY):
        query["role_id"] = maybe(query["role_id"], seeded.role_id)
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


def credentials(case: Case[Any], chance: random.Random, seeded: Seeded) -> dict[str, str]:
    """The Authorization header to send: mostly the right role's key; else another
    role's, a bad one or none. Generated headers meant to be invalid are sent as they are."""
    if negative_at(case, ParameterLocation.HEADER):
        return {}
    if case.headers:
        for name in [n for n in case.headers if n.lower() == "authorization"]:
            del case.headers[name]
    role = right_role(case.path)
    choices: list[dict[str, str]] = []
    if role is not None:
        choices += [seeded.keys[role].headers] * 3
    choices += [key.headers for key in seeded.keys.values()]
    choices += [{}, {"Authorization": "Bearer gf_not-a-key"}, {"Authorization": "Basic eDp5"}]
    return chance.choice(choices)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_of_the_api_is_in_its_spec(
    case: Case[Any], api_base: str, seeded: Seeded
) -> None:
    chance = chance_of(case)
    swap_ids(case, chance, seeded)
    case.call_and_validate(
        base_url=api_base,
        headers=credentials(case, chance, seeded),
        excluded_checks=EXCLUDED_CHECKS,
        timeout=30,
    )
