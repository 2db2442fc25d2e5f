"""Clocks: the simulated clock of the demo keeps exact steps but measures real time inside a step."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bot.clock import ManualClock, SimulatedClock

START = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)


def test_the_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(START)
    assert clock.now() == START
    assert clock.advance(timedelta(minutes=1)) == START + timedelta(minutes=1)
    assert clock.now() == START + timedelta(minutes=1)


def test_the_simulated_clock_lands_exactly_on_each_step_and_runs_in_between() -> None:
    clock = SimulatedClock(START)
    time.sleep(0.02)
    inside = clock.now()
    assert inside - START >= timedelta(seconds=0.02)
    assert clock.advance(timedelta(minutes=1)) == START + timedelta(minutes=1)
    assert clock.now() >= START + timedelta(minutes=1)
    assert clock.now() - (START + timedelta(minutes=1)) < timedelta(seconds=1)
