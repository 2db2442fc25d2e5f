"""The 24 h watch after a promotion, end to end: simulated traffic, the soak loop, what it says and stores."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.actors import cli_actor
from bot.comms import post_mortem
from bot.composition import promotion_watch, soak_runner
from bot.events import PostMortem, WatchAlert, WatchCheckIn
from bot.model import State
from bot.ports import AwsFailure
from bot.verbs import StartArgs
from bot.views import post_mortem_blocks
from bot.watch import CLOSE_LATE_BY
from tests.support.block_kit import text_of
from tests.support.traffic_sim import HEALTHY
from tests.support.watch_sim import PERIODS_PER_HOUR, Promoted, promoted_world
from tests.support.world import ALIAS, FN

HOUR = timedelta(hours=1)


def post_mortems(p: Promoted) -> list[PostMortem]:
    return p.sw.sim.events(PostMortem)


def routing_writes(p: Promoted) -> int:
    return len(p.sw.world.traffic.routing_writes)


# ---------------------------------------------------------------- a clean day
def test_promotion_starts_a_watch_of_the_policys_length() -> None:
    p = promoted_world()

    d = p.deployment()
    assert d.state is State.PROMOTED
    assert d.watch_until == p.promoted_at + timedelta(hours=24)
    assert p.sw.world.store.list_watching(p.promoted_at) == [d]


def test_clean_watch_checks_in_every_6_hours_then_posts_the_post_mortem_at_24_hours() -> None:
    p = promoted_world()
    # v2's error rate differs between the two halves of the day: the post-mortem weighs them by invocations.
    p.sw.sim.behave("2", error_rate=0.0004)
    p.periods.hours(12, tick_every=3)
    p.sw.sim.behave("2", error_rate=0.0001, p95_ms=55.0, cache_hit_rate=0.9)
    p.periods.hours(12, tick_every=3)

    check_ins = p.sw.sim.events(WatchCheckIn)
    assert [(c.number, c.total) for c in check_ins] == [(1, 3), (2, 3), (3, 3)]
    assert [c.at - p.promoted_at for c in check_ins] == [HOUR * 6, HOUR * 12, HOUR * 18]
    assert [len(c.figures) for c in check_ins] == [
        6 * PERIODS_PER_HOUR,
        12 * PERIODS_PER_HOUR,
        18 * PERIODS_PER_HOUR,
    ]
    [pm] = post_mortems(p)
    assert pm.at == p.promoted_at + HOUR * 24
    assert pm.alias is not None and (pm.alias.version, pm.alias.weights) == ("2", {})
    assert len(pm.watch_figures) == 24 * PERIODS_PER_HOUR and len(pm.soak_figures) == PERIODS_PER_HOUR
    # The figures are the simulated traffic's: all of v2's 2,000 calls a minute, half the day at each rate.
    invocations = sum(f.canary.invocations for f in pm.watch_figures)
    assert invocations == pytest.approx(2000 * 60 * 24)
    errors = sum(f.canary.errors for f in pm.watch_figures)
    assert errors / invocations == pytest.approx((0.0004 + 0.0001) / 2)
    assert max(f.canary.p95_ms or 0 for f in pm.watch_figures) == 55.0
    assert all(f.stable.invocations == 0 for f in pm.watch_figures)


def test_post_mortem_text_carries_the_real_figures_and_the_verified_migration() -> None:
    p = promoted_world()
    p.sw.sim.behave("2", error_rate=0.0004)
    p.periods.hours(12, tick_every=6)
    p.sw.sim.behave("2", error_rate=0.0001, p95_ms=55.0, cache_hit_rate=0.9)
    p.periods.hours(12, tick_every=6)

    [pm] = post_mortems(p)
    text = text_of(post_mortem_blocks(pm, policy=p.sw.world.service.policy_for(FN), now=pm.at))
    assert "✅ Full migration verified: production routes 100% v2, no additional weights" in text
    assert "**Duration**: 1 hour canary + 24 hour monitoring" in text
    assert "- Error Rate: 0.025% (within target < 0.1%)" in text
    assert "- Cache Hit Rate: 92% (within target > 80%)" in text  # (94% + 90%) / 2
    assert "- P95 Latency: 55ms (within target < 100ms)" in text  # the worst period, not an average
    assert "- Invocations: 2,880,000 on v2 over 288 periods" in text
    assert "- During the canary: error rate 0.02%, cache hit rate 94%, p95 42ms" in text
    assert "## Issues Encountered\n- None" in text


def test_the_watch_records_its_end_and_then_falls_silent() -> None:
    p = promoted_world()
    p.periods.hours(24, tick_every=12)
    said = len(p.sw.world.notifier.events)
    calls = p.sw.metrics.calls

    p.periods.hours(6, tick_every=12)

    assert len(p.sw.world.notifier.events) == said
    assert p.sw.metrics.calls == calls
    [ended] = [r for r in p.sw.world.store.audit_for(p.deployment_id) if r.action == "watch_ended"]
    assert ended.reason == "Full migration verified: production routes 100% v2, no additional weights"
    assert ended.alias_after is not None and ended.alias_after["version"] == "2"


def test_soak_and_watch_figures_are_both_stored_and_told_apart_by_time() -> None:
    p = promoted_world()
    p.periods.hours(24, tick_every=12)

    stored = p.sw.world.store.figures_for(p.deployment_id)
    soak = [f for f in stored if f.end <= p.promoted_at]
    watch = [f for f in stored if f.start >= p.promoted_at]
    assert len(soak) == PERIODS_PER_HOUR and len(watch) == 24 * PERIODS_PER_HOUR
    assert len(stored) == len(soak) + len(watch)
    assert all(f.canary.invocations == pytest.approx(100 * 5) for f in soak)  # 5% of 2,000 a minute
    assert all(f.canary.invocations == pytest.approx(2000 * 5) for f in watch)


# ---------------------------------------------------------------- trouble during the watch
def test_a_breach_during_the_watch_alerts_once_and_changes_no_traffic() -> None:
    p = promoted_world()
    writes = routing_writes(p)
    p.periods.hours(3)
    p.sw.sim.behave("2", p95_ms=180.0)

    # An hour of breaching periods ticked every minute, longer than a tick's look back: one alert.
    p.sw.sim.run(60)
    assert p.sw.world.alias() == ("2", {})
    p.sw.sim.behave("2", p95_ms=42.0)
    p.periods.hours(20)

    [alert] = p.sw.sim.events(WatchAlert)
    assert alert.reason == "p95 180 ms > 100 ms for 2 periods"
    assert alert.at == p.promoted_at + HOUR * 3 + timedelta(minutes=10)
    assert alert.approvers == ("S0SREONCALL",)
    assert alert.alias is not None and alert.alias.version == "2"
    assert routing_writes(p) == writes
    assert p.sw.world.alias() == ("2", {})
    assert p.deployment().state is State.PROMOTED
    [pm] = post_mortems(p)
    assert pm.alias is not None and pm.alias.version == "2"
    assert max(f.canary.p95_ms or 0 for f in pm.watch_figures) == 180.0


def test_a_new_breach_after_recovery_alerts_again() -> None:
    p = promoted_world()
    for _ in range(2):
        p.sw.sim.behave("2", error_rate=0.02)
        p.periods.run(3)
        p.sw.sim.behave("2", error_rate=HEALTHY.error_rate)
        p.periods.run(3)

    alerts = p.sw.sim.events(WatchAlert)
    assert [a.reason for a in alerts] == ["error rate 2% > 0.1% for 2 periods"] * 2


def test_an_isolated_failing_period_is_not_alerted_but_is_in_the_post_mortem() -> None:
    p = promoted_world()
    p.periods.hours(2)
    p.sw.sim.behave("2", error_rate=0.02)
    p.periods.run(1)
    p.sw.sim.behave("2", error_rate=HEALTHY.error_rate)
    p.periods.hours(22, tick_every=4)

    assert p.sw.sim.events(WatchAlert) == []
    [pm] = post_mortems(p)
    text = post_mortem(
        p.deployment(),
        soak_figures=pm.soak_figures,
        watch_figures=pm.watch_figures,
        alias=pm.alias,
        now=pm.at,
    )
    assert "- Watch 2026-11-28 17:00–17:05 UTC: error rate 2% > 0.1% (isolated period)" in text


def test_an_alias_changed_during_the_watch_is_reported_in_the_post_mortem() -> None:
    p = promoted_world()
    p.periods.hours(10, tick_every=6)
    p.sw.world.traffic.force_change(FN, ALIAS, "1", {})  # someone went back by hand
    writes = routing_writes(p)
    p.periods.hours(14, tick_every=6)

    [pm] = post_mortems(p)
    assert pm.alias is not None and (pm.alias.version, pm.alias.weights) == ("1", {})
    assert routing_writes(p) == writes
    [ended] = [r for r in p.sw.world.store.audit_for(p.deployment_id) if r.action == "watch_ended"]
    assert ended.reason == (
        "production now routes 100% v1, not 100% v2: the alias was changed after the promotion"
    )
    # v2 took no traffic after the change: the watch's figures say so.
    assert sum(f.canary.invocations for f in pm.watch_figures) == pytest.approx(2000 * 60 * 10)


def test_no_watch_when_the_policy_says_zero() -> None:
    p = promoted_world(watch_after_promote="0s")
    calls = p.sw.metrics.calls

    p.periods.hours(25, tick_every=6)

    assert p.deployment().watch_until is None
    assert p.sw.metrics.calls == calls
    assert p.sw.sim.events(WatchCheckIn) == [] and post_mortems(p) == []


def test_a_short_watch_has_no_check_in_only_the_post_mortem() -> None:
    p = promoted_world(watch_after_promote="2h")
    p.periods.hours(3)

    assert p.sw.sim.events(WatchCheckIn) == []
    [pm] = post_mortems(p)
    assert pm.at == p.promoted_at + HOUR * 2 and len(pm.watch_figures) == 2 * PERIODS_PER_HOUR


# ---------------------------------------------------------------- once, whatever happens
def test_one_metrics_round_per_tick_with_a_live_canary_and_a_watched_promotion() -> None:
    p = promoted_world()
    p.sw.world.traffic.add_function("orders-api", versions=["1", "2"])
    p.sw.world.traffic.add_alias("orders-api", ALIAS, "1")
    world = p.sw.world
    policy = world.service.lookup.policy
    world.service.lookup.policy = policy.model_copy(
        update={"functions": {**policy.functions, "orders-api": {"alias": ALIAS}}}
    )
    maria = cli_actor("maria")
    orders = world.service.plan(StartArgs(function="orders-api", version="2"), maria).deployment.id
    world.service.confirm(orders, maria)
    before = p.sw.metrics.calls

    p.periods.run(12)

    assert p.sw.metrics.calls - before == 12
    rounds = p.sw.metrics.requests[before:]
    assert all({r.deployment_id for r in requests} == {p.deployment_id, orders} for requests in rounds)
    watched = next(r for r in rounds[-1] if r.deployment_id == p.deployment_id)
    assert (watched.canary_version, watched.stable_version) == ("2", "1")


def test_a_restarted_or_second_runner_posts_no_second_post_mortem_or_check_in() -> None:
    p = promoted_world()
    p.periods.hours(24, tick_every=12)
    [pm] = post_mortems(p)
    assert len(p.sw.sim.events(WatchCheckIn)) == 3

    for _ in range(2):  # a restart, then a second replica, at the same moment and later
        again = soak_runner(p.sw.world.service, p.sw.metrics, chart=lambda *_: None)
        again.tick()
        again.report()
        again.tick(p.sw.world.clock.now() + HOUR)

    assert post_mortems(p) == [pm]
    assert len(p.sw.sim.events(WatchCheckIn)) == 3


def test_metrics_down_at_the_end_delays_the_post_mortem_to_the_next_tick() -> None:
    p = promoted_world()
    p.periods.run(24 * PERIODS_PER_HOUR - 1, tick_every=12)
    p.sw.metrics.fail_next(AwsFailure("throttled"))
    p.periods.run(1)
    assert post_mortems(p) == []
    assert all(o.error == "throttled" for o in p.sw.sim.outcomes[-1:])

    p.periods.run(1)

    [pm] = post_mortems(p)
    assert len(pm.watch_figures) == 24 * PERIODS_PER_HOUR


def test_after_downtime_across_the_end_only_the_latest_check_in_then_the_post_mortem() -> None:
    p = promoted_world()
    p.periods.hours(5)
    p.periods.run(15 * PERIODS_PER_HOUR, tick=False)  # the bot is down from 20:00 to 11:00 next day
    p.periods.hours(1)
    assert [c.number for c in p.sw.sim.events(WatchCheckIn)] == [3]

    p.periods.run(5 * PERIODS_PER_HOUR, tick=False)  # down again across the end of the watch
    p.periods.run(1)

    [pm] = post_mortems(p)
    assert pm.at == p.sw.world.clock.now() > p.promoted_at + HOUR * 24
    assert len(pm.watch_figures) == 24 * PERIODS_PER_HOUR  # re-read whole: no gap from the downtime


def test_a_watch_over_for_longer_than_the_late_limit_is_left_alone() -> None:
    p = promoted_world()
    p.periods.hours(1)
    late = p.promoted_at + timedelta(hours=24) + CLOSE_LATE_BY + timedelta(minutes=1)

    ticks, _ = promotion_watch(p.sw.world.service).plan(late)

    assert ticks == []
