"""Announcer: the one way the use cases, the soak, the watch and the alarm intake tell people something."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.events import AnyEvent, MessageRef, Notifier
from bot.ports import Clock, StorePort

log = logging.getLogger(__name__)


class Announcer:
    """Tells the notifier, once per event key, and never lets a Slack outage block or undo a change.

    Observers (the App Home board) hear every event after the notifier did, whether or not it was delivered.
    """

    def __init__(self, notifier: Notifier, store: StorePort, clock: Clock) -> None:
        self.notifier = notifier
        self._store = store
        self._clock = clock
        self._observers: list[Callable[[AnyEvent], None]] = []

    def observe(self, observer: Callable[[AnyEvent], None]) -> None:
        self._observers.append(observer)

    def announce(self, event: AnyEvent) -> MessageRef | None:
        """Tell people. Failures are only logged. An event with a key is told once (a redelivered alarm, a
        completion found again after a crash)."""
        told = f"msg:{event.key}" if event.key is not None else None
        if told is not None and self._store.is_claimed(told):
            return None
        try:
            ref = self.notifier.publish(event)
        except Exception:
            log.exception("notifier failed for %s", event.kind)
            return None
        finally:
            self._tell_observers(event)
        # Marked after: a crash in between tells it again, and the outbox (same key) delivers it once.
        if told is not None:
            self._store.claim(told, self._clock.now())
        return ref

    def _tell_observers(self, event: AnyEvent) -> None:
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                log.exception("observer failed for %s", event.kind)
