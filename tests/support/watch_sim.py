"""The watch after a promotion, simulated a period at a time: 24 simulated hours in 288 quick steps.

TrafficSim runs the soak a minute at a time; a day of that is slow for a unit test, so once the canary is
promoted `PeriodSim` records each 5-minute period as one sample per version (the same behaviours and volume
as the TrafficSim it wraps, split at the alias's CURRENT weights) and runs the loop once per period, or every
few periods. FakeMetrics aggregates per period, so the figures fetched are those of the minute-by-minute world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.actors import Actor
from bot.model import Deployment
from tests.support.traffic_sim import HEALTHY, SoakWorld, soak_world
from tests.support.world import ALIAS, FN, slack_user

PERIOD = timedelta(minutes=5)
PERIODS_PER_HOUR = 12
APPROVER: Actor = slack_user("UAPPROVER1", "joe")


class PeriodSim:
    def __init__(self, sw: SoakWorld, *, period: timedelta = PERIOD) -> None:
        self.sw = sw
        self.period = period

    def run(self, periods: int, *, tick_every: int = 1, tick: bool = True) -> None:
        """Record `periods` periods of traffic, running the loop after every `tick_every`-th one."""
        for n in range(1, periods + 1):
            self._record()
            self.sw.world.clock.advance(self.period)
            if tick and n % tick_every == 0:
                self.sw.sim.outcomes.extend(self.sw.runner.tick())
                self.sw.runner.report()
                self.sw.sim.ticks += 1

    def hours(self, hours: float, *, tick_every: int = 1) -> None:
        self.run(round(hours * PERIODS_PER_HOUR), tick_every=tick_every)

    def _record(self) -> None:
        at = self.sw.world.clock.now()
        scale = self.period / timedelta(minutes=1)
        for target in self.sw.sim.targets.values():
            alias = self.sw.world.traffic.get_alias(target.function, target.alias)
            shares = {alias.version: 1 - sum(alias.weights.values()), **alias.weights}
            for version, share in shares.items():
                invocations = target.per_minute * scale * share
                if invocations <= 0:
                    continue
                b = target.behaviours.get(version, HEALTHY)
                hits = round(invocations * b.cache_hit_rate)
                self.sw.metrics.record(
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
                    cache_misses=round(invocations) - hits,
                    cache_miss_latencies=(b.cache_miss_p95_ms,) if round(invocations) > hits else (),
                )


@dataclass
class Promoted:
    """A soak world whose canary (v1 → v2 on the seed function) soaked an hour and was promoted."""

    sw: SoakWorld
    deployment_id: str
    promoted_at: datetime
    periods: PeriodSim

    def deployment(self) -> Deployment:
        return self.sw.deployment(self.deployment_id)


def promoted_world(
    *, per_minute: float = 2000, before_start: Callable[[SoakWorld], None] | None = None, **policy: Any
) -> Promoted:
    """Start, soak a clean hour minute by minute (4 reports, approval wanted at 15:00), promote by a second
    person at 15:00: the watch starts then. `before_start` may swap in another notifier, for instance."""
    sw = soak_world(per_minute=per_minute, **policy)
    if before_start is not None:
        before_start(sw)
    did = sw.world.start()
    sw.sim.run(60)
    sw.world.service.promote(FN, ALIAS, APPROVER, deployment_id=did)
    return Promoted(sw=sw, deployment_id=did, promoted_at=sw.world.clock.now(), periods=PeriodSim(sw))
