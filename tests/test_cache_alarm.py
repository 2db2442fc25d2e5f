"""The cache hit rate alarm: two log metric filters on the seed's "Redis cache hit" / "Redis cache miss" lines,
made with the canary and removed after it, and a metric-math alarm hits / (hits + misses) < threshold.
One suite over the fake and CloudWatch + Logs (moto)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bot.aws.alarms import CloudWatchAlarms, dashboard_body
from bot.aws.cache_logs import CACHE_HIT_LINE, CACHE_MISS_LINE
from bot.model import Thresholds
from canary_demo.fakes.alarms import FakeAlarms
from tests.test_alarms_adapter import REGION, TOPIC, deployment

LOG_GROUP = "/aws/lambda/production-lego-api"
CACHE_ALARM = "canary-bot/production-lego-api/production/v2/cache-hit-rate"
FILTERS = [
    "canary-bot/production-lego-api/production/cache-hit",
    "canary-bot/production-lego-api/production/cache-miss",
]


class Moto:
    def __init__(self) -> None:
        self.cw = boto3.client("cloudwatch", region_name=REGION)
        self.logs = boto3.client("logs", region_name=REGION)
        self.logs.create_log_group(logGroupName=LOG_GROUP)
        self.adapter = CloudWatchAlarms(self.cw, REGION, logs=self.logs)

    def alarm(self, name: str) -> dict[str, Any] | None:
        found = self.cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        return dict(found[0]) if found else None

    def filters(self) -> dict[str, dict[str, Any]]:
        answer = self.logs.describe_metric_filters(logGroupName=LOG_GROUP)["metricFilters"]
        return {f["filterName"]: dict(f) for f in answer}


class Fake:
    def __init__(self) -> None:
        self.fake = FakeAlarms(REGION)
        self.adapter = self.fake

    def alarm(self, name: str) -> dict[str, Any] | None:
        found = self.fake.alarms.get(name)
        return found.definition if found else None

    def filters(self) -> dict[str, dict[str, Any]]:
        return {name: f for (group, name), f in self.fake.metric_filters.items() if group == LOG_GROUP}


@pytest.fixture(params=["fake", "moto"])
def world(request: pytest.FixtureRequest) -> Iterator[Moto | Fake]:
    if request.param == "fake":
        yield Fake()
        return
    with mock_aws():
        yield Moto()


def test_a_log_group_gives_the_cache_alarm_and_its_two_metric_filters(world: Moto | Fake) -> None:
    names = world.adapter.create_canary_alarms(
        deployment(), topic_arn=TOPIC, thresholds=Thresholds(), log_group=LOG_GROUP
    )
    assert CACHE_ALARM in names and len(names) == 3
    filters = world.filters()
    assert sorted(filters) == FILTERS
    assert filters[FILTERS[0]]["filterPattern"] == f'"{CACHE_HIT_LINE}"'
    assert filters[FILTERS[1]]["filterPattern"] == f'"{CACHE_MISS_LINE}"'
    hit_metric = filters[FILTERS[0]]["metricTransformations"][0]
    assert (hit_metric["metricNamespace"], hit_metric["metricName"], hit_metric["metricValue"]) == (
        "canary-bot/cache",
        "production-lego-api/production/hits",
        "1",
    )
    alarm = world.alarm(CACHE_ALARM)
    assert alarm is not None
    assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["Threshold"] == 0.8
    assert alarm["AlarmActions"] == [TOPIC] and alarm["TreatMissingData"] == "notBreaching"
    expression = next(m for m in alarm["Metrics"] if m.get("Expression"))
    assert expression["Expression"] == "FILL(m_hits, 0) / (FILL(m_hits, 0) + FILL(m_misses, 0))"
    stats = {
        m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if m.get("MetricStat")
    }
    assert stats == {
        "m_hits": "production-lego-api/production/hits",
        "m_misses": "production-lego-api/production/misses",
    }


def test_ending_the_canary_removes_the_cache_alarm_and_its_filters_and_again_is_harmless(
    world: Moto | Fake,
) -> None:
    world.adapter.create_canary_alarms(
        deployment(), topic_arn=TOPIC, thresholds=Thresholds(), log_group=LOG_GROUP
    )
    world.adapter.delete_canary_alarms(deployment(), log_group=LOG_GROUP)
    assert world.alarm(CACHE_ALARM) is None and world.filters() == {}
    world.adapter.delete_canary_alarms(deployment(), log_group=LOG_GROUP)  # gone already is fine


def test_without_a_log_group_or_cache_threshold_there_is_no_cache_alarm(world: Moto | Fake) -> None:
    names = world.adapter.create_canary_alarms(deployment(), topic_arn=TOPIC, thresholds=Thresholds())
    assert CACHE_ALARM not in names and world.filters() == {}
    names = world.adapter.create_canary_alarms(
        deployment(), topic_arn=TOPIC, thresholds=Thresholds(cache_hit_rate=None), log_group=LOG_GROUP
    )
    assert CACHE_ALARM not in names and world.filters() == {}


def test_the_filter_patterns_match_the_seeds_log_lines_and_nothing_else() -> None:
    """moto applies quoted-term patterns the way CloudWatch Logs does: the phrase, case-sensitive."""
    with mock_aws():
        logs = boto3.client("logs", region_name=REGION)
        logs.create_log_group(logGroupName=LOG_GROUP)
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName="2026/02/08/[2]abc")
        lines = [
            "INFO Redis cache hit key=set:10497",
            "INFO Redis cache miss key=set:75192 latency=41",
            "INFO Redis cache hit key=set:42115",
            "INFO cache hit ratio report",
        ]
        now_ms = int(time.time() * 1000)  # Logs refuses events older than 14 days
        logs.put_log_events(
            logGroupName=LOG_GROUP,
            logStreamName="2026/02/08/[2]abc",
            logEvents=[{"timestamp": now_ms + i, "message": m} for i, m in enumerate(lines)],
        )
        counts = {
            phrase: len(logs.filter_log_events(logGroupName=LOG_GROUP, filterPattern=f'"{phrase}"')["events"])
            for phrase in (CACHE_HIT_LINE, CACHE_MISS_LINE)
        }
    assert counts == {CACHE_HIT_LINE: 2, CACHE_MISS_LINE: 1}


def test_the_dashboard_shows_the_cache_alarms_metric_with_its_threshold() -> None:
    body = dashboard_body(deployment(), region=REGION, thresholds=Thresholds(), log_group=LOG_GROUP)
    widget = body["widgets"][-1]["properties"]
    assert widget["title"] == "Cache hit rate (the cache alarm's metric)"
    assert widget["annotations"]["horizontal"][0]["value"] == pytest.approx(80)
    assert json.dumps(widget["metrics"]).count("canary-bot/cache") == 2
    without = dashboard_body(deployment(), region=REGION, thresholds=Thresholds())
    assert all(w["properties"].get("title") != widget["title"] for w in without["widgets"])


def test_a_refused_metric_filter_costs_the_cache_alarm_only(caplog: pytest.LogCaptureFixture) -> None:
    with mock_aws():
        from botocore.stub import Stubber

        world = Moto()
        # A function that never logged has no log group yet (moto would accept the filter anyway).
        stub = Stubber(world.logs)
        stub.add_client_error(
            "put_metric_filter", "ResourceNotFoundException", "The specified log group does not exist.", 400
        )
        for _ in range(2):
            stub.add_client_error("delete_metric_filter", "ResourceNotFoundException", "no such filter", 400)
        with stub:
            names = world.adapter.create_canary_alarms(
                deployment(), topic_arn=TOPIC, thresholds=Thresholds(), log_group=LOG_GROUP
            )
        stored = {a["AlarmName"] for a in world.cw.describe_alarms()["MetricAlarms"]}
    assert (
        sorted(names)
        == sorted(stored)
        == [
            "canary-bot/production-lego-api/production/v2/error-rate",
            "canary-bot/production-lego-api/production/v2/p95",
        ]
    )
    assert "no cache hit rate alarm for d-20261128-1400-ab12: Logs PutMetricFilter" in caplog.text


def test_a_cache_alarm_refused_after_its_filters_leaves_neither_filters_nor_alarms() -> None:
    from botocore.stub import Stubber

    from bot.ports import AwsFailure

    with mock_aws():
        world = Moto()
        stub = Stubber(world.cw)
        stub.add_response("put_metric_alarm", {})
        stub.add_response("put_metric_alarm", {})
        stub.add_client_error("put_metric_alarm", "LimitExceeded", "too many alarms", 400)
        stub.add_response("delete_alarms", {})
        with stub, pytest.raises(AwsFailure, match=r"PutMetricAlarm .*cache-hit-rate failed: LimitExceeded"):
            world.adapter.create_canary_alarms(
                deployment(), topic_arn=TOPIC, thresholds=Thresholds(), log_group=LOG_GROUP
            )
        assert world.filters() == {}
