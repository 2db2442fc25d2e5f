"""The store's invariants hold when Slack workers, the scheduler and the alarm poller write at once.

Threads start together at a barrier; with the file store each thread has its own connection, so SQLite
itself (not a Python lock) decides the winner, exactly as between two processes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from bot.model import State
from bot.ports import LiveDeploymentExists, StaleDeployment
from bot.store import SCHEMA_VERSION, SqliteStore
from tests.support.store import STORE_KINDS, T0, make_audit, make_deployment, store_of_kind

RACERS = 10
_Result = TypeVar("_Result")


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteStore]:
    with store_of_kind(request.param, tmp_path) as opened:
        yield opened  # type: ignore[misc]


def race(attempt: Callable[[int], _Result], racers: int = RACERS) -> list[_Result | BaseException]:
    """Run attempt(i) on `racers` threads released together; return each one's result or exception."""
    start = threading.Barrier(racers)
    outcomes: dict[int, _Result | BaseException] = {}

    def run(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = attempt(i)
        except BaseException as exc:  # collected and asserted on by the test
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == list(range(racers)), "a racer is stuck"
    return [outcomes[i] for i in range(racers)]


def kinds(outcomes: Sequence[object]) -> Counter[str]:
    return Counter(type(outcome).__name__ for outcome in outcomes)


def test_only_one_of_many_racing_creates_goes_live(store: SqliteStore) -> None:
    outcomes = race(lambda i: store.create(make_deployment(f"dep-{i}")))

    assert kinds(outcomes) == {"Deployment": 1, "LiveDeploymentExists": RACERS - 1}
    [winner] = [o for o in outcomes if not isinstance(o, BaseException)]
    live = store.live_for("checkout", "live")
    assert live is not None and live.id == winner.id
    assert [d.id for d in store.history("checkout")] == [winner.id]
    assert all(winner.id in str(o) for o in outcomes if isinstance(o, LiveDeploymentExists))


def test_only_one_of_many_racing_saves_of_the_same_revision_wins(store: SqliteStore) -> None:
    read_by_all = store.create(make_deployment())

    outcomes = race(lambda i: store.save(read_by_all.model_copy(update={"breach_streak": i + 1})))

    assert kinds(outcomes) == {"Deployment": 1, "StaleDeployment": RACERS - 1}
    [winner] = [o for o in outcomes if not isinstance(o, BaseException)]
    assert all(isinstance(o, StaleDeployment) for o in outcomes if o is not winner)
    assert store.get(read_by_all.id) == winner
    assert winner.revision == 1


def test_only_one_of_many_racing_claims_of_a_key_succeeds(store: SqliteStore) -> None:
    outcomes = race(lambda i: store.claim("slack:action:Ev123", T0))

    assert kinds(outcomes) == {"bool": RACERS}
    assert outcomes.count(True) == 1


def test_racing_deployments_on_different_aliases_all_go_live(store: SqliteStore) -> None:
    outcomes = race(lambda i: store.create(make_deployment(f"dep-{i}", alias=f"alias-{i}")))

    assert kinds(outcomes) == {"Deployment": RACERS}
    assert len(store.list_live()) == RACERS


def test_concurrent_audit_appends_are_all_kept_in_each_writers_order(store: SqliteStore) -> None:
    per_thread = 20

    def append_many(i: int) -> None:
        for n in range(per_thread):
            store.append_audit(make_audit(action="tick", actor=f"worker-{i}", detail={"n": n}))

    outcomes = race(append_many)

    assert kinds(outcomes) == {"NoneType": RACERS}  # no racer raised (e.g. "database is locked")
    records = store.audit_for("dep-1")
    assert len(records) == RACERS * per_thread
    for i in range(RACERS):
        assert [r.detail["n"] for r in records if r.actor == f"worker-{i}"] == list(range(per_thread))


def test_two_stores_on_one_file_behave_like_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with SqliteStore(path) as serve, SqliteStore(path) as cli:
        stores = (serve, cli)

        outcomes = race(lambda i: stores[i % 2].create(make_deployment(f"dep-{i}")))

        assert kinds(outcomes) == {"Deployment": 1, "LiveDeploymentExists": RACERS - 1}
        [winner] = [o for o in outcomes if not isinstance(o, BaseException)]
        ended = cli.save(winner.model_copy(update={"state": State.ROLLED_BACK}))
        assert serve.get(winner.id) == ended
        assert serve.live_for("checkout", "live") is None


def test_many_stores_opening_one_fresh_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"

    outcomes = race(lambda i: SqliteStore(path))

    opened = [o for o in outcomes if isinstance(o, SqliteStore)]
    try:
        assert kinds(outcomes) == {"SqliteStore": RACERS}
        assert {store.schema_version for store in opened} == {SCHEMA_VERSION}
        opened[0].create(make_deployment())
        assert opened[-1].get("dep-1") is not None
    finally:
        for store in opened:
            store.close()
