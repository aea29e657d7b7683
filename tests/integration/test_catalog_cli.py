"""``gradeflow catalog load|reembed`` as a user runs them: the real CLI in a subprocess,
a real PostgreSQL and Redis, and a real worker embedding what was loaded."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from gradeflow.db.embeddings import CredentialForEmbedding, nearest_credentials
from gradeflow.jobs.embeddings import EMBED_CREDENTIAL, REEMBED_CATALOG
from gradeflow.jobs.embeddings.hashing import hash_vector
from gradeflow.jobs.embeddings.texts import credential_text
from tests.support.processes import REPO_ROOT, gradeflow_argv, running, wait_for, worker_argv


def catalog(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        gradeflow_argv("catalog", *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )


def rows(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql)).all())


def counts(engine: Engine) -> tuple[int, int]:
    """Credentials and jobs in the database."""
    [(credentials, jobs)] = rows(
        engine,
        "SELECT (SELECT count(*) FROM credential_catalog), (SELECT count(*) FROM async_jobs)",
    )
    return credentials, jobs


def jsonl(*items: dict[str, Any]) -> str:
    return "".join(json.dumps(item) + "\n" for item in items)


def test_json_lines_are_loaded_queued_and_embedded_by_a_worker(
    engine: Engine, gradeflow_env: dict[str, str], tmp_path: Path
) -> None:
    file = tmp_path / "credentials.jsonl"
    file.write_text(
        jsonl(
            {
                "title": "Kubernetes operations",
                "description": "Run clusters.",
                "skills": ["kubernetes", "devops"],
                "provider": "CNCF",
                "metadata": {"hours": 40},
            },
            {"title": "Statistics for analysts", "skills": ["statistics"]},
            {"title": "Retired course", "active": False},
        )
    )
    result = catalog(gradeflow_env, "load", str(file))
    assert result.returncode == 0, result.stderr
    assert "loaded 3 credential(s)" in result.stdout

    loaded = rows(
        engine,
        "SELECT id, title, description, skills, provider, metadata, active"
        " FROM credential_catalog ORDER BY created_at, title",
    )
    assert {(r.title, r.active) for r in loaded} == {
        ("Kubernetes operations", True),
        ("Statistics for analysts", True),
        ("Retired course", False),
    }
    kubernetes = next(r for r in loaded if r.title == "Kubernetes operations")
    assert (kubernetes.skills, kubernetes.provider, kubernetes.metadata) == (
        ["kubernetes", "devops"], "CNCF", {"hours": 40},
    )  # fmt: skip
    jobs = rows(engine, "SELECT job_type, payload->>'credential_id' AS id FROM async_jobs")
    assert {(j.job_type, uuid.UUID(j.id)) for j in jobs} == {
        (EMBED_CREDENTIAL, r.id) for r in loaded
    }
    [audit] = rows(engine, "SELECT metadata FROM audit_logs WHERE action = 'credential.load'")
    assert audit.metadata == {"file": "credentials.jsonl", "count": 3}

    log = tmp_path / "worker.log"
    with running(worker_argv(), {**gradeflow_env, "GRADEFLOW_EMBEDDINGS": "hash"}, log):
        assert wait_for(
            lambda: rows(engine, "SELECT count(*) FROM embedding_artifacts")[0][0] == 3, 60
        ), log.read_text()
    query = hash_vector(
        credential_text(
            CredentialForEmbedding(
                kubernetes.id, kubernetes.title, kubernetes.description, kubernetes.skills
            )
        )
    )
    with engine.begin() as conn:
        found = nearest_credentials(conn, query, "hash", k=10)
    assert found[0].credential_id == kubernetes.id
    assert len(found) == 2  # the inactive credential is embedded but never retrieved


def test_csv_is_loaded_with_quoting_skills_metadata_and_flags(
    engine: Engine, gradeflow_env: dict[str, str], tmp_path: Path
) -> None:
    file = tmp_path / "credentials.csv"
    file.write_text(
        "title,description,skills,provider,metadata,active\n"
        '"SQL, the basics","Queries, joins and ""views""",sql;joins,Academy,'
        '"{""hours"": 12}",true\n'
        "\n"
        "Advanced Excel,,excel,,,no\n"
    )
    result = catalog(gradeflow_env, "load", str(file))
    assert result.returncode == 0, result.stderr
    loaded = rows(
        engine,
        "SELECT title, description, skills, provider, metadata, active"
        " FROM credential_catalog ORDER BY title DESC",
    )
    assert [tuple(r) for r in loaded] == [
        ("SQL, the basics", 'Queries, joins and "views"', ["sql", "joins"], "Academy",
         {"hours": 12}, True),
        ("Advanced Excel", None, ["excel"], None, None, False),
    ]  # fmt: skip
    assert counts(engine) == (2, 2)


BAD_FILES = {
    "bad-json.jsonl": (
        jsonl({"title": "Fine"}) + '{"title": "Broken",\n' + jsonl({"title": "Also fine"}),
        [":2: invalid JSON"],
    ),
    "missing-title.jsonl": (
        jsonl({"title": "Fine"}) + "\n" + jsonl({"description": "no title"}),
        [":3: title: Field required"],
    ),
    "not-an-object.jsonl": ('["a list"]\n', [":1: expected a JSON object"]),
    "bad-rows.csv": (
        "title,skills,active\nFine,sql,true\nToo,many,fields,here\nBad flag,sql,maybe\n",
        [":3: expected 3 fields, got 4", ":4: active: 'maybe' is not true or false"],
    ),
    "blank-title.csv": ("title,skills\nFine,sql\n   ,sql\n", [":3: title:"]),
    "unknown-column.csv": ("title,colour\nFine,red\n", [":1: the header must name"]),
    "empty.jsonl": ("\n\n", ["no credentials in the file"]),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_line_is_reported_by_number_and_nothing_is_loaded(
    name: str, engine: Engine, gradeflow_env: dict[str, str], tmp_path: Path
) -> None:
    content, messages = BAD_FILES[name]
    file = tmp_path / name
    file.write_text(content)
    result = catalog(gradeflow_env, "load", str(file))
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    for message in messages:
        assert message in result.stderr
    assert "nothing was loaded" in result.stderr
    assert counts(engine) == (0, 0)


def test_content_decides_the_format_when_the_extension_does_not(
    engine: Engine, gradeflow_env: dict[str, str], tmp_path: Path
) -> None:
    file = tmp_path / "export.txt"
    file.write_text(jsonl({"title": "From a .txt file"}))
    assert catalog(gradeflow_env, "load", str(file)).returncode == 0
    assert counts(engine) == (1, 1)


def test_reembed_queues_one_catalog_job(
    engine: Engine, gradeflow_env: dict[str, str], tmp_path: Path
) -> None:
    result = catalog(gradeflow_env, "reembed")
    assert result.returncode == 0, result.stderr
    [job] = rows(engine, "SELECT id, job_type, status, sent_at FROM async_jobs")
    assert (job.job_type, job.status) == (REEMBED_CATALOG, "queued")
    assert job.sent_at is not None  # its message went out after the commit
    assert str(job.id) in result.stdout
