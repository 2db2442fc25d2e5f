"""The watch after a promotion, simulated a period at a time: 24 simulated hours in 288 quick steps.

TrafficSim runs the soak a minute at a time; a day of that is slow for a unit test, so once the canary is
promoted `PeriodSim` records each 5-minute period as one sample per version (the same traffic models as the
TrafficSim it wraps, split at the alias's CURRENT weights) and runs the loop once per period, or every few
periods. FakeMetrics aggregates per period, so the figures fetched are those of the minute-by-minute world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.actors import Actor
from bot.model import Deployment
from tests.support.traffic_sim import SoakWorld, soak_world
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
        minutes = int(self.period / timedelta(minutes=1))
        for n in range(1, periods + 1):
            self.sw.sim.record(minutes)
            self.sw.world.clock.advance(self.period)
            if tick and n % tick_every == 0:
                self.sw.sim.loop()

    def hours(self, hours: float, *, tick_every: int = 1) -> None:
        self.run(round(hours * PERIODS_PER_HOUR), tick_every=tick_every)


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
