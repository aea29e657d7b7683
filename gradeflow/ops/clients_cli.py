"""``gradeflow clients create|revoke|ls``: API clients and their keys.

A key is printed once, at creation; only its SHA-256 is stored. Creating and
revoking write audit rows (actor role ``cli``); the audit never holds a key.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gradeflow.api.keys import issue_api_key
from gradeflow.db.audit import CLI_ACTOR, AuditEntry, record_audit
from gradeflow.db.clients import get_client, insert_client, list_clients, revoke_client
from gradeflow.db.engine import make_engine, transaction
from gradeflow.db.schema.clients import CLIENT_ROLES
from gradeflow.ops.context import fail, stack

clients_app = typer.Typer(help="API clients: create (prints the key once), revoke, list.")
out = Console()


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Argument(help="Who holds the key, e.g. the upstream app.")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(CLIENT_ROLES)}.")],
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"id", "name", "role", "api_key"}.')
    ] = False,
) -> None:
    """Create a client and print its API key (shown this once only)."""
    if role not in CLIENT_ROLES:
        raise fail(f"unknown role {role!r} (one of: {', '.join(CLIENT_ROLES)})", 2)
    name = name.strip()
    if not name or len(name) > 128:
        raise fail("the name must be 1 to 128 characters", 2)
    issued = issue_api_key()
    with stack() as resolved:
        engine = make_engine(resolved.database_url, pool_size=None)
        with transaction(engine) as session:
            client = insert_client(
                session,
                name=name,
                role=role,
                key_hash=issued.key_hash,
                key_prefix=issued.key_prefix,
            )
            record_audit(
                session,
                [
                    AuditEntry(
                        CLI_ACTOR,
                        "client.create",
                        "client",
                        client.id,
                        {"name": name, "role": role},
                    )
                ],
            )
    if as_json:
        typer.echo(
            json.dumps({"id": str(client.id), "name": name, "role": role, "api_key": issued.key})
        )
        return
    typer.echo(f"created client {client.id} ({name}, {role})")
    typer.echo(f"api key (shown once; store it now): {issued.key}")


@clients_app.command("revoke")
def clients_revoke(client_id: Annotated[str, typer.Argument(help="The client's id.")]) -> None:
    """Revoke a client's key; requests with it are refused from now on."""
    parsed = parse_client_id(client_id)
    with stack() as resolved:
        engine = make_engine(resolved.database_url, pool_size=None)
        with transaction(engine) as session:
            revoked = revoke_client(session, parsed)
            if revoked is None:
                known = get_client(session, parsed)
                raise fail(
                    f"client {parsed} is already revoked" if known else f"no client {parsed}"
                )
            record_audit(
                session,
                [AuditEntry(CLI_ACTOR, "client.revoke", "client", parsed, {"name": revoked.name})],
            )
    typer.echo(f"client {parsed} revoked")


@clients_app.command("ls")
def clients_ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List clients (never their keys)."""
    with stack() as resolved:
        engine = make_engine(resolved.database_url, pool_size=None)
        with transaction(engine) as session:
            rows = [
                {
                    "id": str(c.id),
                    "name": c.name,
                    "role": c.role,
                    "key_prefix": c.key_prefix,
                    "created_at": c.created_at.isoformat(),
                    "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
                }
                for c in list_clients(session)
            ]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    table = Table("id", "name", "role", "key prefix", "created", "revoked")
    for row in rows:
        table.add_row(
            *(
                str(row[k] or "")
                for k in ("id", "name", "role", "key_prefix", "created_at", "revoked_at")
            )
        )
    out.print(table)


def parse_client_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise fail(f"{raw!r} is not a client id (a UUID such as 0b9a…-…)", 2) from None
