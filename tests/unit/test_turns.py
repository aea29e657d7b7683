"""Compute turns: at most ``size`` holders (one more finishing), handed on by priority
then arrival."""

from __future__ import annotations

import ctypes
import threading
import time

import pytest

from gradeflow.workers.turns import FINISHING, STARTING, Turns


def wait_until_waiting(turns: Turns, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(turns._waiting) < count:
        assert time.monotonic() < deadline, "the waiters never queued"
        time.sleep(0.001)


def test_no_more_than_size_hold_a_turn_at_once() -> None:
    turns = Turns(2)
    holding, peak, lock = 0, 0, threading.Lock()

    def work() -> None:
        nonlocal holding, peak
        with turns.held():
            with lock:
                holding += 1
                peak = max(peak, holding)
            time.sleep(0.005)
            with lock:
                holding -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2
    assert turns.free == 2


def test_a_finishing_attempt_goes_before_earlier_starting_ones() -> None:
    turns = Turns(1, finishing_extra=0)
    order: list[str] = []
    turns.take(STARTING)  # the one turn is busy

    def waiter(name: str, priority: int) -> threading.Thread:
        def run() -> None:
            with turns.held(priority):
                order.append(name)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    first = waiter("starting-1", STARTING)
    wait_until_waiting(turns, 1)
    second = waiter("starting-2", STARTING)
    wait_until_waiting(turns, 2)
    finishing = waiter("finishing", FINISHING)
    wait_until_waiting(turns, 3)
    turns.give_back()
    for thread in (first, second, finishing):
        thread.join(5)
    assert order == ["finishing", "starting-1", "starting-2"]
    assert turns.free == 1


def test_finishing_attempts_may_hold_one_turn_beyond_the_starting_ones() -> None:
    turns = Turns(1)
    turns.take(STARTING)  # the one turn is busy
    inside = {name: threading.Event() for name in ("finishing-1", "starting", "finishing-2")}
    leave = {name: threading.Event() for name in inside}

    def attempt(name: str, priority: int) -> threading.Thread:
        def run() -> None:
            with turns.held(priority):
                inside[name].set()
                leave[name].wait(5)

        thread = threading.Thread(target=run, daemon=True)  # a failure must not hang the run
        thread.start()
        return thread

    threads = [attempt("finishing-1", FINISHING)]
    assert inside["finishing-1"].wait(5), "a finishing attempt takes the extra turn at once"
    threads.append(attempt("starting", STARTING))
    wait_until_waiting(turns, 1)
    threads.append(attempt("finishing-2", FINISHING))  # two held: it waits, ahead of starting
    wait_until_waiting(turns, 2)

    turns.give_back()
    assert inside["finishing-2"].wait(5)
    leave["finishing-1"].set()
    threads[0].join(5)
    assert not inside["starting"].is_set()  # finishing-2 holds the process's one turn
    leave["finishing-2"].set()
    assert inside["starting"].wait(5)
    leave["starting"].set()
    for thread in threads:
        thread.join(5)
    assert turns.free == 1
    assert turns._waiting == []


def test_given_up_frees_the_turn_for_the_block_and_takes_one_back() -> None:
    turns = Turns(1, finishing_extra=0)
    took, release = threading.Event(), threading.Event()

    def other() -> None:
        with turns.held():
            took.set()
            release.wait(5)

    with turns.held():
        thread = threading.Thread(target=other)
        thread.start()
        wait_until_waiting(turns, 1)
        with turns.given_up():
            assert took.wait(5), "the turn given up went to the thread waiting for one"
            release.set()
        assert turns.holding()  # back, once the other thread gave its turn back
    thread.join(5)
    assert turns.free == 1


def test_an_interrupted_wait_leaves_the_line_and_loses_no_turn() -> None:
    turns = Turns(1)
    turns.take(STARTING)
    interrupted = threading.Event()

    class Interrupt(Exception):
        pass

    def run() -> None:
        try:
            with turns.held():
                pass
        except Interrupt:
            interrupted.set()

    thread = threading.Thread(target=run)
    thread.start()
    wait_until_waiting(turns, 1)
    # What Dramatiq's time limit does: raise an exception in the waiting thread.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident or 0), ctypes.py_object(Interrupt)
    )
    turns.give_back()  # may race the interruption: the turn must come back either way
    thread.join(5)
    assert interrupted.is_set()
    assert turns.free == 1
    assert turns._waiting == []


def test_a_process_needs_a_turn() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Turns(0)
