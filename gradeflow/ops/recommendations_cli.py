"""``gradeflow recommendations report``: how recommended credentials were received."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gradeflow.db.engine import make_engine
from gradeflow.db.recommendations import CredentialFeedback, feedback_by_credential
from gradeflow.ops.context import stack

recommendations_app = typer.Typer(
    help="Credential recommendations: what users made of them.", no_args_is_help=True
)
out = Console()


@recommendations_app.command("report")
def report(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Credentials to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Mean relevance (1-5) and acceptance per recommended credential, most recommended first.

    Feedback is given on a whole recommendation, so it counts for every credential
    that recommendation offered.
    """
    with stack() as resolved:
        engine = make_engine(resolved.database_url, pool_size=None)
        with engine.connect() as conn:
            rows = feedback_by_credential(conn, limit)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(as_json_row(row)))
        return
    if not rows:
        out.print("No credential has been recommended yet.")
        return
    table = Table("credential", "recommended", "feedback", "mean relevance", "accepted", "rejected",
                  "acceptance")  # fmt: skip
    for row in rows:
        table.add_row(
            row.title,
            str(row.recommended),
            str(row.feedback),
            "" if row.mean_relevance is None else f"{row.mean_relevance:.2f}",
            str(row.accepted),
            str(row.rejected),
            "" if row.acceptance_rate is None else f"{row.acceptance_rate:.0%}",
        )
    out.print(table)


def as_json_row(row: CredentialFeedback) -> dict[str, object]:
    return {
        **asdict(row),
        "credential_id": str(row.credential_id),
        "acceptance_rate": row.acceptance_rate,
    }
