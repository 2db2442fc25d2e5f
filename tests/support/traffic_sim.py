"""Simulated production traffic for soak tests (and, later, the demo): one minute at a time.

Each minute splits a fixed number of invocations between the versions at the alias's CURRENT weights (read
from the fake Lambda, so a rollback or a step shows up in the traffic at once), records what each version did
in FakeMetrics, moves the ManualClock on a minute and runs the soak loop (tick, then reports) as the scheduler
would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from bot.clock import ManualClock
from bot.composition import soak_runner
from bot.config import Policy
from bot.events import RecordingNotifier
from bot.model import Deployment, PeriodFigures, Thresholds
from bot.soak import SoakRunner, TickOutcome
from canary_demo.fakes.metrics import FakeMetrics
from canary_demo.fakes.traffic import FakeTraffic
from tests.support.world import ALIAS, FN, World, make_world, policy_with

MINUTE = timedelta(minutes=1)
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one version behaves each minute. Rates are fractions; latencies in ms."""

    error_rate: float = 0.0002
    p95_ms: float = 42.0
    p99_ms: float = 95.0
    cache_hit_rate: float = 0.94
    cache_miss_p95_ms: float = 120.0


HEALTHY = Behaviour()


@dataclass
class Target:
    function: str
    alias: str
    per_minute: float
    behaviours: dict[str, Behaviour]


class TrafficSim:
    def __init__(
        self,
        *,
        traffic: FakeTraffic,
        metrics: FakeMetrics,
        clock: ManualClock,
        runner: SoakRunner,
        notifier: RecordingNotifier,
        per_minute: float = 2000,
        targets: Sequence[tuple[str, str]] = ((FN, ALIAS),),
    ) -> None:
        self.traffic = traffic
        self.metrics = metrics
        self.clock = clock
        self.runner = runner
        self.notifier = notifier
        self.targets = {function: Target(function, alias, per_minute, {}) for function, alias in targets}
        self.outcomes: list[TickOutcome] = []
        self.ticks = 0

    # ------------------------------------------------------------ arrange
    def behave(self, version: str, *, function: str = FN, **changes: Any) -> None:
        """Change how `version` behaves from the next minute on (e.g. error_rate=0.025)."""
        behaviours = self.targets[function].behaviours
        behaviours[version] = replace(behaviours.get(version, HEALTHY), **changes)

    def set_volume(self, per_minute: float, *, function: str = FN) -> None:
        self.targets[function].per_minute = per_minute

    # ------------------------------------------------------------ act
    def minute(self, *, tick: bool = True) -> list[TickOutcome]:
        """Record one minute of traffic, move the clock to its end, then run the loop (unless down)."""
        for target in self.targets.values():
            self._record(target)
        self.clock.advance(MINUTE)
        if not tick:
            return []
        outcomes = self.runner.tick()
        self.runner.report()
        self.ticks += 1
        self.outcomes.extend(outcomes)
        return outcomes

    def run(self, minutes: int, *, tick: bool = True) -> None:
        for _ in range(minutes):
            self.minute(tick=tick)

    def run_until(self, done: Callable[[], bool], *, limit: int) -> int:
        """Run minutes until `done()`; returns how many it took. Fails after `limit` minutes."""
        for n in range(1, limit + 1):
            self.minute()
            if done():
                return n
        raise AssertionError(f"not done after {limit} simulated minutes")

    # ------------------------------------------------------------ inspect
    def events(self, kind: type[E]) -> list[E]:
        return [e for e in self.notifier.events if isinstance(e, kind)]

    # ------------------------------------------------------------ internals
    def _record(self, target: Target) -> None:
        alias = self.traffic.get_alias(target.function, target.alias)
        shares = {alias.version: 1 - sum(alias.weights.values()), **alias.weights}
        at = self.clock.now()
        for version, share in shares.items():
            invocations = target.per_minute * share
            if invocations <= 0:
                continue
            b = target.behaviours.get(version, HEALTHY)
            hits = round(invocations * b.cache_hit_rate)
            misses = round(invocations) - hits
            self.metrics.record(
                target.function,
                target.alias,
                version,
                at,
                invocations=invocations,
                errors=invocations * b.error_rate,
                p95=b.p95_ms,
                p99=b.p99_ms,
                p50=b.p95_ms / 2,
                cache_hits=hits,
                cache_misses=misses,
                cache_miss_latencies=(b.cache_miss_p95_ms,) if misses else (),
            )


# ---------------------------------------------------------------- a soak world
@dataclass
class SoakWorld:
    world: World
    metrics: FakeMetrics
    runner: SoakRunner
    sim: TrafficSim
    charts: list[int]  # how many figures each rendered chart was given

    def deployment(self, deployment_id: str) -> Deployment:
        found = self.world.store.get(deployment_id)
        assert found is not None
        return found


def soak_world(
    policy: Policy | None = None, *, per_minute: float = 2000, **policy_overrides: Any
) -> SoakWorld:
    """make_world with FakeMetrics, a SoakRunner (charts stubbed) and a TrafficSim on the seed function.

    Without a policy the soak is judged by the plain rule (`judge: threshold`): the loop's own scenarios
    (streaks, steps, alerts, reports) are pinned to it, and pass `judge="sequential"` for the default judge.
    """
    world = make_world(policy or policy_with(**{"judge": "threshold", **policy_overrides}))
    metrics = FakeMetrics()
    charts: list[int] = []

    def chart(d: Deployment, figures: list[PeriodFigures], thresholds: Thresholds) -> bytes:
        charts.append(len(figures))
        return b"\x89PNG stub"

    runner = soak_runner(world.service, metrics, chart=chart)
    sim = TrafficSim(
        traffic=world.traffic,
        metrics=metrics,
        clock=world.clock,
        runner=runner,
        notifier=world.notifier,
        per_minute=per_minute,
    )
    return SoakWorld(world=world, metrics=metrics, runner=runner, sim=sim, charts=charts)
