"""Who is calling: ``Authorization: Bearer gf_…`` looked up by its SHA-256, on every request.

A revoked key stops working at once. Every route looks the key up on every
request, except intake's submissions: their write checks the key itself, in the
statement that writes (:class:`RecentKeys`).

Roles (DESIGN.md, "External contract"): ``submitter``, ``operator`` and
``admin``; an admin may also do everything an operator may.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from gradeflow.api.errors import ApiError
from gradeflow.api.keys import Caller, hash_api_key, is_well_formed
from gradeflow.api.services import Services, get_services
from gradeflow.api.transaction import TransactionDep
from gradeflow.db.audit import Actor
from gradeflow.db.clients import KeyHolder, active_client_by_key_hash, active_key_holder
from gradeflow.db.jobs import DriverCursor, autocommit_cursor
from gradeflow.db.schema import ApiClient
from gradeflow.logs import bind_request_ids

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


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def key_hash_of(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The SHA-256 of the bearer key, or 401 when there is none or it is malformed."""
    if credentials is None:
        raise unauthorized("an API key is required: send Authorization: Bearer <key>")
    key = credentials.credentials
    if not is_well_formed(key):
        raise unauthorized("the API key is malformed (keys look like gf_…)")
    return hash_api_key(key)


def authenticate(credentials: BearerCredentials, transaction: TransactionDep) -> ApiClient:
    """The active client holding the bearer key, or 401."""
    client = active_client_by_key_hash(transaction.session, key_hash_of(credentials))
    if client is None:
        raise unauthorized("the API key is unknown or revoked")
    bind_request_ids(client_id=str(client.id))
    return client


async def recent_submitter(
    credentials: BearerCredentials, services: Annotated[Services, Depends(get_services)]
) -> Caller:
    """The submitter holding the bearer key (401, 403 otherwise), looked up unless this
    process found it active within the last second (:class:`RecentKeys`)."""
    key_hash = key_hash_of(credentials)
    holder = services.recent_keys.get(key_hash)
    if holder is None:
        holder = await run_in_threadpool(read_key_holder, services.engine, key_hash)
        if holder is None:
            raise unauthorized("the API key is unknown or revoked")
        services.recent_keys.remember(key_hash, holder)
    bind_request_ids(client_id=str(holder.id))
    admitted("submitter", holder.role)
    return Caller(key_hash, holder)


def read_key_holder(engine: Engine, key_hash: str) -> KeyHolder | None:
    with autocommit_cursor(engine) as cursor:
        return active_key_holder(cursor, key_hash)


def confirm_key(cursor: DriverCursor, services: Services, caller: Caller) -> None:
    """401 (and the key forgotten) unless the caller's key is still active."""
    if active_key_holder(cursor, caller.key_hash) is None:
        services.recent_keys.forget(caller.key_hash)
        raise unauthorized("the API key is unknown or revoked")


def admitted(role: str, client_role: str) -> None:
    """403 unless a client of ``client_role`` acts as ``role``."""
    if role not in ACTS_AS.get(client_role, frozenset()):
        raise ApiError(403, "forbidden", f"this endpoint needs the {role} role")


def require_role(role: str) -> Callable[[ApiClient], Awaitable[ApiClient]]:
    """A dependency admitting clients that act as ``role``, else 403."""

    # async: a pure check, so FastAPI runs it inline rather than in a thread.
    async def admit(client: Annotated[ApiClient, Depends(authenticate)]) -> ApiClient:
        admitted(role, client.role)
        return client

    return admit


def actor(client: ApiClient) -> Actor:
    """The audit log's view of a client."""
    return Actor(id=client.id, role=client.role)


AnyClient = Annotated[ApiClient, Depends(authenticate)]
SubmitterClient = Annotated[ApiClient, Depends(require_role("submitter"))]
AdminClient = Annotated[ApiClient, Depends(require_role("admin"))]
OperatorClient = Annotated[ApiClient, Depends(require_role("operator"))]
#: A submitter, for intake's submissions (see :class:`RecentKeys`).
RecentSubmitter = Annotated[Caller, Depends(recent_submitter)]
