"""decide(): a pure function from one attempt's outcome to the job's next state."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from gradeflow.jobs import states
from gradeflow.jobs.errors import PermanentError, Snooze
from gradeflow.jobs.retry import Decision, Failed, RetryPolicy, Succeeded, decide

#: A fixed clock far from the real one: decide() must only use the ``now`` it is given.
NOW = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=30, base_seconds=2.0, max_seconds=3600.0, jitter=0.2)


def raised(error: BaseException) -> BaseException:
    """``error`` after being raised and caught, so it carries a traceback."""
    try:
        raise error
    except BaseException as caught:
        return caught


def delay_of(decision: Decision) -> float:
    assert decision.next_run_at is not None
    return (decision.next_run_at - NOW).total_seconds()


def test_success_is_succeeded_with_nothing_else() -> None:
    decision = decide(1, Succeeded(), NOW, POLICY, random.Random(1))
    assert decision == Decision(states.SUCCEEDED)
    assert decision.next_run_at is None
    assert decision.error is None
    assert decision.refund_attempt is False


def test_success_on_the_last_allowed_attempt_is_still_succeeded() -> None:
    decision = decide(POLICY.max_attempts, Succeeded(), NOW, POLICY, random.Random(1))
    assert decision.status == states.SUCCEEDED


@pytest.mark.parametrize("seed", [0, 1, 2, 42, 1234])
def test_retryable_error_is_queued_with_jittered_exponential_backoff(seed: int) -> None:
    rng = random.Random(seed)
    for attempt in range(1, 12):
        decision = decide(attempt, Failed(raised(RuntimeError("boom"))), NOW, POLICY, rng)
        assert decision.status == states.QUEUED
        assert decision.refund_attempt is False
        raw = POLICY.base_seconds * 2 ** (attempt - 1)
        low, high = raw * (1 - POLICY.jitter), raw * (1 + POLICY.jitter)
        assert low <= delay_of(decision) <= high, (attempt, delay_of(decision))


def test_backoff_doubles_per_attempt_without_jitter() -> None:
    policy = RetryPolicy(max_attempts=30, base_seconds=1.5, max_seconds=10_000.0, jitter=0.0)
    delays = [
        delay_of(decide(attempt, Failed(RuntimeError("x")), NOW, policy, random.Random(0)))
        for attempt in range(1, 9)
    ]
    assert delays == [1.5 * 2**n for n in range(8)]


def test_jittered_backoff_still_grows_when_jitter_bands_do_not_overlap() -> None:
    # With jitter 0.2 the bands of attempts n and n+1 are [0.8r, 1.2r] and [1.6r, 2.4r].
    rng = random.Random(7)
    delays = [
        delay_of(decide(attempt, Failed(RuntimeError("x")), NOW, POLICY, rng))
        for attempt in range(1, 12)
    ]
    assert delays == sorted(delays)
    assert len(set(delays)) == len(delays)


def test_backoff_is_capped_at_max_seconds() -> None:
    exact = RetryPolicy(max_attempts=100, base_seconds=2.0, max_seconds=60.0, jitter=0.0)
    for attempt in (6, 7, 10, 50, 99):  # 2 * 2**5 = 64 > 60 already
        decision = decide(attempt, Failed(RuntimeError("x")), NOW, exact, random.Random(0))
        assert delay_of(decision) == 60.0
    jittered = RetryPolicy(max_attempts=100, base_seconds=2.0, max_seconds=60.0, jitter=0.2)
    rng = random.Random(3)
    for attempt in range(6, 99):
        decision = decide(attempt, Failed(RuntimeError("x")), NOW, jittered, rng)
        assert 48.0 <= delay_of(decision) <= 72.0


def test_same_seed_gives_the_same_decision() -> None:
    error = raised(RuntimeError("boom"))
    first = decide(3, Failed(error), NOW, POLICY, random.Random(99))
    second = decide(3, Failed(error), NOW, POLICY, random.Random(99))
    assert first == second
    other = decide(3, Failed(error), NOW, POLICY, random.Random(100))
    assert other.next_run_at != first.next_run_at


def test_decide_uses_only_the_given_rng() -> None:
    random.seed(5)
    expected_global = random.random()
    random.seed(5)
    decide(2, Failed(RuntimeError("x")), NOW, POLICY, random.Random(1))
    assert random.random() == expected_global


def test_attempts_exhausted_is_dead_with_the_error() -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=1.0, max_seconds=10.0, jitter=0.1)
    assert decide(2, Failed(RuntimeError("x")), NOW, policy, random.Random(0)).status == (
        states.QUEUED
    )
    for attempt in (3, 4):
        decision = decide(attempt, Failed(raised(RuntimeError("last"))), NOW, policy)
        assert decision.status == states.DEAD
        assert decision.next_run_at is None
        assert decision.refund_attempt is False
        assert decision.error is not None
        assert decision.error["attempt"] == attempt
        assert decision.error["message"] == "last"
        assert decision.error["permanent"] is False


def test_permanent_error_is_dead_on_the_first_attempt() -> None:
    decision = decide(1, Failed(raised(PermanentError("bad input"))), NOW, POLICY, random.Random(0))
    assert decision.status == states.DEAD
    assert decision.next_run_at is None
    assert decision.error is not None
    assert decision.error["type"] == "PermanentError"
    assert decision.error["permanent"] is True


def test_snooze_requeues_at_now_plus_seconds_refunding_the_attempt() -> None:
    for attempt in (1, POLICY.max_attempts, POLICY.max_attempts + 5):
        decision = decide(attempt, Failed(raised(Snooze(12.5, "429"))), NOW, POLICY)
        assert decision == Decision(
            states.QUEUED, NOW + timedelta(seconds=12.5), refund_attempt=True, error=None
        )


def test_negative_snooze_means_now() -> None:
    decision = decide(1, Failed(Snooze(-3)), NOW, POLICY, random.Random(0))
    assert decision.next_run_at == NOW
    assert decision.refund_attempt is True


def test_error_record_has_type_message_traceback_and_attempt() -> None:
    def failing_step() -> None:
        raise ValueError("the input was odd")

    try:
        failing_step()
    except ValueError as caught:
        error: BaseException = caught
    decision = decide(2, Failed(error), NOW, POLICY, random.Random(0))
    assert decision.error is not None
    record = decision.error
    assert record["type"] == "ValueError"
    assert record["message"] == "the input was odd"
    assert record["attempt"] == 2
    assert record["at"] == NOW.isoformat()
    assert record["timed_out"] is False
    assert record["permanent"] is False
    traceback = record["traceback"]
    assert isinstance(traceback, str)
    assert traceback.startswith("Traceback (most recent call last)")
    assert "failing_step" in traceback
    assert "ValueError: the input was odd" in traceback


def test_timed_out_failure_is_recorded_as_such() -> None:
    decision = decide(1, Failed(TimeoutError("slow"), timed_out=True), NOW, POLICY)
    assert decision.status == states.QUEUED
    assert decision.error is not None
    assert decision.error["timed_out"] is True


def test_long_messages_and_tracebacks_are_truncated() -> None:
    decision = decide(1, Failed(raised(RuntimeError("x" * 10_000))), NOW, POLICY)
    assert decision.error is not None
    assert len(str(decision.error["message"])) == 2000
    assert len(str(decision.error["traceback"])) <= 8000


def test_retry_after_requeues_at_its_own_delay_spending_the_attempt() -> None:
    from gradeflow.jobs.errors import RetryAfter

    decision = decide(2, Failed(raised(RetryAfter(300.0, "503"))), NOW, POLICY, random.Random(1))
    assert decision.status == states.QUEUED
    assert delay_of(decision) == 300.0
    assert decision.refund_attempt is False
    assert decision.error is not None and decision.error["type"] == "RetryAfter"


def test_retry_after_on_the_last_attempt_is_dead() -> None:
    from gradeflow.jobs.errors import RetryAfter

    decision = decide(30, Failed(raised(RetryAfter(5.0))), NOW, POLICY, random.Random(1))
    assert decision.status == states.DEAD
