"""`/canary status` under a burst: concurrent reads of one alias share the call in flight (SharedReads)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.model import AliasState
from bot.ports import AwsFailure
from bot.usecases.queries import SharedReads
from tests.support.world import make_world


class _HeldCall:
    """A call that blocks until released, counting how often it was made."""

    def __init__(self, answer: Callable[[], str]) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self._answer = answer

    def __call__(self) -> str:
        self.calls += 1
        self.started.set()
        assert self.release.wait(5)
        return self._answer()


def test_readers_arriving_while_a_read_is_in_flight_share_its_answer() -> None:
    reads: SharedReads[str] = SharedReads()
    call = _HeldCall(lambda: "v1")
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(reads.read, "fn:production", call)
        assert call.started.wait(5)
        followers = [pool.submit(reads.read, "fn:production", call) for _ in range(3)]
        time.sleep(0.05)  # the followers are waiting on the flight
        call.release.set()
        assert [f.result(5) for f in (first, *followers)] == ["v1"] * 4
    assert call.calls == 1


def test_a_read_after_the_flight_landed_asks_again() -> None:
    reads: SharedReads[str] = SharedReads()
    answers = iter(["v1", "v2"])
    assert reads.read("k", lambda: next(answers)) == "v1"
    assert reads.read("k", lambda: next(answers)) == "v2"  # nothing is cached once the read is over


def test_different_keys_do_not_share() -> None:
    reads: SharedReads[str] = SharedReads()
    held = _HeldCall(lambda: "a")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(reads.read, "a", held)
        assert held.started.wait(5)
        assert reads.read("b", lambda: "b") == "b"  # not held behind "a"
        held.release.set()
        assert first.result(5) == "a"


def test_a_failed_read_fails_every_reader_of_that_flight_and_the_next_read_tries_again() -> None:
    reads: SharedReads[str] = SharedReads()

    def failing() -> str:
        call.started.set()
        assert call.release.wait(5)
        raise AwsFailure("GetAlias throttled")

    call = _HeldCall(lambda: "unused")
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(reads.read, "k", failing)
        assert call.started.wait(5)
        follower = pool.submit(reads.read, "k", failing)
        time.sleep(0.05)
        call.release.set()
        for future in (first, follower):
            with pytest.raises(AwsFailure, match="throttled"):
                future.result(5)
    assert reads.read("k", lambda: "back") == "back"


def test_a_burst_of_status_commands_reads_each_alias_once_while_it_is_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = make_world()
    world.start()
    real = world.traffic.get_alias
    release, started = threading.Event(), threading.Event()
    calls: list[tuple[str, str]] = []

    def held_get_alias(function: str, alias: str) -> AliasState:
        calls.append((function, alias))
        started.set()
        assert release.wait(5)
        return real(function, alias)

    monkeypatch.setattr(world.traffic, "get_alias", held_get_alias)
    queries = world.service.queries
    with ThreadPoolExecutor(8) as pool:
        statuses = [pool.submit(queries.status) for _ in range(8)]
        assert started.wait(5)
        time.sleep(0.05)  # every command is waiting on the one read
        release.set()
        answers = [s.result(5) for s in statuses]

    assert len(calls) == 1
    for entries in answers:
        [entry] = entries
        assert entry.alias is not None and entry.alias.weights == {"2": 0.05}
    assert [e.alias for e in queries.status()] == [answers[0][0].alias]  # a later status reads again
    assert len(calls) == 2
