"""The SQLite file store's writers queue in the process: a claim (a Slack ack waits on it) goes first, the
others yield to it for a bounded time, and nobody waits past the busy timeout."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.store.sqlite import SqliteStore, _WriterQueue


def _waiting(queue: _WriterQueue, order: list[str], name: str, *, urgent: bool) -> threading.Thread:
    def take() -> None:
        assert queue.acquire(urgent=urgent, timeout=5)
        order.append(name)
        queue.release()

    thread = threading.Thread(target=take)
    thread.start()
    return thread


def test_an_urgent_writer_goes_before_writers_that_were_waiting_longer() -> None:
    queue = _WriterQueue()
    order: list[str] = []
    assert queue.acquire(urgent=False, timeout=1)
    background = _waiting(queue, order, "background", urgent=False)
    time.sleep(0.05)
    claim = _waiting(queue, order, "claim", urgent=True)
    time.sleep(0.05)
    queue.release()
    for thread in (background, claim):
        thread.join(timeout=5)

    assert order == ["claim", "background"]


def test_a_background_writer_stops_yielding_after_a_bounded_wait() -> None:
    queue = _WriterQueue()
    queue._urgent_waiting = 1  # an urgent writer that never gets its turn (as under a stream of claims)
    began = time.monotonic()

    assert queue.acquire(urgent=False, timeout=5)
    assert _WriterQueue.YIELD_S <= time.monotonic() - began < 5
    queue.release()


def test_a_writer_gives_up_at_the_timeout_and_the_queue_is_reentrant() -> None:
    queue = _WriterQueue()
    assert queue.acquire(urgent=False, timeout=1)
    assert queue.acquire(urgent=True, timeout=1)  # the same thread, again
    queue.release()

    result: list[bool] = []
    other = threading.Thread(target=lambda: result.append(queue.acquire(urgent=True, timeout=0.1)))
    other.start()
    other.join(timeout=5)
    assert result == [False]  # still held once by this thread
    queue.release()
    assert queue.acquire(urgent=True, timeout=0.1)
    queue.release()


def test_claims_from_many_threads_at_once_are_each_granted_exactly_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "claims.db")
    now = datetime(2026, 11, 30, tzinfo=UTC)
    won: list[bool] = []

    def claim_all() -> None:
        for i in range(50):
            won.append(store.claim(f"key-{i}", now))

    threads = [threading.Thread(target=claim_all) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    store.close()

    assert len(won) == 300 and sum(won) == 50
