"""The soak loop driven by simulated production traffic, one minute at a time.

The traffic is canary_demo.simulator's shared model in `Steady` mode (exact figures, so tests can count on
them): each minute splits a fixed number of invocations between the versions at the alias's CURRENT weights
(read from the fake Lambda, so a rollback or a step shows up in the traffic at once) and records what each
version did in FakeMetrics; then TrafficSim moves the ManualClock on a minute and runs the soak loop (tick,
then reports) as the scheduler would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from canary_demo.simulator import HEALTHY, Behaviour, TrafficModel, metrics_models
from tests.support.world import ALIAS, FN, World, make_world, policy_with

__all__ = ["HEALTHY", "Behaviour", "SoakWorld", "TrafficSim", "soak_world"]

MINUTE = timedelta(minutes=1)
E = TypeVar("E")


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
        self.targets: dict[str, TrafficModel] = metrics_models(
            traffic, metrics, targets, per_minute=per_minute
        )
        self.outcomes: list[TickOutcome] = []
        self.ticks = 0

    # ------------------------------------------------------------ arrange
    def behave(self, version: str, *, function: str = FN, **changes: Any) -> None:
        """Change how `version` behaves from the next minute on (e.g. error_rate=0.025)."""
        self.targets[function].behave(version, **changes)

    def set_volume(self, per_minute: float, *, function: str = FN) -> None:
        self.targets[function].per_minute = per_minute

    # ------------------------------------------------------------ act
    def record(self, minutes: int = 1) -> None:
        """Record `minutes` of traffic at the clock's time, as one sample per version (the clock stays)."""
        at = self.clock.now()
        for model in self.targets.values():
            model.minute(at, minutes)

    def loop(self) -> list[TickOutcome]:
        """Run the soak loop once, as the scheduler would: tick, then reports."""
        outcomes = self.runner.tick()
        self.runner.report()
        self.ticks += 1
        self.outcomes.extend(outcomes)
        return outcomes

    def minute(self, *, tick: bool = True) -> list[TickOutcome]:
        """Record one minute of traffic, move the clock to its end, then run the loop (unless down)."""
        self.record()
        self.clock.advance(MINUTE)
        return self.loop() if tick else []

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
