"""``POST /v1/roles`` (admin) and ``GET /v1/roles`` (any client)."""

from __future__ import annotations

from fastapi import APIRouter

from gradeflow.api.auth import AdminClient, AnyClient, actor
from gradeflow.api.schemas.errors import AUTHENTICATED, WITH_BODY, error_responses
from gradeflow.api.schemas.roles import RoleIn, RoleList, RoleOut
from gradeflow.api.transaction import TransactionDep
from gradeflow.db.audit import AuditEntry, record_audit
from gradeflow.db.catalog import insert_role, list_roles
from gradeflow.jobs.embeddings import EMBED_ROLE
from gradeflow.jobs.registry import NewJob

router = APIRouter(prefix="/v1/roles", tags=["catalog"])


@router.post("", status_code=201, responses=error_responses(*AUTHENTICATED, *WITH_BODY))
def create_role(body: RoleIn, client: AdminClient, transaction: TransactionDep) -> RoleOut:
    """Add a role with the skill levels (0-100) it targets; it gets an embed job."""
    role = insert_role(
        transaction.session,
        name=body.name,
        description=body.description,
        skills_profile=body.skills_profile,
        active=body.active,
    )
    transaction.enqueue(
        [NewJob(EMBED_ROLE, payload={"role_id": str(role.id)}, client_id=client.id)]
    )
    record_audit(
        transaction.session,
        [AuditEntry(actor(client), "role.create", "role", role.id, {"name": role.name})],
    )
    return RoleOut.from_row(role)


@router.get("", responses=error_responses(*AUTHENTICATED))
def get_roles(client: AnyClient, transaction: TransactionDep) -> RoleList:
    """Every role of the catalog, oldest first."""
    return RoleList(items=[RoleOut.from_row(r) for r in list_roles(transaction.session)])
