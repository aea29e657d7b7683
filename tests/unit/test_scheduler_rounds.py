"""The scheduler's rounds: each service runs at most as often as its ``every_seconds``."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Engine

from gradeflow.workers.maintenance import Service
from gradeflow.workers.scheduler import Scheduler


class Counting(Service):
    def __init__(self, every_seconds: float) -> None:
        self.every_seconds = every_seconds
        self.runs = 0

    def run_once(self) -> int:
        self.runs += 1
        return 1


def test_a_service_runs_every_round_unless_it_asks_for_a_longer_period() -> None:
    every_round, hourly = Counting(0.0), Counting(3600.0)
    # No service here touches the database; the engine is only held for the loop.
    scheduler = Scheduler(cast(Engine, None), [every_round, hourly], idle_pause_seconds=0.25)
    assert scheduler.run_round() == 2
    assert scheduler.run_round() == 1
    assert scheduler.run_round() == 1
    assert (every_round.runs, hourly.runs) == (3, 1)


def test_a_service_runs_again_once_its_period_has_passed() -> None:
    often = Counting(0.01)
    scheduler = Scheduler(cast(Engine, None), [often], idle_pause_seconds=0.25)
    scheduler.run_round()
    scheduler.last_runs[0] -= 0.02  # as if 20 ms had passed
    scheduler.run_round()
    assert often.runs == 2
