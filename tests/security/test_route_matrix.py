"""Every route of the web app against every kind of caller, in-process on a real
PostgreSQL and Redis.

For each route (tests/security/access.py says who may call it) the same valid request
is sent with no key, a malformed key, an unknown key, the key of each role, client A's
key naming client B's resource, and last the revoked key of a role the route admits.
Each answer must have the expected status: 401 for a missing, malformed, unknown or
revoked key; 403 for a role the route does not admit; 404 for another client's
resource, exactly the 404 of a resource that does not exist; the documented 2xx
otherwise. Every refusal has the error envelope and writes nothing. No answer given to
anyone but an operator or admin (answers, lists, errors, headers) shows anything of
client B's that the caller did not send itself.

Routes of the ops dashboard (its own login and cookie session) are only checked to
show nothing without a session: a redirect to the login page, or 401/403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gradeflow.db.schema.clients import CLIENT_ROLES
from tests.integration.api_helpers import credential_body, multiple_choice_body, role_body
from tests.security.access import (
    DASHBOARD_PREFIX,
    ROUTES,
    Access,
    Route,
    access_of,
    routes_of_the_app,
    served_routes,
    unclassified,
)
from tests.security.conftest import client_of
from tests.security.world import (
    PUBLIC_HOOK,
    Answer,
    Call,
    Tenant,
    World,
    changed_tables,
    fingerprint,
    ghost_of,
    leaked,
    seed_world,
    unique,
    without_ids,
)

#: A request to a route naming ``owner``'s resources; ``foreign``: the caller is
#: another client (client A naming client B's resources).
Builder = Callable[[World, Tenant, bool], Call]

ERROR_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}
LOGIN_PAGE = f"{DASHBOARD_PREFIX}/login"
SESSION_COOKIE = "gradeflow_ops"
MALFORMED_KEY = {"Authorization": "Bearer not-a-gradeflow-key"}
UNKNOWN_KEY = {"Authorization": "Bearer gf_" + "Q" * 43}


def fixed(method: str, path: str, **parts: Any) -> Builder:
    return lambda world, owner, foreign: Call(method, path, **parts)


def submission(world: World, owner: Tenant, foreign: bool) -> Call:
    """Own: a new submission. Foreign: client B's very body and Idempotency-Key, which
    must make client A a new assessment, never replay B's."""
    body = owner.submission if foreign else world.catalog.fresh_submission()
    key = owner.idempotency_key if foreign else unique("submission")
    return Call("POST", "/v1/assessments", json=body, headers={"Idempotency-Key": key})


def events_list(world: World, owner: Tenant, foreign: bool) -> Call:
    """Own: the whole list. Foreign: filtered by client B's endpoint (must be empty)."""
    return Call(
        "GET", "/v1/webhook-events", params={"endpoint_id": owner.endpoint_id} if foreign else {}
    )


#: A valid request for each API route (the dashboard's are built from their path).
CALLS: dict[Route, Builder] = {
    ("GET", "/healthz"): fixed("GET", "/healthz"),
    ("GET", "/readyz"): fixed("GET", "/readyz"),
    ("GET", "/metrics"): fixed("GET", "/metrics"),
    ("GET", "/openapi.json"): fixed("GET", "/openapi.json"),
    ("GET", "/docs"): fixed("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"): fixed("GET", "/docs/oauth2-redirect"),
    ("POST", "/v1/roles"): lambda w, o, f: Call(
        "POST", "/v1/roles", json=role_body(name=unique("role"))
    ),
    ("GET", "/v1/roles"): fixed("GET", "/v1/roles"),
    ("POST", "/v1/questions"): lambda w, o, f: Call(
        "POST", "/v1/questions", json=multiple_choice_body(w.catalog.role_id)
    ),
    ("GET", "/v1/questions"): lambda w, o, f: Call(
        "GET", "/v1/questions", params={"role_id": w.catalog.role_id}
    ),
    ("POST", "/v1/credentials"): fixed("POST", "/v1/credentials", json=credential_body()),
    ("GET", "/v1/credentials"): fixed("GET", "/v1/credentials"),
    ("POST", "/v1/assessments"): submission,
    ("GET", "/v1/assessments/{assessment_id}"): lambda w, o, f: Call(
        "GET", f"/v1/assessments/{o.assessment_id}"
    ),
    ("GET", "/v1/assessments/{assessment_id}/recommendations"): lambda w, o, f: Call(
        "GET", f"/v1/assessments/{o.assessment_id}/recommendations"
    ),
    ("POST", "/v1/recommendations/{recommendation_id}/feedback"): lambda w, o, f: Call(
        "POST",
        f"/v1/recommendations/{o.recommendation_id}/feedback",
        json={"relevance": 4, "acceptance": "accepted", "comments": "useful"},
    ),
    ("POST", "/v1/webhook-endpoints"): lambda w, o, f: Call(
        "POST",
        "/v1/webhook-endpoints",
        json={"url": f"{PUBLIC_HOOK}/{unique('new')}", "event_types": ["assessment.failed"]},
    ),
    ("GET", "/v1/webhook-endpoints"): fixed("GET", "/v1/webhook-endpoints"),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): lambda w, o, f: Call(
        "DELETE", f"/v1/webhook-endpoints/{o.endpoint_id if f else w.endpoint(o)}"
    ),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): lambda w, o, f: Call(
        "POST", f"/v1/webhook-endpoints/{o.endpoint_id}/rotate-secret"
    ),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/recover"): lambda w, o, f: Call(
        "POST",
        f"/v1/webhook-endpoints/{o.endpoint_id}/recover",
        params={"since": "2020-01-01T00:00:00Z"},
    ),
    ("GET", "/v1/webhook-events"): events_list,
    ("POST", "/v1/webhook-events/{event_id}/redeliver"): lambda w, o, f: Call(
        "POST", f"/v1/webhook-events/{o.event_id}/redeliver"
    ),
    ("GET", "/v1/jobs"): fixed("GET", "/v1/jobs"),
    ("POST", "/v1/jobs/{job_id}/retry"): lambda w, o, f: Call(
        "POST", f"/v1/jobs/{w.job('dead', o.client_id)}/retry"
    ),
    ("POST", "/v1/jobs/{job_id}/cancel"): lambda w, o, f: Call(
        "POST", f"/v1/jobs/{w.job('queued', o.client_id)}/cancel"
    ),
    ("POST", "/v1/jobs/retry-dead"): fixed("POST", "/v1/jobs/retry-dead"),
    ("GET", "/ops/login"): fixed("GET", "/ops/login"),
    ("POST", "/ops/login"): fixed("POST", "/ops/login", form={"api_key": "", "next": "/ops"}),
    ("GET", "/ops/static"): fixed("GET", "/ops/static/missing.css"),
}


def dashboard_call(route: Route) -> Call:
    """A dashboard request: path ids filled in; a POST carries a (forged) CSRF field."""
    method, template = route
    path = template
    for name in ("job_id", "assessment_id", "event_id"):
        path = path.replace("{" + name + "}", "00000000-0000-4000-8000-000000000000")
    form = {"csrf_token": "forged", "back": DASHBOARD_PREFIX} if method == "POST" else None
    return Call(method, path, form=form)


# -- the cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    #: The Authorization header sent (built once the world exists).
    credentials: Callable[[World], dict[str, str]]
    expected: int
    #: Whose resources the request names, and whether the caller is another client.
    foreign: bool = False
    #: Role of a valid key sent; operators and admins may see every client's data.
    role: str | None = None

    @property
    def privileged(self) -> bool:
        return self.role in ("operator", "admin")


def api_cases(access: Access, ok: int) -> list[Case]:
    """Every kind of caller with the status it must get; the revoked key goes last."""
    refused = 401 if access.needs_key else ok
    cases = [
        Case("no key", lambda w: {}, refused),
        Case("malformed key", lambda w: MALFORMED_KEY, refused),
        Case("unknown key", lambda w: UNKNOWN_KEY, refused),
    ]
    for role in CLIENT_ROLES:
        expected = ok if access.admits(role) or not access.needs_key else 403
        cases.append(Case(f"{role} key", key_headers(role), expected, role=role))
    if access.foreign is not None:
        status = ok if 200 <= access.foreign < 300 else access.foreign
        cases.append(Case("client A, client B's resource", key_headers("submitter"), status, True))
    revoked = next((r for r in CLIENT_ROLES if access.admits(r)), "submitter")
    cases.append(Case(f"revoked {revoked} key", revoked_headers(revoked), refused))
    return cases


def key_headers(role: str) -> Callable[[World], dict[str, str]]:
    return lambda world: world.key_of(role).headers


def revoked_headers(role: str) -> Callable[[World], dict[str, str]]:
    return lambda world: world.revoked_key(role).headers


def documented_success(app: FastAPI, route: Route) -> int:
    """The one 2xx the spec documents for the route (200 for routes outside the spec)."""
    method, path = route
    operation = app.openapi()["paths"].get(path, {}).get(method.lower())
    if operation is None:
        return 200
    [status] = [int(code) for code in operation["responses"] if code.startswith("2")]
    return status


# -- checking one answer -------------------------------------------------------------------


def envelope_problems(response: Answer, status: int) -> list[str]:
    """What is wrong with an error answer's body (and a 401's challenge header)."""
    try:
        body = response.json()
    except ValueError:
        return [f"not JSON: {response.text[:200]!r}"]
    error = body.get("error") if isinstance(body, dict) else None
    problems = []
    if not isinstance(error, dict) or set(body) != {"error"}:
        return [f"not the error envelope: {body!r}"]
    if error.get("code") != ERROR_CODES[status]:
        problems.append(f"code {error.get('code')!r}, not {ERROR_CODES[status]!r}")
    if not isinstance(error.get("message"), str) or not error["message"]:
        problems.append("no message")
    if not isinstance(error.get("details", []), list):
        problems.append("details is not a list")
    if status == 401 and response.headers.get("www-authenticate") != "Bearer":
        problems.append("401 without WWW-Authenticate: Bearer")
    return problems


def error_of(response: Answer) -> tuple[int, str, str]:
    """Status, code and message (ids left out) of an answer, to compare two answers."""
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return response.status_code, "", response.text
    return response.status_code, error.get("code", ""), without_ids(error.get("message", ""))


def session_cookie_set(response: Answer) -> bool:
    return f"{SESSION_COOKIE}=" in response.headers.get("set-cookie", "").replace(" ", "")


@dataclass
class Probe:
    """Sends the cases of one route and collects what is wrong."""

    http: TestClient
    world: World
    builder: Builder
    markers: set[str]
    problems: list[str]

    def run(self, case: Case) -> None:
        owner = self.world.b if case.foreign else self.world.a
        call = self.builder(self.world, owner, case.foreign)
        credentials = case.credentials(self.world)
        refused = case.expected >= 400
        before = fingerprint(self.world.engine) if refused else {}
        response = call.send(self.http, credentials)
        self.check(case, response, call)
        if refused:
            for table in changed_tables(before, fingerprint(self.world.engine)):
                self.note(case, f"a refused request wrote to {table}")
        if case.foreign and refused:
            self.compare_with_nothing(case, credentials, response)

    def check(self, case: Case, response: Answer, call: Call) -> None:
        if response.status_code != case.expected:
            got = f"{response.status_code}: {response.text[:300]}"
            self.note(case, f"expected {case.expected}, got {got}")
        elif case.expected >= 400:
            for problem in envelope_problems(response, case.expected):
                self.note(case, f"error answer: {problem}")
        if not case.privileged:
            for marker in leaked(response, call, self.markers):
                self.note(case, f"shows client B's {marker}")

    def compare_with_nothing(
        self, case: Case, credentials: dict[str, str], response: Answer
    ) -> None:
        """Client B's resource must get the very answer of a resource that does not exist."""
        ghost = self.builder(self.world, ghost_of(self.world.b), True)
        nothing = error_of(ghost.send(self.http, credentials))
        if error_of(response) != nothing:
            self.note(case, f"told from a missing one: {error_of(response)} vs {nothing}")

    def note(self, case: Case, problem: str) -> None:
        self.problems.append(f"[{case.name}] {problem}")


# -- the dashboard -------------------------------------------------------------------------


def dashboard_problems(http: TestClient, world: World, route: Route) -> list[str]:
    """Without a session (with or without an API key): the login page or 401/403."""
    call = dashboard_call(route)
    problems = []
    without_session = {"no session": {}, "no session, operator key": world.operator.headers}
    for name, credentials in without_session.items():
        response = call.send(http, credentials)
        location = urlsplit(response.headers.get("location", "")).path
        to_login = response.is_redirect and location == LOGIN_PAGE
        if not (to_login or response.status_code in (401, 403)):
            problems.append(f"[{name}] {response.status_code} {location or response.text[:200]}")
        if session_cookie_set(response):
            problems.append(f"[{name}] a session cookie was set")
    return problems


def public_page_problems(
    http: TestClient, world: World, route: Route, markers: set[str]
) -> list[str]:
    """Pages anyone may load (the login form, static files): no key asked, no data shown,
    no session given."""
    call = CALLS[route](world, world.a, False)
    response = call.send(http, {})
    problems = []
    if route == ("POST", LOGIN_PAGE):
        if not 400 <= response.status_code < 500:
            problems.append(f"a login with no key answered {response.status_code}")
    elif response.status_code in (401, 403) or response.status_code >= 500:
        problems.append(f"{response.status_code}: {response.text[:200]}")
    if route == ("GET", LOGIN_PAGE) and response.status_code != 200:
        problems.append(f"the login page answered {response.status_code}")
    if session_cookie_set(response):
        problems.append("a session cookie was set")
    problems += [f"shows client B's {m}" for m in leaked(response, call, markers)]
    return problems


# -- one world for the whole matrix ----------------------------------------------------------
# Every request of the matrix names rows made for it or rows nothing changes (a deleted
# endpoint is a spare one, a revoked key a new client's), so the routes share one world.


@pytest.fixture(scope="module")
def matrix_world(module_app: FastAPI, module_engine: Engine) -> World:
    return seed_world(client_of(module_app), module_engine)


# -- the tests -----------------------------------------------------------------------------


def test_every_served_route_is_classified() -> None:
    """A new route fails here until tests/security/access.py says who may call it."""
    missing = unclassified(routes_of_the_app())
    assert missing == [], f"classify these routes in tests/security/access.py: {missing}"


def test_every_listed_api_route_has_a_request_to_send() -> None:
    without = [route for route, access in ROUTES.items() if route not in CALLS]
    assert without == []
    assert all(access_of(route) is not None for route in CALLS)


MATRIX = sorted(set(ROUTES) | routes_of_the_app())


@pytest.mark.parametrize("route", MATRIX, ids=[f"{m} {p}" for m, p in MATRIX])
def test_route_answers_each_kind_of_caller_as_classified(
    route: Route, module_app: FastAPI, matrix_world: World
) -> None:
    app, world, http = module_app, matrix_world, client_of(module_app)
    access = access_of(route)
    assert access is not None, f"{route} is served but not classified in access.py"
    if route not in served_routes(app):
        pytest.skip(f"{route} is classified but not served (yet)")
    markers = world.b.markers(world.engine)
    if access.public_page:
        problems = public_page_problems(http, world, route, markers)
    elif access.dashboard:
        problems = dashboard_problems(http, world, route)
    else:
        assert route in CALLS, f"add a valid request for {route} to CALLS"
        probe = Probe(http, world, CALLS[route], markers, [])
        for case in api_cases(access, documented_success(app, route)):
            probe.run(case)
        problems = probe.problems
    assert problems == [], f"{route} ({access.name}):\n" + "\n".join(problems)
