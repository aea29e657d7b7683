"""The pool's checkout check, on a real PostgreSQL: a connection the server ended is
replaced, a healthy one is kept."""

from __future__ import annotations

import time

import psycopg
from sqlalchemy import Engine, text

from gradeflow.db.engine import libpq_url


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_healthy_pooled_connection_is_reused(engine: Engine) -> None:
    assert backend_pid(engine) == backend_pid(engine)


def test_a_connection_the_server_ended_is_replaced_at_checkout(
    engine: Engine, database_url: str
) -> None:
    pid = backend_pid(engine)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # The server's goodbye reaches the idle pooled connection's socket.
        deadline = time.monotonic() + 5
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    replacement = backend_pid(engine)

    assert replacement != pid


def test_the_pool_hands_out_the_connection_given_back_last(engine: Engine) -> None:
    # Busy connections stay warm (prepared statements, cached plans): see make_engine.
    first, second = engine.connect(), engine.connect()
    pids = [int(c.execute(text("SELECT pg_backend_pid()")).scalar_one()) for c in (first, second)]
    first.close()
    second.close()

    assert backend_pid(engine) == pids[1]
    assert backend_pid(engine) == pids[1]
