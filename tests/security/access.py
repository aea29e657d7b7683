"""Who may call each route of the web app (DESIGN.md, "External contract"), in one table.

Every route the app serves must be classified here: ``test_route_matrix.py`` fails on
a served route this table does not list, so a new route cannot ship unclassified. A
route listed here that is not served (yet) fails nothing. The fuzz run
(``tests/e2e/test_api_fuzz.py``) reads the same table to pick the keys it sends.

The ops dashboard (``/ops…``) has its own login and cookie session; every route under
its prefix is classified as :data:`DASHBOARD` unless listed otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from tempfile import gettempdir

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from gradeflow.db.schema.clients import CLIENT_ROLES
from gradeflow.ops.dashboard.web import create_web_app
from gradeflow.settings import Settings

#: ``(method, path template)``, as the app declares it.
Route = tuple[str, str]


@dataclass(frozen=True)
class Access:
    """Who may call a route.

    ``roles`` are the API key roles admitted (none and not ``dashboard``: anyone, no key
    needed). ``owned``: the path names one client's resource, which another submitter
    may not see (it gets the very 404 of a resource that does not exist).
    ``foreign``: what a submitter gets naming another client's resource, when that
    applies (the 404 of ``owned`` paths; 2xx for a list filtered by it, with nothing of
    the other client in it). ``dashboard``: the ops dashboard's cookie session, not keys.
    """

    name: str
    roles: frozenset[str] = frozenset()
    owned: bool = False
    foreign: int | None = None
    dashboard: bool = False
    #: Reachable without a session or key, but shows no data (the login page, static files).
    public_page: bool = False

    def admits(self, role: str) -> bool:
        return role in self.roles

    @property
    def needs_key(self) -> bool:
        return bool(self.roles)


ALL_ROLES = frozenset(CLIENT_ROLES)
#: Admins may do everything operators may (gradeflow/api/auth.py, ``ACTS_AS``).
OPERATORS = frozenset({"operator", "admin"})

ANYONE = Access("anyone")
ANY_CLIENT = Access("any client", ALL_ROLES)
SUBMITTER = Access("submitter", frozenset({"submitter"}))
SUBMITTER_OWNER = Access("submitter, own resource", frozenset({"submitter"}), True, 404)
#: Submitters see their own only; operators and admins see every client's.
OWN_OR_OPERATOR = Access("submitter (own) or operator", ALL_ROLES, True, 404)
OWN_LIST_OR_OPERATOR = Access("submitter (own) or operator, a list", ALL_ROLES, foreign=200)
#: Another client's Idempotency-Key and body must make a new assessment, not replay theirs.
SUBMITTER_NO_REPLAY = Access("submitter, keys per client", frozenset({"submitter"}), foreign=202)
OPERATOR = Access("operator", OPERATORS)
ADMIN = Access("admin", frozenset({"admin"}))
DASHBOARD = Access("dashboard session", dashboard=True)
DASHBOARD_LOGIN = Access("dashboard login page", dashboard=True, public_page=True)
STATIC_FILES = Access("static files", public_page=True)

ROUTES: dict[Route, Access] = {
    # -- health, the spec, metrics ------------------------------------------------
    ("GET", "/healthz"): ANYONE,
    ("GET", "/readyz"): ANYONE,
    ("GET", "/metrics"): ANYONE,
    ("GET", "/openapi.json"): ANYONE,
    # FastAPI's Swagger UI: a static page that loads /openapi.json.
    ("GET", "/docs"): ANYONE,
    ("GET", "/docs/oauth2-redirect"): ANYONE,
    # -- the catalog (admin; every client reads roles) ----------------------------
    ("POST", "/v1/roles"): ADMIN,
    ("GET", "/v1/roles"): ANY_CLIENT,
    ("POST", "/v1/questions"): ADMIN,
    ("GET", "/v1/questions"): ADMIN,
    ("POST", "/v1/credentials"): ADMIN,
    ("GET", "/v1/credentials"): ADMIN,
    # -- assessments and recommendations (the submitter that owns them) -----------
    ("POST", "/v1/assessments"): SUBMITTER_NO_REPLAY,
    ("GET", "/v1/assessments/{assessment_id}"): SUBMITTER_OWNER,
    ("GET", "/v1/assessments/{assessment_id}/recommendations"): SUBMITTER_OWNER,
    ("POST", "/v1/recommendations/{recommendation_id}/feedback"): SUBMITTER_OWNER,
    # -- webhooks ------------------------------------------------------------------
    ("POST", "/v1/webhook-endpoints"): SUBMITTER,
    ("GET", "/v1/webhook-endpoints"): SUBMITTER,
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): SUBMITTER_OWNER,
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): SUBMITTER_OWNER,
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/recover"): SUBMITTER_OWNER,
    ("GET", "/v1/webhook-events"): OWN_LIST_OR_OPERATOR,
    ("POST", "/v1/webhook-events/{event_id}/redeliver"): OWN_OR_OPERATOR,
    # -- the dead-letter desk --------------------------------------------------------
    ("GET", "/v1/jobs"): OPERATOR,
    ("POST", "/v1/jobs/{job_id}/retry"): OPERATOR,
    ("POST", "/v1/jobs/{job_id}/cancel"): OPERATOR,
    ("POST", "/v1/jobs/retry-dead"): OPERATOR,
    # -- the dashboard: every other /ops route is DASHBOARD ---------------------------
    ("GET", "/ops/login"): DASHBOARD_LOGIN,
    ("POST", "/ops/login"): DASHBOARD_LOGIN,
    ("GET", "/ops/static"): STATIC_FILES,
}

DASHBOARD_PREFIX = "/ops"


def access_of(route: Route) -> Access | None:
    """The route's class: listed, else the dashboard's for its prefix, else None."""
    listed = ROUTES.get(route)
    if listed is not None:
        return listed
    path = route[1]
    if path == DASHBOARD_PREFIX or path.startswith(DASHBOARD_PREFIX + "/"):
        return DASHBOARD
    return None


def roles_admitted(method: str, path: str) -> frozenset[str]:
    """The key roles that may call ``method path`` (none: anyone, or unclassified)."""
    access = access_of((method.upper(), path))
    return access.roles if access else frozenset()


def served_routes(app: FastAPI) -> set[Route]:
    """Every (method, path) ``app`` serves. HEAD beside GET is the same route; a mounted
    app (static files) counts as a GET at its path."""
    served: set[Route] = set()
    for route in iter_route_contexts(app.routes):
        path = route.path
        assert path is not None, route
        methods = set(route.methods or {"GET"})
        if "GET" in methods:
            methods.discard("HEAD")
        served.update((method, path) for method in methods)
    return served


def web_app(settings: Settings) -> FastAPI:
    """The app ``gradeflow api`` serves: the HTTP API and the ops dashboard."""
    return create_web_app(settings)


def placeholder_settings(**overrides: object) -> Settings:
    """Settings that let the app be built without any server up (it connects lazily)."""
    values: dict[str, object] = {
        "database_url": "postgresql://spec@127.0.0.1/spec",
        "redis_url": "redis://127.0.0.1:6379/0",
        "home": Path(gettempdir()) / "gradeflow-security-tests",
        "dashboard_secret": "placeholder-secret-for-building-the-app",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def routes_of_the_app() -> set[Route]:
    """What the app serves, built with placeholder settings (nothing is connected)."""
    app = web_app(placeholder_settings())
    try:
        return served_routes(app)
    finally:
        app.state.services.close()


def unclassified(routes: Iterable[Route]) -> list[Route]:
    return sorted(route for route in routes if access_of(route) is None)
