"""The start preview reads the stable version's recent traffic through the metrics port."""

from __future__ import annotations

from datetime import timedelta

from bot.actors import cli_actor
from bot.cli import render_plan
from bot.verbs import StartArgs
from canary_demo.fakes.metrics import FakeMetrics
from commands.start import RECENT, stable_per_minute
from tests.support.world import ALIAS, FN, make_world, policy_with


def test_stable_invocations_a_minute_come_from_the_last_hours_complete_periods() -> None:
    world = make_world(policy_with(judge="sequential"))
    metrics = FakeMetrics()
    now = world.clock.now()
    for minute in range(1, 61):
        metrics.record(FN, ALIAS, "1", now - timedelta(minutes=minute), invocations=3800)
    metrics.record(FN, ALIAS, "1", now - RECENT - timedelta(minutes=1), invocations=10**6)  # too old
    plan = world.service.plan(StartArgs(function=FN, version="2"), cli_actor("maria"))

    assert stable_per_minute(metrics, plan, now) == 3800
    [request] = metrics.requests[-1]
    assert (request.canary_version, request.stable_version) == ("1", "1")


def test_no_estimate_without_a_metrics_port_or_under_the_threshold_judge() -> None:
    world = make_world(policy_with(judge="threshold"))
    plan = world.service.plan(StartArgs(function=FN, version="2"), cli_actor("maria"))
    metrics = FakeMetrics()

    assert stable_per_minute(None, plan, world.clock.now()) is None
    assert stable_per_minute(metrics, plan, world.clock.now()) is None
    assert metrics.calls == 0


def test_a_failing_metrics_fetch_leaves_the_estimate_unknown() -> None:
    world = make_world(policy_with(judge="sequential"))
    plan = world.service.plan(StartArgs(function=FN, version="2"), cli_actor("maria"))
    metrics = FakeMetrics()
    metrics.fail_next(RuntimeError("throttled"))

    assert stable_per_minute(metrics, plan, world.clock.now()) is None


def test_the_cli_plan_states_the_rule_of_the_policys_judge() -> None:
    for judge, expected in (
        ("sequential", "Rollback  automatic as soon as error rate > 0.1%, cache hit < 80% is shown with 95%"),
        ("threshold", "Rollback  rollback if error rate > 0.1%, p95 > 100 ms"),
    ):
        world = make_world(policy_with(judge=judge))
        plan = world.service.plan(StartArgs(function=FN, version="2"), cli_actor("maria"))
        assert expected in render_plan(plan), judge
