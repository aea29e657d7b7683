"""Every guarded job query against a real, freshly migrated PostgreSQL.

Rows are aged with direct UPDATEs (a lease in the past, a message sent long
ago) rather than by sleeping.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from gradeflow.db import jobs as q
from gradeflow.jobs import states
from gradeflow.jobs.enqueue import insert_new_jobs
from gradeflow.jobs.registry import JobType, NewJob, register
from tests.support.processes import wait_for

WORKER = "host-a:100"
OTHER_WORKER = "host-b:200"
#: Claims and finishes are guarded by the attempt's owner (worker process + token).
OWNER = f"{WORKER}:a1"
OTHER_OWNER = f"{OTHER_WORKER}:b1"
LEASE = 30.0

#: A job type on another queue than the default ``cpu`` (registered for queue_of).
register(JobType("tq.llm", lambda ctx: None, queue="llm"))


# -- helpers ----------------------------------------------------------------------


def make_client(conn: Connection, name: str) -> uuid.UUID:
    key_hash = hashlib.sha256(f"{name}-{uuid.uuid4()}".encode()).hexdigest()
    return uuid.UUID(
        str(
            conn.execute(
                text(
                    "INSERT INTO api_clients (name, role, key_hash, key_prefix)"
                    " VALUES (:name, 'submitter', :hash, :prefix) RETURNING id"
                ),
                {"name": name, "hash": key_hash, "prefix": key_hash[:8]},
            ).scalar_one()
        )
    )


def add_jobs(
    conn: Connection,
    count: int = 1,
    *,
    job_type: str = "tq.cpu",
    queue: str = "cpu",
    client: uuid.UUID | None = None,
    send_now: bool = False,
    dedup_key: str | None = None,
) -> list[uuid.UUID]:
    inserted = q.insert_jobs(
        conn,
        [
            q.JobToInsert(
                job_type=job_type,
                queue_name=queue,
                payload={"n": n},
                assessment_id=None,
                client_id=client,
                dedup_key=dedup_key,
                max_attempts=None,
                send_now=send_now,
            )
            for n in range(count)
        ],
        window=10_000,  # as asked: these tests set up states, not the window
    )
    assert len(inserted.job_ids) == count
    return inserted.job_ids


def add_job(conn: Connection, **kwargs: Any) -> uuid.UUID:
    [job_id] = add_jobs(conn, 1, **kwargs)
    return job_id


def row(conn: Connection, job_id: uuid.UUID) -> dict[str, Any]:
    return dict(
        conn.execute(text("SELECT * FROM async_jobs WHERE id = :id"), {"id": job_id})
        .mappings()
        .one()
    )


def set_columns(conn: Connection, job_id: uuid.UUID, assignments: str) -> None:
    result = conn.execute(
        text(f"UPDATE async_jobs SET {assignments} WHERE id = :id"), {"id": job_id}
    )
    assert result.rowcount == 1


def claimed(conn: Connection, job_id: uuid.UUID, worker: str = OWNER) -> q.ClaimedJob:
    job = q.claim_job(conn, job_id, worker, LEASE)
    assert job is not None
    return job


def kill_with(conn: Connection, job_id: uuid.UUID, message: str, attempt: int = 1) -> None:
    error = {"attempt": attempt, "type": "RuntimeError", "message": message, "traceback": "tb"}
    assert q.kill_job(conn, job_id, OWNER, error)


def error_messages(conn: Connection, job_id: uuid.UUID) -> list[str]:
    payload = row(conn, job_id)["error_payload"] or {}
    return [e["message"] for e in payload.get("errors", [])]


def lock_waiters(engine: Engine) -> int:
    """Sessions of this database waiting for a lock (a fresh snapshot each call)."""
    with engine.connect() as conn:
        return count(
            conn,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()",
        )


def count(conn: Connection, sql: str, **params: Any) -> int:
    return int(conn.execute(text(sql), params).scalar_one())


# -- the schema names exactly the states of the code ----------------------------------


def test_status_check_constraint_names_exactly_the_states(engine: Engine) -> None:
    with engine.connect() as conn:
        definition = conn.execute(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conname = 'ck_async_jobs_status'"
                " AND conrelid = 'async_jobs'::regclass"
            )
        ).scalar_one()
    names = set(re.findall(r"'([^']*)'", definition))
    assert names == set(states.ALL), definition


def test_every_state_is_accepted_and_nothing_else(engine: Engine) -> None:
    with engine.begin() as conn:
        for status in states.ALL:
            conn.execute(
                text(
                    "INSERT INTO async_jobs (job_type, status, locked_by, locked_until,"
                    " completed_at) VALUES ('tq.cpu', :status, 'w', now(),"
                    " CASE WHEN :finished THEN now() END)"
                ),
                {"status": status, "finished": status in states.FINISHED},
            )
        assert count(conn, "SELECT count(DISTINCT status) FROM async_jobs") == len(states.ALL)


# -- enqueue ----------------------------------------------------------------------


def test_enqueue_with_the_same_dedup_key_twice_gives_one_row(engine: Engine) -> None:
    job = NewJob("tq.cpu", {"a": 1}, dedup_key="report:42")
    with engine.begin() as conn:
        first = insert_new_jobs(conn, [job], window=10)
    with engine.begin() as conn:
        second = insert_new_jobs(conn, [job, NewJob("tq.cpu", dedup_key="report:43")], window=10)
    assert len(first.job_ids) == 1
    assert [m.job_id for m in first.messages] == first.job_ids
    # The duplicate gets neither a row nor a message; the other key still does.
    assert len(second.job_ids) == 1
    assert second.job_ids[0] != first.job_ids[0]
    assert [m.job_id for m in second.messages] == second.job_ids
    with engine.connect() as conn:
        assert count(conn, "SELECT count(*) FROM async_jobs WHERE dedup_key = 'report:42'") == 1
        # Same key, other job type: a different job.
    with engine.begin() as conn:
        other = insert_new_jobs(conn, [NewJob("tq.llm", dedup_key="report:42")], window=10)
    assert len(other.job_ids) == 1
    # The same key twice in one call: one row, one message.
    with engine.begin() as conn:
        twice = insert_new_jobs(conn, [NewJob("tq.cpu", dedup_key="k:1")] * 2, window=10)
        assert len(twice.job_ids) == 1
        assert len(twice.messages) == 1
        assert count(conn, "SELECT count(*) FROM async_jobs WHERE dedup_key = 'k:1'") == 1


def test_jobs_without_dedup_key_are_never_merged(engine: Engine) -> None:
    with engine.begin() as conn:
        inserted = insert_new_jobs(conn, [NewJob("tq.cpu") for _ in range(3)], window=10)
        assert len(set(inserted.job_ids)) == 3
        assert count(conn, "SELECT count(*) FROM async_jobs") == 3


def test_insert_new_jobs_sends_at_most_window_per_client_and_queue(engine: Engine) -> None:
    with engine.begin() as conn:
        client_a, client_b = make_client(conn, "a"), make_client(conn, "b")
    burst = (
        [NewJob("tq.cpu", {"n": n}, client_id=client_a) for n in range(5)]
        + [NewJob("tq.cpu", client_id=client_b) for _ in range(2)]
        + [NewJob("tq.llm", client_id=client_a) for _ in range(4)]
        + [NewJob("tq.cpu") for _ in range(4)]  # no client: a bucket of its own
    )
    with engine.begin() as conn:
        inserted = insert_new_jobs(conn, burst, window=3)
        assert len(inserted.job_ids) == len(burst)
        sent = Counter(
            (
                m.queue_name,
                conn.execute(
                    text("SELECT client_id FROM async_jobs WHERE id = :id"), {"id": m.job_id}
                ).scalar_one(),
            )
            for m in inserted.messages
        )
    assert sent == {
        ("cpu", client_a): 3,
        ("cpu", client_b): 2,
        ("llm", client_a): 3,
        ("cpu", None): 3,
    }
    # The first jobs of a burst go first; the rest wait unsent for the dispatcher.
    with engine.connect() as conn:
        unsent = conn.execute(
            text(
                "SELECT payload->>'n' FROM async_jobs WHERE client_id = :a"
                " AND queue_name = 'cpu' AND sent_at IS NULL ORDER BY 1"
            ),
            {"a": client_a},
        ).scalars()
        assert list(unsent) == ["3", "4"]

    # A later enqueue counts the messages still in flight.
    with engine.begin() as conn:
        later = insert_new_jobs(
            conn,
            [NewJob("tq.cpu", client_id=client_a), NewJob("tq.cpu", client_id=client_b)],
            window=3,
        )
    assert [m.job_id for m in later.messages] == [later.job_ids[1]]  # only B had room

    # Claiming one of A's messages frees one slot of A's window.
    with engine.begin() as conn:
        [first_sent_a] = [
            m.job_id
            for m in inserted.messages
            if m.queue_name == "cpu" and row(conn, m.job_id)["client_id"] == client_a
        ][:1]
        claimed(conn, first_sent_a)
    with engine.begin() as conn:
        again = insert_new_jobs(
            conn, [NewJob("tq.cpu", client_id=client_a) for _ in range(2)], window=3
        )
    assert len(again.messages) == 1


def test_a_single_job_of_a_quiet_client_is_sent_at_once(engine: Engine) -> None:
    with engine.begin() as conn:
        client = make_client(conn, "quiet")
        inserted = insert_new_jobs(conn, [NewJob("tq.cpu", client_id=client)], window=1)
    assert [m.job_id for m in inserted.messages] == inserted.job_ids


# -- claim ---------------------------------------------------------------------------


def test_claim_takes_a_due_queued_job_with_a_lease_and_one_attempt(engine: Engine) -> None:
    with engine.begin() as conn:
        job_id = add_job(conn)
        job = claimed(conn, job_id)
        assert (job.id, job.job_type, job.attempts, job.rescues) == (job_id, "tq.cpu", 1, 0)
        assert job.payload == {"n": 0}
        data = row(conn, job_id)
    assert data["status"] == states.RUNNING
    assert data["locked_by"] == OWNER
    assert data["attempts"] == 1
    assert data["started_at"] is not None
    assert data["locked_until"] - data["started_at"] == timedelta(seconds=LEASE)


def test_second_claim_gets_none(engine: Engine) -> None:
    with engine.begin() as conn:
        job_id = add_job(conn)
        claimed(conn, job_id)
        assert q.claim_job(conn, job_id, OTHER_OWNER, LEASE) is None
        data = row(conn, job_id)
    assert (data["locked_by"], data["attempts"]) == (OWNER, 1)


def test_concurrent_claims_one_wins_the_other_gets_none(engine: Engine) -> None:
    with engine.begin() as conn:
        job_id = add_job(conn)
    second: list[q.ClaimedJob | None] = []

    def claim_from_other_worker() -> None:
        with engine.begin() as conn2:
            second.append(q.claim_job(conn2, job_id, OTHER_OWNER, LEASE))

    with engine.connect() as first_conn:
        first = q.claim_job(first_conn, job_id, OWNER, LEASE)  # row locked, not committed
        thread = threading.Thread(target=claim_from_other_worker)
        thread.start()
        # The other claim waits for our row lock: it cannot finish before we commit.
        assert wait_for(lambda: lock_waiters(engine) == 1, timeout=10)
        assert thread.is_alive()
        first_conn.commit()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert first is not None
    assert second == [None]
    with engine.connect() as conn:
        assert (row(conn, job_id)["locked_by"], row(conn, job_id)["attempts"]) == (OWNER, 1)


@pytest.mark.parametrize("status", [states.SUCCEEDED, states.DEAD, states.CANCELLED])
def test_claim_of_a_finished_job_is_a_no_op(engine: Engine, status: str) -> None:
    with engine.begin() as conn:
        job_id = add_job(conn)
        set_columns(conn, job_id, f"status = '{status}', completed_at = now()")
        before = row(conn, job_id)
        assert q.claim_job(conn, job_id, OWNER, LEASE) is None
        assert row(conn, job_id) == before


def test_claim_of_a_job_not_yet_due_is_a_no_op(engine: Engine) -> None:
    with engine.begin() as conn:
        job_id = add_job(conn)
        set_columns(conn, job_id, "next_run_at = now() + interval '1 minute'")
        before = row(conn, job_id)
        assert q.claim_job(conn, job_id, OWNER, LEASE) is None
        assert row(conn, job_id) == before
        set_columns(conn, job_id, "next_run_at = now() - interval '1 second'")
        assert q.claim_job(conn, job_id, OWNER, LEASE) is not None


def test_claim_of_an_unknown_job_is_a_no_op(engine: Engine) -> None:
    with engine.begin() as conn:
        assert q.claim_job(conn, uuid.uuid4(), OWNER, LEASE) is None


# -- a worker's finish, guarded by its lease ----------------------------------------


def test_complete_requeue_and_kill_by_another_worker_change_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        job_id = add_job(conn)
        claimed(conn, job_id)
        before = row(conn, job_id)
        later = datetime.now(UTC) + timedelta(minutes=5)
        error = {"attempt": 1, "type": "X", "message": "m", "traceback": ""}
        assert q.complete_job(conn, job_id, OTHER_OWNER) is False
        assert (
            q.requeue_job(conn, job_id, OTHER_OWNER, later, refund_attempt=True, error=error)
            is False
        )
        assert q.kill_job(conn, job_id, OTHER_OWNER, error) is False
        assert q.extend_leases(conn, OTHER_WORKER, [job_id], 999) == 0
        assert q.release_leases(conn, OTHER_WORKER, [job_id]) == 0
        assert row(conn, job_id) == before
        # The lease holder still can.
        assert q.complete_job(conn, job_id, OWNER) is True
        data = row(conn, job_id)
    assert data["status"] == states.SUCCEEDED
    assert data["completed_at"] is not None
    assert data["locked_by"] is None and data["locked_until"] is None


def test_finishing_a_job_that_is_not_running_is_a_no_op(engine: Engine) -> None:
    with engine.begin() as conn:
        job_id = add_job(conn)  # queued, never claimed
        before = row(conn, job_id)
        assert q.complete_job(conn, job_id, OWNER) is False
        assert q.kill_job(conn, job_id, OWNER, {"message": "x"}) is False
        assert (
            q.requeue_job(conn, job_id, OWNER, datetime.now(UTC), refund_attempt=False, error=None)
            is False
        )
        assert row(conn, job_id) == before
        claimed(conn, job_id)
        assert q.complete_job(conn, job_id, OWNER) is True
        assert q.complete_job(conn, job_id, OWNER) is False  # a duplicate finish


def test_requeue_keeps_every_error_and_snooze_refunds_the_attempt(engine: Engine) -> None:
    with engine.begin() as conn:
        job_id = add_job(conn)
        claimed(conn, job_id)
        retry_at = datetime.now(UTC) + timedelta(seconds=40)
        first = {"attempt": 1, "type": "RuntimeError", "message": "one", "traceback": "tb"}
        assert q.requeue_job(conn, job_id, OWNER, retry_at, refund_attempt=False, error=first)
        data = row(conn, job_id)
        assert (data["status"], data["attempts"], data["next_run_at"]) == ("queued", 1, retry_at)
        assert data["locked_by"] is None and data["locked_until"] is None

        set_columns(conn, job_id, "next_run_at = now()")
        claimed(conn, job_id)
        snooze_at = datetime.now(UTC) + timedelta(seconds=5)
        assert q.requeue_job(conn, job_id, OWNER, snooze_at, refund_attempt=True, error=None)
        data = row(conn, job_id)
        assert data["attempts"] == 1  # the snoozed attempt was given back
        assert error_messages(conn, job_id) == ["one"]  # a snooze records no error

        set_columns(conn, job_id, "next_run_at = now()")
        claimed(conn, job_id)
        kill_with(conn, job_id, "two", attempt=2)
        data = row(conn, job_id)
        assert error_messages(conn, job_id) == ["one", "two"]
    assert (data["status"], data["attempts"]) == (states.DEAD, 2)
    assert data["completed_at"] is not None


def test_cancel_then_the_workers_finish_is_a_no_op(engine: Engine) -> None:
    with engine.begin() as conn:
        job_ids = add_jobs(conn, 3)
        for job_id in job_ids:
            claimed(conn, job_id)
            assert q.cancel_job(conn, job_id) is True
        cancelled = {job_id: row(conn, job_id) for job_id in job_ids}
        error = {"attempt": 1, "type": "X", "message": "late", "traceback": ""}
        soon = datetime.now(UTC)
        assert q.complete_job(conn, job_ids[0], OWNER) is False
        assert q.requeue_job(conn, job_ids[1], OWNER, soon, refund_attempt=False, error=error) is (
            False
        )
        assert q.kill_job(conn, job_ids[2], OWNER, error) is False
        assert q.extend_leases(conn, WORKER, job_ids, LEASE) == 0
        assert q.release_leases(conn, WORKER, job_ids) == 0
        for job_id in job_ids:
            data = row(conn, job_id)
            assert data == cancelled[job_id]
            assert data["status"] == states.CANCELLED
            assert data["completed_at"] is not None
            assert data["locked_by"] is None


def test_cancel_only_from_queued_or_running(engine: Engine) -> None:
    with engine.begin() as conn:
        queued = add_job(conn)
        assert q.cancel_job(conn, queued) is True
        assert q.cancel_job(conn, queued) is False  # already cancelled
        done = add_job(conn)
        claimed(conn, done)
        assert q.complete_job(conn, done, OWNER)
        assert q.cancel_job(conn, done) is False
        assert row(conn, done)["status"] == states.SUCCEEDED


def test_extend_leases_pushes_back_only_this_workers_running_jobs(engine: Engine) -> None:
    with engine.begin() as conn:
        mine, theirs, queued = add_jobs(conn, 3)
        claimed(conn, mine)
        claimed(conn, theirs, OTHER_OWNER)
        set_columns(conn, mine, "locked_until = now() + interval '1 second'")
        assert q.extend_leases(conn, WORKER, [mine, theirs, queued], 120) == 1
        assert row(conn, mine)["locked_until"] - row(conn, mine)["started_at"] == timedelta(
            seconds=120
        )
        assert row(conn, theirs)["locked_until"] - row(conn, theirs)["started_at"] == timedelta(
            seconds=LEASE
        )
        assert q.extend_leases(conn, WORKER, [], 120) == 0


def test_extend_leases_skips_a_job_another_transaction_holds_without_waiting(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        finishing, running = add_jobs(conn, 2)
        claimed(conn, finishing)
        claimed(conn, running)
    with engine.connect() as finisher, engine.connect() as heartbeat:
        finisher.begin()
        assert q.complete_job(finisher, finishing, OWNER)  # its row stays locked until commit
        heartbeat.begin()
        heartbeat.execute(text("SET LOCAL lock_timeout = '2s'"))  # a wait would fail, not hang
        assert q.extend_leases(heartbeat, WORKER, [finishing, running], 120) == 1
        heartbeat.commit()
        finisher.commit()
    with engine.connect() as conn:
        extended = row(conn, running)
        assert extended["locked_until"] - extended["started_at"] >= timedelta(seconds=100)
        assert row(conn, finishing)["status"] == states.SUCCEEDED


# -- an operator's retry ---------------------------------------------------------------


def test_retry_job_only_from_dead_or_cancelled_resets_attempts_and_keeps_errors(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        dead = add_job(conn)
        claimed(conn, dead)
        kill_with(conn, dead, "first life")
        set_columns(conn, dead, "rescues = 2")
        before = row(conn, dead)
        assert before["attempts"] == 1 and before["sent_at"] is None
        set_columns(conn, dead, "sent_at = now()")

        assert q.retry_job(conn, dead) is True
        data = row(conn, dead)
        assert data["status"] == states.QUEUED
        assert (data["attempts"], data["rescues"]) == (0, 0)
        assert data["completed_at"] is None
        assert data["sent_at"] is None  # the dispatcher sends it again
        assert data["next_run_at"] is not None
        assert error_messages(conn, dead) == ["first life"]

        # A second life: its errors add to the first's.
        claimed(conn, dead)
        kill_with(conn, dead, "second life")
        assert error_messages(conn, dead) == ["first life", "second life"]

        cancelled = add_job(conn)
        assert q.cancel_job(conn, cancelled)
        assert q.retry_job(conn, cancelled) is True
        assert row(conn, cancelled)["status"] == states.QUEUED

        queued = add_job(conn)
        running = add_job(conn)
        claimed(conn, running)
        succeeded = add_job(conn)
        claimed(conn, succeeded)
        assert q.complete_job(conn, succeeded, OWNER)
        for job_id in (queued, running, succeeded):
            snapshot = row(conn, job_id)
            assert q.retry_job(conn, job_id) is False
            assert row(conn, job_id) == snapshot
        assert q.retry_job(conn, uuid.uuid4()) is False


def test_retry_dead_jobs_by_type(engine: Engine) -> None:
    with engine.begin() as conn:
        dead_a = add_jobs(conn, 3, job_type="tq.a")
        dead_b = add_jobs(conn, 2, job_type="tq.b")
        for job_id in dead_a + dead_b:
            claimed(conn, job_id)
            kill_with(conn, job_id, "boom")
        cancelled_a = add_job(conn, job_type="tq.a")
        assert q.cancel_job(conn, cancelled_a)
        queued_a = add_job(conn, job_type="tq.a")

        assert q.retry_dead_jobs(conn, "tq.a") == 3
        for job_id in dead_a:
            data = row(conn, job_id)
            assert (data["status"], data["attempts"]) == (states.QUEUED, 0)
            assert error_messages(conn, job_id) == ["boom"]
        assert {row(conn, job_id)["status"] for job_id in dead_b} == {states.DEAD}
        assert row(conn, cancelled_a)["status"] == states.CANCELLED
        assert row(conn, queued_a)["status"] == states.QUEUED
        assert q.retry_dead_jobs(conn, "tq.a") == 0

        assert q.retry_dead_jobs(conn) == 2  # every type
        assert {row(conn, job_id)["status"] for job_id in dead_b} == {states.QUEUED}
        assert q.retry_dead_jobs(conn) == 0


# -- the maintenance services' queries --------------------------------------------------


def test_rescue_requeues_expired_leases_and_kills_after_max_rescues(engine: Engine) -> None:
    with engine.begin() as conn:
        lost, alive = add_jobs(conn, 2)
        claimed(conn, lost)
        claimed(conn, alive, OTHER_OWNER)
        set_columns(conn, lost, "locked_until = now() - interval '1 second', sent_at = now()")

        assert q.rescue_expired_leases(conn, max_rescues=2) == q.RescueResult(requeued=1, dead=0)
        data = row(conn, lost)
        assert data["status"] == states.QUEUED
        assert data["rescues"] == 1
        assert data["attempts"] == 1  # the lost attempt counts
        assert data["locked_by"] is None and data["locked_until"] is None
        assert data["sent_at"] is None  # the dispatcher sends it again at once
        assert data["completed_at"] is None
        [error] = data["error_payload"]["errors"]
        assert error["type"] == "LeaseExpired"
        assert WORKER in error["message"]
        assert error["attempt"] == 1
        assert row(conn, alive)["status"] == states.RUNNING
        assert row(conn, alive)["locked_by"] == OTHER_OWNER
        assert q.rescue_expired_leases(conn, max_rescues=2) == q.RescueResult(0, 0)

        # It loses a second worker: max_rescues reached, it is a poison pill.
        claimed(conn, lost, OTHER_OWNER)
        set_columns(conn, lost, "locked_until = now() - interval '1 second'")
        assert q.rescue_expired_leases(conn, max_rescues=2) == q.RescueResult(requeued=0, dead=1)
        data = row(conn, lost)
    assert data["status"] == states.DEAD
    assert data["rescues"] == 2
    assert data["completed_at"] is not None
    assert data["locked_by"] is None
    assert [e["type"] for e in data["error_payload"]["errors"]] == ["LeaseExpired"] * 2
    assert OTHER_WORKER in data["error_payload"]["errors"][1]["message"]


def test_rescue_leaves_queued_and_finished_jobs_alone(engine: Engine) -> None:
    with engine.begin() as conn:
        queued, done = add_jobs(conn, 2)
        claimed(conn, done)
        assert q.complete_job(conn, done, OWNER)
        before = {job_id: row(conn, job_id) for job_id in (queued, done)}
        assert q.rescue_expired_leases(conn, max_rescues=1) == q.RescueResult(0, 0)
        assert {job_id: row(conn, job_id) for job_id in (queued, done)} == before


def test_release_leases_gives_jobs_back_refunding_the_attempt(engine: Engine) -> None:
    with engine.begin() as conn:
        first, second, theirs = add_jobs(conn, 3, send_now=True)
        claimed(conn, first)
        claimed(conn, second)
        claimed(conn, theirs, OTHER_OWNER)
        set_columns(conn, second, "attempts = 3")  # the 3rd attempt was interrupted
        assert q.release_leases(conn, WORKER, [first, second, theirs]) == 2
        for job_id, attempts in ((first, 0), (second, 2)):
            data = row(conn, job_id)
            assert data["status"] == states.QUEUED
            assert data["attempts"] == attempts
            assert data["sent_at"] is None
            assert data["locked_by"] is None and data["locked_until"] is None
            assert data["error_payload"] is None
            assert q.claim_job(conn, job_id, OTHER_OWNER, LEASE) is not None  # due at once
        assert row(conn, theirs)["status"] == states.RUNNING
        assert q.release_leases(conn, WORKER, []) == 0


def test_postpone_moves_a_queued_job_later_without_spending_an_attempt(engine: Engine) -> None:
    with engine.begin() as conn:
        job_id, running = add_jobs(conn, 2, send_now=True)
        claimed(conn, running)
        assert q.postpone_job(conn, job_id, 30) is True
        data = row(conn, job_id)
        assert data["attempts"] == 0
        assert data["status"] == states.QUEUED
        assert data["next_run_at"] - data["queued_at"] == timedelta(seconds=30)
        assert q.claim_job(conn, job_id, OWNER, LEASE) is None  # not due yet
        assert q.postpone_job(conn, running, 30) is False
        assert row(conn, running)["status"] == states.RUNNING


def test_postpone_never_pulls_a_job_in_before_its_due_time(engine: Engine) -> None:
    # A stale (duplicate) message for a job in its retry backoff meets a full limit:
    # the job must keep its backoff, not run again within a second.
    with engine.begin() as conn:
        job_id = add_job(conn, send_now=True)
        claimed(conn, job_id)
        backoff_until = datetime.now(UTC) + timedelta(hours=1)
        error = {"attempt": 1, "type": "RuntimeError", "message": "x", "traceback": ""}
        assert q.requeue_job(conn, job_id, OWNER, backoff_until, refund_attempt=False, error=error)
        before = row(conn, job_id)
        assert q.postpone_job(conn, job_id, 0.2) is False
        assert row(conn, job_id) == before
        assert row(conn, job_id)["next_run_at"] == backoff_until


def test_prune_deletes_only_old_finished_jobs(engine: Engine) -> None:
    with engine.begin() as conn:
        old = {}
        for status in (states.SUCCEEDED, states.DEAD, states.CANCELLED):
            old[status] = add_job(conn)
            set_columns(
                conn, old[status], f"status = '{status}', completed_at = now() - interval '3 days'"
            )
        recent = add_job(conn)
        set_columns(conn, recent, "status = 'succeeded', completed_at = now() - interval '1 hour'")
        old_queued = add_job(conn)
        set_columns(
            conn, old_queued, "queued_at = now() - interval '30 days', next_run_at = queued_at"
        )
        old_running = add_job(conn)
        claimed(conn, old_running)
        set_columns(conn, old_running, "started_at = now() - interval '30 days'")

        assert q.prune_finished_jobs(conn, older_than_hours=48) == 3
        remaining = set(conn.execute(text("SELECT id FROM async_jobs")).scalars())
        assert remaining == {recent, old_queued, old_running}
        assert q.prune_finished_jobs(conn, older_than_hours=48) == 0
        assert q.prune_finished_jobs(conn, older_than_hours=0.5) == 1  # now "recent" is old
        assert set(conn.execute(text("SELECT id FROM async_jobs")).scalars()) == {
            old_queued,
            old_running,
        }


def test_prune_honours_its_limit(engine: Engine) -> None:
    with engine.begin() as conn:
        for job_id in add_jobs(conn, 5):
            set_columns(conn, job_id, "status = 'dead', completed_at = now() - interval '9 days'")
        assert q.prune_finished_jobs(conn, older_than_hours=24, limit=2) == 2
        assert q.prune_finished_jobs(conn, older_than_hours=24, limit=10) == 3


def clients_of(conn: Connection, messages: list[q.Message]) -> Counter[uuid.UUID | None]:
    return Counter(
        conn.execute(
            text("SELECT client_id FROM async_jobs WHERE id = :id"), {"id": m.job_id}
        ).scalar_one()
        for m in messages
    )


def test_dispatch_respects_the_window_per_queue_and_client(engine: Engine) -> None:
    with engine.begin() as conn:
        client_a, client_b = make_client(conn, "a"), make_client(conn, "b")
        jobs_a = add_jobs(conn, 10, client=client_a)
        for age, job_id in enumerate(reversed(jobs_a)):  # jobs_a[0] is due first
            set_columns(conn, job_id, f"next_run_at = now() - interval '{age} seconds'")
        add_jobs(conn, 2, client=client_b)

    with engine.begin() as conn:
        first = q.dispatch_due_jobs(conn, window=3, limit=100)
        assert clients_of(conn, first) == {client_a: 3, client_b: 2}
        assert all(m.queue_name == "cpu" and m.job_type == "tq.cpu" for m in first)
        # The earliest due of A's jobs go first.
        assert {m.job_id for m in first} >= set(jobs_a[:3])
        assert count(conn, "SELECT count(*) FROM async_jobs WHERE sent_at IS NOT NULL") == 5

    with engine.begin() as conn:
        assert q.dispatch_due_jobs(conn, window=3, limit=100) == []  # A's window is full

    # A worker claims one of A's messages: exactly one slot opens.
    a_sent = [m.job_id for m in first if m.job_id in jobs_a]
    with engine.begin() as conn:
        claimed(conn, a_sent[0])
    with engine.begin() as conn:
        third = q.dispatch_due_jobs(conn, window=3, limit=100)
        assert clients_of(conn, third) == {client_a: 1}
        assert q.dispatch_due_jobs(conn, window=3, limit=100) == []

    # Claiming all of A's outstanding messages refills the window to 3.
    with engine.begin() as conn:
        for job_id in a_sent[1:] + [m.job_id for m in third]:
            claimed(conn, job_id)
    with engine.begin() as conn:
        fourth = q.dispatch_due_jobs(conn, window=3, limit=100)
        assert clients_of(conn, fourth) == {client_a: 3}


def test_dispatch_limit_is_shared_round_robin_across_clients(engine: Engine) -> None:
    with engine.begin() as conn:
        client_a, client_b = make_client(conn, "a"), make_client(conn, "b")
        add_jobs(conn, 10, client=client_a)
        add_jobs(conn, 10, client=client_b)
        add_jobs(conn, 10, client=None)
    with engine.begin() as conn:
        messages = q.dispatch_due_jobs(conn, window=100, limit=6)
        assert clients_of(conn, messages) == {client_a: 2, client_b: 2, None: 2}


def test_dispatch_counts_each_queue_separately(engine: Engine) -> None:
    with engine.begin() as conn:
        client = make_client(conn, "a")
        add_jobs(conn, 5, client=client)
        add_jobs(conn, 5, client=client, job_type="tq.llm", queue="llm")
    with engine.begin() as conn:
        messages = q.dispatch_due_jobs(conn, window=2, limit=100)
    assert Counter(m.queue_name for m in messages) == {"cpu": 2, "llm": 2}


def test_dispatch_skips_jobs_not_due_already_sent_or_not_queued(engine: Engine) -> None:
    with engine.begin() as conn:
        later, sent, running, cancelled, retried = add_jobs(conn, 5)
        set_columns(conn, later, "next_run_at = now() + interval '1 minute'")
        set_columns(conn, sent, "sent_at = next_run_at")
        claimed(conn, running)
        assert q.cancel_job(conn, cancelled)
        # A retry whose backoff ended: its old message was for an earlier due time.
        claimed(conn, retried)
        assert q.requeue_job(
            conn, retried, OWNER, datetime.now(UTC), refund_attempt=False, error=None
        )
        set_columns(
            conn,
            retried,
            "sent_at = now() - interval '10 seconds', next_run_at = now() - interval '1 second'",
        )
    with engine.begin() as conn:
        messages = q.dispatch_due_jobs(conn, window=10, limit=100)
    assert [m.job_id for m in messages] == [retried]
    with engine.begin() as conn:
        data = row(conn, retried)
        assert data["sent_at"] >= data["next_run_at"]  # outstanding now
        assert q.dispatch_due_jobs(conn, window=10, limit=100) == []


def test_relay_resends_only_messages_outstanding_longer_than_the_age(engine: Engine) -> None:
    with engine.begin() as conn:
        lost, recent = add_jobs(conn, 2, send_now=True)
        unsent = add_job(conn)  # the dispatcher's, not the relay's
        old_unsent = add_job(conn)
        set_columns(conn, old_unsent, "next_run_at = now() - interval '10 minutes'")
        old_running = add_job(conn, send_now=True)
        claimed(conn, old_running)
        # A message sent long ago for a job that is still queued and due: lost.
        set_columns(
            conn,
            lost,
            "sent_at = now() - interval '60 seconds', next_run_at = now() - interval '60 seconds'",
        )
        set_columns(
            conn,
            old_running,
            "sent_at = now() - interval '60 seconds', next_run_at = now() - interval '60 seconds'",
        )
        recent_sent_at = row(conn, recent)["sent_at"]

    with engine.begin() as conn:
        relayed = q.relay_lost_messages(conn, older_than_seconds=30, limit=100)
        assert [m.job_id for m in relayed] == [lost]
        assert relayed[0].queue_name == "cpu" and relayed[0].job_type == "tq.cpu"
        assert row(conn, lost)["sent_at"] > row(conn, lost)["next_run_at"]
        assert row(conn, recent)["sent_at"] == recent_sent_at
        assert row(conn, unsent)["sent_at"] is None
        assert row(conn, old_unsent)["sent_at"] is None

    with engine.begin() as conn:
        # Just re-sent: not lost again yet.
        assert q.relay_lost_messages(conn, older_than_seconds=30, limit=100) == []
        # The broker lost everything: every message sent before the loss goes again,
        # however recent, and only once (re-sent ones are after the cutoff).
        lost_at = q.database_now(conn)
    with engine.begin() as conn:
        everything = q.relay_lost_messages(conn, 30, limit=100, sent_before=lost_at)
        assert {m.job_id for m in everything} == {lost, recent}
    with engine.begin() as conn:
        assert q.relay_lost_messages(conn, 30, limit=100, sent_before=lost_at) == []


def test_relay_honours_its_limit_oldest_first(engine: Engine) -> None:
    with engine.begin() as conn:
        job_ids = add_jobs(conn, 4, send_now=True)
        for age, job_id in enumerate(job_ids, start=1):
            set_columns(
                conn,
                job_id,
                f"sent_at = now() - interval '{age} minutes', next_run_at = now() - interval"
                f" '{age} minutes'",
            )
    with engine.begin() as conn:
        relayed = q.relay_lost_messages(conn, older_than_seconds=30, limit=2)
    assert {m.job_id for m in relayed} == {job_ids[3], job_ids[2]}


def test_list_jobs_and_job_status(engine: Engine) -> None:
    with engine.begin() as conn:
        queued = add_job(conn, job_type="tq.a")
        dead = add_job(conn, job_type="tq.b")
        claimed(conn, dead)
        kill_with(conn, dead, "the last word")
        assert q.job_status(conn, queued) == states.QUEUED
        assert q.job_status(conn, uuid.uuid4()) is None
        [summary] = q.list_jobs(conn, status=states.DEAD)
        assert (summary.id, summary.job_type, summary.attempts) == (dead, "tq.b", 1)
        assert summary.last_error == "the last word"
        assert [s.id for s in q.list_jobs(conn, job_type="tq.a")] == [queued]
        assert len(q.list_jobs(conn)) == 2
