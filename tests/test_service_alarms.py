"""The service and CloudWatch alarms: created at start, deleted at the end, and the start guard."""

from __future__ import annotations

import pytest

from bot.actors import NotAuthorized
from bot.service import AlarmsFiring
from bot.verbs import StartArgs
from canary_demo.fakes.alarms import FakeAlarms
from tests.support.world import FN, make_world, policy_with, slack_user

TOPIC = "arn:aws:sns:us-east-1:123456789012:canary-bot-alarms"


def test_starting_creates_the_canary_alarms_and_dashboard_and_ending_deletes_the_alarms() -> None:
    alarms = FakeAlarms("us-east-1")
    world = make_world(alarms=alarms, alarm_topic_arn=TOPIC)
    world.start()
    names = sorted(alarms.alarms)
    assert names == [
        "canary-bot/production-lego-api/production/v2/cache-hit-rate",
        "canary-bot/production-lego-api/production/v2/error-rate",
        "canary-bot/production-lego-api/production/v2/p95",
    ]
    assert all(alarms.alarms[name].definition["AlarmActions"] == [TOPIC] for name in names)
    # The cache alarm's metric comes from two metric filters on the policy's log group, made with the canary.
    assert sorted(alarms.metric_filters) == [
        ("/aws/lambda/production-lego-api", "canary-bot/production-lego-api/production/cache-hit"),
        ("/aws/lambda/production-lego-api", "canary-bot/production-lego-api/production/cache-miss"),
    ]
    assert len(alarms.dashboards) == 1
    world.service.rollback(FN, None, slack_user("UAPPROVER1"), reason="done")
    assert alarms.alarms == {}
    assert alarms.metric_filters == {}
    assert len(alarms.dashboards) == 1  # kept for the post-deployment review


def test_without_a_log_group_in_the_policy_there_is_no_cache_alarm_nor_metric_filter() -> None:
    alarms = FakeAlarms("us-east-1")
    world = make_world(policy_with(log_group=None), alarms=alarms, alarm_topic_arn=TOPIC)
    world.start()
    assert sorted(name.rsplit("/", 1)[1] for name in alarms.alarms) == ["error-rate", "p95"]
    assert alarms.metric_filters == {}


def test_start_is_refused_while_an_alarm_of_the_function_is_in_alarm_naming_it() -> None:
    alarms = FakeAlarms("us-east-1")
    alarms.add_alarm("lego-api-5xx", function=FN, state="ALARM")
    world = make_world(alarms=alarms)
    with pytest.raises(AlarmsFiring, match="lego-api-5xx"):
        world.service.plan(StartArgs(function=FN, version="2"), slack_user("USTARTER"))
    assert world.alias() == ("1", {})


def test_an_approver_may_override_the_alarm_guard_with_a_reason_which_is_audited() -> None:
    alarms = FakeAlarms("us-east-1")
    alarms.add_alarm("lego-api-5xx", function=FN, state="ALARM")
    world = make_world(alarms=alarms)
    plan = world.service.plan(
        StartArgs(function=FN, version="2", override_alarms="known flaky alarm, INC-42"),
        slack_user("UAPPROVER1"),
    )
    assert plan.alarms_overridden == ("lego-api-5xx",)
    record = world.store.audit_for(plan.deployment.id)[0]
    assert record.detail["override_alarms"] == "known flaky alarm, INC-42"


def test_a_non_approver_cannot_override_the_alarm_guard() -> None:
    alarms = FakeAlarms("us-east-1")
    alarms.add_alarm("lego-api-5xx", function=FN, state="ALARM")
    world = make_world(alarms=alarms)
    with pytest.raises(NotAuthorized):
        world.service.plan(
            StartArgs(function=FN, version="2", override_alarms="trust me"), slack_user("UOUTSIDER")
        )
    assert world.store.list_live() == []
