"""``gradeflow catalog load FILE`` and ``gradeflow catalog reembed``.

``load`` reads credentials from JSON Lines (one object per line) or CSV (a
header row; ``skills`` separated by ``;``, ``metadata`` as a JSON object,
``active`` as true/false). The whole file is checked before anything is
written: a bad line is reported with its line number, the command exits 1
and nothing from the file is loaded. Then every credential and its
``embed_credential`` job are written in one transaction, and the job
messages are sent after it commits.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.orm import Session

from gradeflow.api.schemas.credentials import CredentialIn
from gradeflow.db.audit import CLI_ACTOR, AuditEntry, record_audit
from gradeflow.db.catalog import insert_credentials
from gradeflow.db.engine import make_engine, transaction
from gradeflow.db.jobs import Message
from gradeflow.jobs.embeddings import EMBED_CREDENTIAL, REEMBED_CATALOG
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.registry import NewJob
from gradeflow.ops.context import err, fail, stack
from gradeflow.settings import get_settings

catalog_app = typer.Typer(help="The credential catalog: bulk load, re-embed.", no_args_is_help=True)

#: Credentials per INSERT statement (and per step of the progress bar).
CHUNK = 1000
#: Bad lines printed before the rest are only counted.
MAX_REPORTED = 20
CSV_COLUMNS = ("title", "description", "skills", "provider", "metadata", "active")
Format = Literal["jsonl", "csv"]


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


class BadFile(Exception):
    """The file cannot be loaded; ``errors`` says where and why."""

    def __init__(self, errors: Sequence[LineError]) -> None:
        super().__init__(f"{len(errors)} bad line(s)")
        self.errors = list(errors)


# -- reading -------------------------------------------------------------------------------


def detect_format(path: Path, content: str) -> Format:
    """By extension; else by content: a JSON object first means JSON Lines."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "jsonl" if content.lstrip().startswith("{") else "csv"


def read_credentials(path: Path) -> list[CredentialIn]:
    """Every credential of the file, validated; :class:`BadFile` if any line is bad."""
    try:
        content = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets write a BOM
    except UnicodeDecodeError as exc:
        raise BadFile([LineError(0, f"not UTF-8 text ({exc.reason})")]) from None
    parsed = list(
        jsonl_records(content) if detect_format(path, content) == "jsonl" else csv_records(content)
    )
    errors = [LineError(line, problem) for line, _, problem in parsed if problem]
    credentials = [item for _, item, problem in parsed if not problem and item is not None]
    if not errors and not credentials:
        errors.append(LineError(0, "no credentials in the file"))
    if errors:
        raise BadFile(errors)
    return credentials


Record = tuple[int, CredentialIn | None, str]


def validated(line: int, fields: Any) -> Record:
    if not isinstance(fields, dict):
        return line, None, f"expected a JSON object, got {type(fields).__name__}"
    try:
        return line, CredentialIn.model_validate(fields), ""
    except ValidationError as exc:
        return line, None, describe(exc)


def describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}" for e in exc.errors()
    )


def jsonl_records(content: str) -> Iterator[Record]:
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, None, f"invalid JSON ({exc.msg} at column {exc.colno})"
            continue
        yield validated(number, fields)


def csv_records(content: str) -> Iterator[Record]:
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        yield 1, None, f"invalid CSV header ({exc})"
        return
    unknown = sorted(set(header) - set(CSV_COLUMNS))
    if unknown or "title" not in header:
        yield (
            1,
            None,
            (
                f"the header must name a title column and only {', '.join(CSV_COLUMNS)}"
                + (f" (unknown: {', '.join(unknown)})" if unknown else "")
            ),
        )
        return
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, None, f"invalid CSV ({exc})"
            return
        if not any(cell.strip() for cell in row):
            continue
        yield csv_record(reader.line_num, header, row)


def csv_record(line: int, header: list[str], row: list[str]) -> Record:
    if len(row) != len(header):
        return line, None, f"expected {len(header)} fields, got {len(row)}"
    fields: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=True):
        if not cell.strip():
            continue  # empty cell: the field's default
        try:
            fields[name] = csv_value(name, cell)
        except ValueError as exc:
            return line, None, f"{name}: {exc}"
    return validated(line, fields)


def csv_value(name: str, cell: str) -> Any:
    if name == "skills":
        return [skill.strip() for skill in cell.split(";") if skill.strip()]
    if name == "metadata":
        try:
            return json.loads(cell)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg})") from None
    if name == "active":
        answer = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        if cell.strip().lower() not in answer:
            raise ValueError(f"{cell!r} is not true or false")
        return answer[cell.strip().lower()]
    return cell


# -- writing -------------------------------------------------------------------------------


def load_credentials(
    session: Session,
    credentials: Sequence[CredentialIn],
    window: int,
    progress: Progress | None = None,
) -> tuple[int, list[Message]]:
    """Insert ``credentials`` and one embed job each in the session's transaction.

    Returns how many were inserted and the messages to send once it commits.
    """
    task = progress.add_task("loading", total=len(credentials)) if progress else None
    messages: list[Message] = []
    inserted = 0
    for start in range(0, len(credentials), CHUNK):
        chunk = credentials[start : start + CHUNK]
        rows = insert_credentials(session, [item.to_new() for item in chunk])
        jobs = [NewJob(EMBED_CREDENTIAL, {"credential_id": str(row.id)}) for row in rows]
        messages.extend(insert_new_jobs(session.connection(), jobs, window).messages)
        inserted += len(rows)
        if progress is not None and task is not None:
            progress.advance(task, len(rows))
    return inserted, messages


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def report(path: Path, errors: Sequence[LineError]) -> typer.Exit:
    for error in errors[:MAX_REPORTED]:
        where = f"{path}:{error.line}" if error.line else str(path)
        err.print(f"{where}: {error.message}", highlight=False, markup=False, soft_wrap=True)
    if len(errors) > MAX_REPORTED:
        err.print(f"… and {len(errors) - MAX_REPORTED} more bad line(s)", highlight=False)
    return fail(f"{len(errors)} bad line(s) in {path}; nothing was loaded")


@catalog_app.command("load")
def catalog_load(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="JSON Lines (.jsonl) or CSV (.csv)."
        ),
    ],
) -> None:
    """Load credentials from FILE, all or nothing; each gets an embed job."""
    from gradeflow.workers.broker import get_broker
    from gradeflow.workers.messages import send_messages

    try:
        credentials = read_credentials(file)
    except BadFile as bad:
        raise report(file, bad.errors) from None
    with stack() as resolved:
        settings = get_settings()
        engine = make_engine(resolved.database_url, pool_size=None)
        with progress_bar() as progress, transaction(engine) as session:
            count, messages = load_credentials(
                session, credentials, settings.dispatch_window, progress
            )
            record_audit(
                session,
                [AuditEntry(CLI_ACTOR, "credential.load", "credential", None,
                            {"file": file.name, "count": count})],
            )  # fmt: skip
        send_messages(get_broker(settings), messages)
    typer.echo(f"loaded {count} credential(s) from {file}; {count} embed job(s) queued")


@catalog_app.command("reembed")
def catalog_reembed() -> None:
    """Queue one job that re-embeds every active credential and role (after a provider
    change: GRADEFLOW_EMBEDDINGS as the workers see it)."""
    from gradeflow.workers.broker import get_broker
    from gradeflow.workers.messages import send_messages

    with stack() as resolved:
        settings = get_settings()
        engine = make_engine(resolved.database_url, pool_size=None)
        with engine.begin() as conn:
            inserted = insert_new_jobs(conn, [NewJob(REEMBED_CATALOG)], settings.dispatch_window)
        send_messages(get_broker(settings), inserted.messages)
    typer.echo(f"re-embed job {inserted.job_ids[0]} queued")
