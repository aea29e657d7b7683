"""Who may see the dashboard: an operator or admin client, re-read on every request.

:func:`current_operator` guards every page; :func:`checked_operator` guards every
POST, adding the CSRF token and the Origin check. A missing or dead session sends
a browser to the login page (a script's fetch gets 401 and does the same).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, Request
from starlette.responses import RedirectResponse, Response

from gradeflow.api.auth import ACTS_AS
from gradeflow.api.transaction import TransactionDep
from gradeflow.db.clients import get_client
from gradeflow.db.schema import ApiClient
from gradeflow.ops.dashboard.rendering import dashboard_of, json_answer, render, wants_json
from gradeflow.ops.dashboard.sessions import (
    COOKIE,
    PREFIX,
    SessionData,
    clear_session_cookie,
    csrf_matches,
    read_session,
    same_origin,
)

#: The role a client must act as to open the dashboard (admins do too).
ROLE = "operator"


class LoginRequired(Exception):
    """No valid session: no cookie, a forged or expired one, or a revoked client."""


class Refused(Exception):
    """A POST that failed the CSRF or Origin check."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Operator:
    client: ApiClient
    csrf: str


def may_open_dashboard(client: ApiClient) -> bool:
    return client.revoked_at is None and ROLE in ACTS_AS.get(client.role, frozenset())


def current_operator(request: Request, transaction: TransactionDep) -> Operator:
    """The operator of this request's session, read from the database now."""
    data = read_session(request, dashboard_of(request).signer)
    client = _client_of(data, transaction) if data else None
    if data is None or client is None or not may_open_dashboard(client):
        raise LoginRequired()
    return Operator(client, data.csrf)


def _client_of(data: SessionData, transaction: TransactionDep) -> ApiClient | None:
    try:
        client_id = uuid.UUID(data.client_id)
    except ValueError:
        return None
    return get_client(transaction.session, client_id)


OperatorDep = Annotated[Operator, Depends(current_operator)]


def checked_operator(
    request: Request,
    operator: OperatorDep,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Operator:
    """The operator, for a POST that came from one of the dashboard's own pages."""
    if not same_origin(request):
        raise Refused("the request did not come from this dashboard (Origin check failed)")
    if not csrf_matches(operator.csrf, csrf_token):
        raise Refused("the form's CSRF token is missing or wrong; reload the page and retry")
    return operator


CheckedOperatorDep = Annotated[Operator, Depends(checked_operator)]


async def on_login_required(request: Request, exc: Exception) -> Response:
    if wants_json(request):
        response: Response = json_answer(
            {"error": {"code": "unauthorized", "message": "log in again", "details": []}}, 401
        )
    else:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        next_page = target if request.method == "GET" else PREFIX
        response = RedirectResponse(f"{PREFIX}/login?next={quote(next_page)}", status_code=303)
    if COOKIE in request.cookies:  # a dead session: forget it
        clear_session_cookie(response, request)
    return response


async def on_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    if wants_json(request):
        return json_answer({"ok": False, "message": exc.reason}, 403)
    return render(request, "refused.html", {"reason": exc.reason}, 403)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequired, on_login_required)
    app.add_exception_handler(Refused, on_refused)
