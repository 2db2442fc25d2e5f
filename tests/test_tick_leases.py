"""Replicas share the soak loop: two SoakRunners on one store (SQLite, and DynamoDB in moto), in one process.

Each deployment is ticked and reported by the replica holding its tick lease ("tick:<id>"); the other skips it.
When the holder stops ticking, the other takes over once the lease has run out (at once after a clean stop),
and a holder that stalled past its lease records no decision (the lease fences it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest
from moto import mock_aws

import tests.support.world as world_module
from bot.aws.clients import aws_client
from bot.composition import soak_runner
from bot.events import PostMortem, SoakReport, TrafficChanged, WatchCheckIn
from bot.model import PeriodFigures, State
from bot.ports import MetricsPort, WindowRequest
from bot.soak import SoakRunner
from bot.store import DynamoStore
from bot.store.dynamodb import create_table
from bot.tick_lease import LeaseLost, TickLeases, tick_lease_name
from tests.support.store import atomic_moto_dynamodb
from tests.support.traffic_sim import MINUTE, SoakWorld, soak_world
from tests.support.watch_sim import promoted_world

TTL = timedelta(minutes=3)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """make_world() on an in-memory SQLite store, or on a DynamoDB table in moto."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    with mock_aws(), atomic_moto_dynamodb():
        client = aws_client("dynamodb", region="us-east-1")
        create_table(client, "tick-leases")
        monkeypatch.setattr(world_module, "open_store", lambda *_a, **_k: DynamoStore(client, "tick-leases"))
        yield "dynamodb"


class Replicas:
    """Two replicas' soak loops on one store (the same fake AWS, clock and notifier: what they share)."""

    def __init__(self, sw: SoakWorld, metrics: MetricsPort | None = None, ttl: timedelta = TTL) -> None:
        self.sw = sw
        self.ttl = ttl
        self.a = self._runner("replica-a", metrics)
        self.b = self._runner("replica-b", metrics)
        sw.runner = sw.sim.runner = self.a  # the sim's minute ticks replica a
        self.store = sw.world.store

    def _runner(self, owner: str, metrics: MetricsPort | None) -> SoakRunner:
        world = self.sw.world
        leases = TickLeases(world.store, world.clock, ttl=self.ttl, owner=owner)
        return soak_runner(world.service, metrics or self.sw.metrics, chart=lambda *_: None, leases=leases)

    def minute(self, *runners: SoakRunner) -> dict[str, set[str]]:
        """One minute of traffic; then each of `runners` ticks and reports. Returns owner -> ticked ids."""
        self.sw.sim.minute(tick=False)
        ticked: dict[str, set[str]] = {}
        for runner in runners:
            ticked[runner.leases.owner] = {o.deployment_id for o in runner.tick()}
            runner.report()
        return ticked

    def reports(self) -> list[int]:
        return [r.number for r in self.sw.sim.events(SoakReport)]


def test_of_two_replicas_only_the_lease_holder_ticks_and_reports_a_deployment(store_kind: str) -> None:
    r = Replicas(soak_world())
    did = r.sw.world.start()

    seen = [r.minute(r.a, r.b) for _ in range(31)]

    assert all(ticked["replica-a"] == {did} and ticked["replica-b"] == set() for ticked in seen)
    assert r.reports() == [1, 2]  # every 15 min, each once
    assert r.b.leases.held() == [] and r.a.leases.held() == [did]


def test_when_the_holder_stops_ticking_the_other_replica_takes_over_once_its_lease_runs_out(
    store_kind: str,
) -> None:
    r = Replicas(soak_world())
    did = r.sw.world.start()
    for _ in range(14):
        r.minute(r.a, r.b)
    assert r.reports() == []

    # Replica a dies (kill -9: nothing released) just before report 1 falls due at 14:15.
    waited = 0
    while did not in r.minute(r.b)["replica-b"]:
        waited += 1
        assert waited < 10, "replica b never took over"

    assert waited == TTL // MINUTE - 1  # skipped while a's lease ran, ticked at the first tick after it
    assert r.reports() == [1]  # posted by b
    for _ in range(15):
        r.minute(r.b)
    assert r.reports() == [1, 2]  # b goes on reporting, each once


def test_a_replica_that_stops_cleanly_hands_its_deployments_over_at_once(store_kind: str) -> None:
    r = Replicas(soak_world())
    did = r.sw.world.start()
    r.minute(r.a, r.b)
    assert r.b.leases.held() == []

    r.a.leases.release_all()  # what SoakScheduler.shutdown does

    assert did in r.minute(r.b)["replica-b"]
    assert r.a.tick() == []  # and now b holds it


class _StallingMetrics:
    """The metrics round of the first replica to fetch stalls; meanwhile its lease runs out and the other
    replica takes the deployment (as after a long GC pause or a suspended VM)."""

    def __init__(self, r: Replicas, inner: MetricsPort) -> None:
        self.r, self.inner, self.stalled = r, inner, False

    def fetch(self, requests: Sequence[WindowRequest]) -> dict[str, list[PeriodFigures]]:
        if not self.stalled:
            self.stalled = True
            self.r.sw.world.clock.advance(TTL + timedelta(seconds=1))
            for request in requests:
                assert self.r.b.leases.take(request.deployment_id)
        return self.inner.fetch(requests)


def test_a_stalled_holder_whose_lease_was_taken_over_records_no_decision(store_kind: str) -> None:
    sw = soak_world()
    r = Replicas(sw)
    stalling = _StallingMetrics(r, sw.metrics)
    r.a.metrics = stalling
    did = sw.world.start()
    sw.sim.behave("2", error_rate=0.05)
    stalling.stalled = True  # healthy ticks until the breach is due to roll back
    for _ in range(9):
        r.minute(r.a)
    before = sw.deployment(did)
    stalling.stalled = False

    r.sw.sim.minute(tick=False)
    [outcome] = r.a.tick()

    assert outcome.error is not None and "held by another replica" in outcome.error
    after = sw.deployment(did)
    assert after.state is State.CANARY and after.revision == before.revision  # nothing recorded
    assert sw.world.alias() == ("1", {"2": 0.05})
    assert not sw.sim.events(TrafficChanged)
    # The replica holding the lease now judges it, and rolls back.
    r.b.tick()
    assert sw.deployment(did).state is State.ROLLED_BACK
    assert [e.action for e in sw.sim.events(TrafficChanged)] == ["rolled_back"]


def test_the_fence_raises_once_another_replica_holds_the_lease(store_kind: str) -> None:
    sw = soak_world()
    did = sw.world.start()
    store, clock = sw.world.store, sw.world.clock
    a = TickLeases(store, clock, ttl=TTL, owner="a")
    b = TickLeases(store, clock, ttl=TTL, owner="b")
    assert a.take(did) and not b.take(did)
    a.fence(did)  # still a's

    sw.world.clock.advance(TTL + timedelta(seconds=1))
    assert b.take(did)

    with pytest.raises(LeaseLost):
        a.fence(did)
    assert not a.take(did)
    assert store.holds_lease(tick_lease_name(did), "b", 2, clock.now())


def test_a_watched_promotion_is_followed_by_one_replica() -> None:
    # SQLite only: the lease logic is the soak's (checked on both stores above); a 24 h watch is slow on moto.
    p = promoted_world()
    r = Replicas(p.sw, ttl=timedelta(hours=2))
    checked_in = len(p.sw.sim.events(WatchCheckIn))

    for _ in range(25):  # hourly ticks of both replicas through the 24 h watch
        p.sw.world.clock.advance(timedelta(hours=1))
        assert {o.deployment_id for o in r.a.tick()} <= {p.deployment_id}
        assert r.b.tick() == []
        r.b.report()
        r.a.report()

    assert len(p.sw.sim.events(WatchCheckIn)) - checked_in == 3
    # The watch is closed: its lease was let go at the next tick.
    assert r.a.leases.held() == [] and r.b.leases.held() == []
    assert r.b.leases.take(p.deployment_id)
    assert len(p.sw.sim.events(PostMortem)) == 1
