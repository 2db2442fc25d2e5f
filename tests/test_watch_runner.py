"""PromotionWatch mechanics: windows, check-in schedule, claims between replicas, failures."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.composition import promotion_watch
from bot.config import FunctionPolicy
from bot.events import AnyEvent, MessageRef, PostMortem
from bot.model import Deployment, State
from bot.watch import LOOKBACK, due_check_in, watch_window
from tests.support.canary_core import T0, in_state
from tests.support.watch_sim import PERIODS_PER_HOUR, promoted_world

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
POLICY = FunctionPolicy()  # 5-minute periods


def promoted(at: datetime = T0, watch: timedelta | None = timedelta(hours=24)) -> Deployment:
    return in_state(State.PROMOTED).model_copy(
        update={"ended_at": at, "watch_until": at + watch if watch is not None else None}
    )


# ---------------------------------------------------------------- check-ins
@pytest.mark.parametrize(
    ("watch", "after", "expected"),
    [
        (timedelta(hours=24), 6 * HOUR - MINUTE, None),
        (timedelta(hours=24), 6 * HOUR, (1, 3)),
        (timedelta(hours=24), 17 * HOUR, (2, 3)),
        (timedelta(hours=24), 24 * HOUR - MINUTE, (3, 3)),
        (timedelta(hours=24), 24 * HOUR, None),  # the post-mortem's turn
        (timedelta(hours=7), 6 * HOUR, (1, 1)),
        (timedelta(hours=6), 5 * HOUR, None),  # a 6 h watch ends with the post-mortem alone
        (None, 6 * HOUR, None),
    ],
)
def test_due_check_in(watch: timedelta | None, after: timedelta, expected: tuple[int, int] | None) -> None:
    assert due_check_in(promoted(watch=watch), T0 + after) == expected


# ---------------------------------------------------------------- windows
def test_while_watching_each_tick_reads_the_recent_complete_periods_again() -> None:
    request = watch_window(promoted(), POLICY, T0 + 3 * HOUR + 2 * MINUTE, closing=False)

    assert request is not None
    assert (request.start, request.end) == (T0 + 3 * HOUR - LOOKBACK, T0 + 3 * HOUR)
    assert (request.canary_version, request.stable_version) == ("42", "41")


def test_the_first_window_starts_at_the_period_holding_the_promotion() -> None:
    d = promoted(at=T0 + 2 * MINUTE)

    assert watch_window(d, POLICY, T0 + 4 * MINUTE, closing=False) is None  # nothing complete yet
    request = watch_window(d, POLICY, T0 + 6 * MINUTE, closing=False)
    assert request is not None and (request.start, request.end) == (T0, T0 + 5 * MINUTE)


def test_closing_reads_the_whole_watch_and_nothing_after_it() -> None:
    d = promoted(at=T0 + 2 * MINUTE)

    request = watch_window(d, POLICY, T0 + 30 * HOUR, closing=True)

    assert request is not None
    assert (request.start, request.end) == (T0, T0 + 24 * HOUR)


# ---------------------------------------------------------------- once, between replicas
def test_two_replicas_planning_the_end_at_once_close_it_once() -> None:
    p = promoted_world()
    p.periods.run(24 * PERIODS_PER_HOUR, tick=False)
    now = p.sw.world.clock.now()
    first, second = promotion_watch(p.sw.world.service), promotion_watch(p.sw.world.service)

    ticks, _ = first.plan(now)
    assert [t.closing for t in ticks] == [True]
    assert second.plan(now) == ([], [])

    first.follow(ticks[0], [], now)
    assert len(p.sw.sim.events(PostMortem)) == 1


def test_a_failed_round_releases_the_end_for_the_next_tick() -> None:
    p = promoted_world()
    p.periods.run(24 * PERIODS_PER_HOUR, tick=False)
    now = p.sw.world.clock.now()
    watch = promotion_watch(p.sw.world.service)
    ticks, _ = watch.plan(now)

    watch.abandon(ticks)

    again, _ = promotion_watch(p.sw.world.service).plan(now)
    assert [t.closing for t in again] == [True]


class BrokenSlack:
    def __init__(self) -> None:
        self.attempts = 0

    def publish(self, event: AnyEvent) -> MessageRef | None:
        self.attempts += 1
        raise ConnectionError("slack is down")


def test_a_slack_outage_at_the_end_still_ends_the_watch_once() -> None:
    p = promoted_world()
    broken = BrokenSlack()
    p.sw.world.announcer.notifier = broken
    p.periods.run(24 * PERIODS_PER_HOUR, tick_every=PERIODS_PER_HOUR)
    attempts = broken.attempts

    p.periods.hours(2)

    assert broken.attempts == attempts  # the post-mortem was tried once, and is not retried every tick
    actions = [r.action for r in p.sw.world.store.audit_for(p.deployment_id)]
    assert actions.count("watch_ended") == 1
    assert p.sw.sim.outcomes[-1].error is None
