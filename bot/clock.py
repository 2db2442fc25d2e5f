"""Clocks: the real one, and a manual one for tests and the time-compressed demo."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to. Thread-safe, so the scheduler and tests can share it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


class SimulatedClock(ManualClock):
    """Manual time that also runs with real time between manual steps.

    The demo jumps a minute at a time, but the time from an alarm to the alias reverted is measured inside one
    step, and should show the real duration (tens of milliseconds), not zero. Each `advance` lands exactly on
    its target, so period boundaries stay exact.
    """

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start)
        self._mark = time.monotonic()

    def now(self) -> datetime:
        with self._lock:
            return self._now + timedelta(seconds=time.monotonic() - self._mark)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            self._mark = time.monotonic()
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when
            self._mark = time.monotonic()
