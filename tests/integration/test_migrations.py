"""The migrations and the models describe the same schema, both ways."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from gradeflow.db.base import Base
from gradeflow.db.engine import libpq_url, make_engine
from gradeflow.db.migrate import downgrade, include_object, upgrade
from gradeflow.db.schema import __all__ as _tables  # noqa: F401  (registers every table)

SEED_002_TABLES = {
    "role_catalog", "users", "questions", "assessments", "assessment_question_snapshots",
    "assessment_responses", "rule_scores", "essay_scores", "credential_catalog",
    "embedding_artifacts", "recommendations", "recommendation_items", "rag_traces",
    "async_jobs", "webhook_events", "recommendation_feedback", "audit_logs", "metric_snapshots",
}  # fmt: skip


def schema_differences(url: str) -> list[object]:
    engine = make_engine(url, pool_size=None)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_object}
        )
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    return list(diff)


def test_upgrade_head_matches_the_models(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    assert schema_differences(empty_database_url) == []


def test_first_revision_creates_the_extensions(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    with psycopg.connect(libpq_url(empty_database_url)) as conn:
        names = {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}
    assert {"vector", "citext"} <= names


def test_every_seed_table_exists(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    engine = make_engine(empty_database_url, pool_size=None)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert tables >= SEED_002_TABLES


def test_downgrade_to_base_and_upgrade_again(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    downgrade(empty_database_url, "base")
    engine = make_engine(empty_database_url, pool_size=None)
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()
    upgrade(empty_database_url)
    assert schema_differences(empty_database_url) == []
