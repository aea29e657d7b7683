"""Compute turns: how many threads of a worker process compute at once, and who goes next.

Job types that call a rate-limited provider (``limits_at_call``) run on many more
threads than CPUs, so that while a hundred calls are out, other threads read the
next essays and write the last scores. Left alone, those threads all compute at
once the moment a wave of answers comes back: every thread gets a sliver of the
GIL and of two cores, a thread holding the next call's request waits behind a
hundred writes, and the calls go out late.

So such an attempt computes only while it holds one of the process's few turns,
and gives its turn up while it waits for the provider (for a limit's slot, then
for the answer). Turns are handed out by priority, then in order of asking: an
attempt whose answer came back (:data:`FINISHING`) goes before one that has not
started (:data:`STARTING`), so work in hand is finished before new work is taken
and the threads bringing back answers are not starved by new ones.

Finishing attempts may also hold :data:`FINISHING_EXTRA` turns beyond the
process's turns. Finishing is mostly waiting on PostgreSQL (the transaction that
writes the result, advances the pipeline and enqueues the next stage: eight round
trips), so with one turn a wave of answers was written one transaction at a time
and the last answer waited behind the others' round trips; a second finisher
overlaps them. Starting attempts stay within the process's turns: the first calls
of a burst go out sooner when fewer threads prepare at once.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: An attempt whose provider call has returned: it writes its result next.
FINISHING = 0
#: An attempt that has not made its call yet (claim, read, prepare).
STARTING = 1
#: Turns a process's finishing attempts may hold beyond its turns (starting ones may not).
FINISHING_EXTRA = 1


class Turns:
    """A semaphore of ``size`` turns (``size + finishing_extra`` for finishing attempts),
    handed to waiters by (priority, arrival).

    A turn given back while threads wait passes straight to the first in line
    (one thread woken, not all of them).
    """

    def __init__(self, size: int, finishing_extra: int = FINISHING_EXTRA) -> None:
        if size < 1:
            raise ValueError(f"a process needs at least one compute turn, not {size}")
        self._size = size
        self._finishing_extra = finishing_extra
        self._held = 0
        self._waiting: list[tuple[int, int, threading.Event]] = []
        self._arrivals = itertools.count()
        self._lock = threading.Lock()
        self._mine = threading.local()

    def _limit(self, priority: int) -> int:
        """How many turns may be held for an attempt of ``priority`` to take one."""
        return self._size + (self._finishing_extra if priority == FINISHING else 0)

    def take(self, priority: int) -> None:
        """Block until this thread holds a turn (at once if it holds one already)."""
        if self.holding():
            return
        with self._lock:
            # Nobody waiting goes before it: waiters of its priority came first.
            first = not self._waiting or self._waiting[0][0] > priority
            if first and self._held < self._limit(priority):
                self._held += 1
                self._mine.holding = True
                return
            ticket = (priority, next(self._arrivals), threading.Event())
            heapq.heappush(self._waiting, ticket)
        try:
            ticket[2].wait()
            self._mine.holding = True
        except BaseException:  # interrupted (a time limit): leave the line, or pass it on
            with self._lock:
                handed = ticket[2].is_set()
                if not handed:
                    self._waiting.remove(ticket)
                    heapq.heapify(self._waiting)
            if handed:
                self._mine.holding = True
                self.give_back()
            raise

    def give_back(self) -> None:
        """Give this thread's turn to the first in line, or free it (no-op without one)."""
        if not self.holding():
            return
        self._mine.holding = False
        with self._lock:
            self._held -= 1
            # Under the lock: see take's except.
            while self._waiting and self._held < self._limit(self._waiting[0][0]):
                self._held += 1
                heapq.heappop(self._waiting)[2].set()

    def holding(self) -> bool:
        return bool(getattr(self._mine, "holding", False))

    @contextmanager
    def held(self, priority: int = STARTING) -> Iterator[None]:
        """Hold a turn for the block."""
        self.take(priority)
        try:
            yield
        finally:
            self.give_back()

    @contextmanager
    def given_up(self) -> Iterator[None]:
        """Give the held turn up for a block that waits (not computes); take one back
        afterwards ahead of every attempt still starting."""
        self.give_back()
        try:
            yield
        finally:
            self.take(FINISHING)

    @property
    def free(self) -> int:
        """Turns a starting attempt could take right now."""
        with self._lock:
            return max(0, self._size - self._held)
