"""Logging in with an operator or admin API key, and out.

The key is looked up exactly as the API looks up a bearer key (its SHA-256), then
forgotten: the session cookie carries only the client id and a CSRF token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from gradeflow.api.auth import actor
from gradeflow.api.keys import hash_api_key, is_well_formed
from gradeflow.api.transaction import TransactionDep
from gradeflow.db.audit import AuditEntry, record_audit
from gradeflow.db.clients import active_client_by_key_hash
from gradeflow.db.schema import ApiClient
from gradeflow.ops.dashboard.access import CheckedOperatorDep, may_open_dashboard
from gradeflow.ops.dashboard.rendering import dashboard_of, render
from gradeflow.ops.dashboard.sessions import (
    PREFIX,
    clear_session_cookie,
    new_session,
    safe_next,
    same_origin,
    set_session_cookie,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/login")
def login_page(request: Request, next: str = "") -> Response:
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
def log_in(
    request: Request,
    transaction: TransactionDep,
    api_key: Annotated[str, Form(max_length=300)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A session for an operator or admin key; the login page again, saying why, otherwise."""
    target = safe_next(next)
    if not same_origin(request):
        return refuse(request, target, "The login form must be sent from this site.", 403)
    key = api_key.strip()
    client = (
        active_client_by_key_hash(transaction.session, hash_api_key(key))
        if is_well_formed(key)
        else None
    )
    if client is None:
        return refuse(request, target, "That API key is unknown or revoked.", 401)
    if not may_open_dashboard(client):
        return refuse(
            request,
            target,
            f"A {client.role} key cannot open the dashboard: use an operator or admin key.",
            403,
        )
    audit_login(transaction, client)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, dashboard_of(request).signer, new_session(str(client.id)))
    return response


def refuse(request: Request, target: str, message: str, status_code: int) -> Response:
    return render(request, "login.html", {"next": target, "error": message}, status_code)


def audit_login(transaction: TransactionDep, client: ApiClient) -> None:
    entry = AuditEntry(actor(client), "dashboard.login", "api_client", client.id)
    record_audit(transaction.session, [entry])


@router.post("/logout")
def log_out(request: Request, operator: CheckedOperatorDep) -> Response:
    """Forget the session in this browser (the cookie cannot be revoked server-side;
    revoking the client's key ends every session it has)."""
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    clear_session_cookie(response, request)
    return response
