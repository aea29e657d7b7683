"""The job states and the moves between them."""

from __future__ import annotations

import pytest

from gradeflow.jobs import states
from gradeflow.jobs.states import CANCELLED, DEAD, QUEUED, RUNNING, SUCCEEDED, can_move


def test_all_names_the_five_states() -> None:
    assert {"queued", "running", "succeeded", "dead", "cancelled"} == states.ALL


def test_every_state_has_a_transition_entry_and_every_target_is_a_state() -> None:
    assert set(states.TRANSITIONS) == states.ALL
    for targets in states.TRANSITIONS.values():
        assert targets <= states.ALL


def test_finished_states() -> None:
    assert {SUCCEEDED, DEAD, CANCELLED} == states.FINISHED
    assert states.FINISHED < states.ALL
    assert QUEUED not in states.FINISHED
    assert RUNNING not in states.FINISHED


def test_succeeded_is_terminal_and_only_an_operator_retry_leaves_dead_or_cancelled() -> None:
    assert states.TRANSITIONS[SUCCEEDED] == frozenset()
    assert states.TRANSITIONS[DEAD] == {QUEUED}
    assert states.TRANSITIONS[CANCELLED] == {QUEUED}


def test_unfinished_states_can_reach_a_finished_one() -> None:
    for state in states.ALL - states.FINISHED:
        assert states.TRANSITIONS[state] & states.FINISHED, state


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (QUEUED, RUNNING),  # claim
        (QUEUED, CANCELLED),  # cancel
        (QUEUED, QUEUED),  # postponed by a limit
        (RUNNING, SUCCEEDED),  # complete
        (RUNNING, QUEUED),  # retry, snooze, rescue, release
        (RUNNING, DEAD),  # give up
        (RUNNING, CANCELLED),  # cancel
        (DEAD, QUEUED),  # operator retry
        (CANCELLED, QUEUED),  # operator retry
    ],
)
def test_allowed_moves(current: str, target: str) -> None:
    assert can_move(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (QUEUED, SUCCEEDED),  # must run first
        (QUEUED, DEAD),
        (RUNNING, RUNNING),  # a second claim
        (SUCCEEDED, QUEUED),
        (SUCCEEDED, RUNNING),
        (SUCCEEDED, DEAD),
        (DEAD, RUNNING),
        (DEAD, SUCCEEDED),
        (CANCELLED, RUNNING),
        (CANCELLED, SUCCEEDED),
        ("lost", QUEUED),  # unknown states move nowhere
        (QUEUED, "lost"),
    ],
)
def test_forbidden_moves(current: str, target: str) -> None:
    assert not can_move(current, target)
