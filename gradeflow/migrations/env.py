"""Alembic environment: the URL comes from gradeflow, never from an ini file."""

from __future__ import annotations

from alembic import context

from gradeflow.db.base import Base
from gradeflow.db.engine import make_engine
from gradeflow.db.migrate import include_object
from gradeflow.db.schema import __all__ as _registered_tables  # noqa: F401

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "gradeflow.db.migrate sets sqlalchemy.url"
    engine = make_engine(url, pool_size=None, application_name="gradeflow-migrate")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
