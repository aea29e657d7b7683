"""Who is calling: ``Authorization: Bearer gf_…`` looked up by its SHA-256, on every request.

Nothing is cached beyond the request, so a revoked key stops working at once.
Roles (DESIGN.md, "External contract"): ``submitter``, ``operator`` and
``admin``; an admin may also do everything an operator may.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gradeflow.api.errors import ApiError
from gradeflow.api.keys import hash_api_key, is_well_formed
from gradeflow.api.transaction import TransactionDep
from gradeflow.db.audit import Actor
from gradeflow.db.clients import active_client_by_key_hash
from gradeflow.db.schema import ApiClient

#: The roles each role acts as.
ACTS_AS = {
    "submitter": frozenset({"submitter"}),
    "operator": frozenset({"operator"}),
    "admin": frozenset({"admin", "operator"}),
}

bearer = HTTPBearer(
    auto_error=False, bearerFormat="gf_…", description="An API key from `gradeflow clients create`."
)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def authenticate(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    transaction: TransactionDep,
) -> ApiClient:
    """The active client holding the bearer key, or 401."""
    if credentials is None:
        raise unauthorized("an API key is required: send Authorization: Bearer <key>")
    key = credentials.credentials
    if not is_well_formed(key):
        raise unauthorized("the API key is malformed (keys look like gf_…)")
    client = active_client_by_key_hash(transaction.session, hash_api_key(key))
    if client is None:
        raise unauthorized("the API key is unknown or revoked")
    return client


def require_role(role: str) -> Callable[[ApiClient], ApiClient]:
    """A dependency admitting clients that act as ``role``, else 403."""

    def admit(client: Annotated[ApiClient, Depends(authenticate)]) -> ApiClient:
        if role not in ACTS_AS.get(client.role, frozenset()):
            raise ApiError(403, "forbidden", f"this endpoint needs the {role} role")
        return client

    return admit


def actor(client: ApiClient) -> Actor:
    """The audit log's view of a client."""
    return Actor(id=client.id, role=client.role)


AnyClient = Annotated[ApiClient, Depends(authenticate)]
SubmitterClient = Annotated[ApiClient, Depends(require_role("submitter"))]
AdminClient = Annotated[ApiClient, Depends(require_role("admin"))]
OperatorClient = Annotated[ApiClient, Depends(require_role("operator"))]
