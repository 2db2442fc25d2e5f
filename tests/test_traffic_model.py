"""The one traffic model (canary_demo.simulator) that the demo, the tests and the benchmarks all drive."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from canary_demo.cloudwatch_sinks import AlarmEvaluator, CloudWatchSink, LogsSink
from canary_demo.fakes.metrics import FakeMetrics, nearest_rank
from canary_demo.fakes.traffic import FakeTraffic
from canary_demo.simulator import (
    HEALTHY,
    REDIS,
    Behaviour,
    MetricsSink,
    Mode,
    Sampled,
    Served,
    Steady,
    TrafficModel,
)

FN, ALIAS = "orders-api", "live"
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Collect:
    """A sink that keeps what it was handed."""

    def __init__(self) -> None:
        self.got: list[Served] = []

    def served(self, s: Served) -> None:
        self.got.append(s)


def canary_at(weight: float) -> FakeTraffic:
    traffic = FakeTraffic()
    traffic.add_function(FN, versions=["1", "2"])
    traffic.add_alias(FN, ALIAS, "1")
    if weight:
        traffic.force_change(FN, ALIAS, "1", {"2": weight})
    return traffic


def by_version(sink: Collect) -> dict[str, Served]:
    return {s.version: s for s in sink.got}


def test_steady_traffic_splits_by_the_alias_weights_read_each_minute() -> None:
    traffic, sink = canary_at(0.1), Collect()
    model = TrafficModel(traffic, FN, ALIAS, per_minute=1000, sinks=[sink])

    assert model.minute(AT) == pytest.approx({"1": 900.0, "2": 100.0})
    traffic.force_change(FN, ALIAS, "1")  # rolled back: all on v1 from the next minute
    assert model.minute(AT + timedelta(minutes=1)) == {"1": 1000.0}
    assert [(s.version, s.at) for s in sink.got] == [("1", AT), ("2", AT), ("1", AT + timedelta(minutes=1))]


def test_steady_traffic_gives_the_behaviours_figures_exactly() -> None:
    sink = Collect()
    model = TrafficModel(canary_at(0.1), FN, ALIAS, per_minute=1000, sinks=[sink])
    model.behave("2", error_rate=0.02, p95_ms=180.0)

    model.minute(AT, minutes=5)

    canary = by_version(sink)["2"].figures
    assert (canary.invocations, canary.errors) == pytest.approx((500.0, 10.0))
    assert (canary.p50_ms, canary.p95_ms, canary.p99_ms) == (90.0, 180.0, HEALTHY.p99_ms)
    assert (canary.cache_hits, canary.cache_misses, canary.cache_miss_latencies) == (470, 30, (120.0,))
    stable = by_version(sink)["1"].figures
    assert stable.errors == pytest.approx(4500 * HEALTHY.error_rate)


def test_the_metrics_sink_records_what_the_soak_judge_reads() -> None:
    metrics = FakeMetrics()
    model = TrafficModel(canary_at(0.05), FN, ALIAS, sinks=[MetricsSink(metrics)])
    model.behave("2", error_rate=0.01)
    for minute in range(5):
        model.minute(AT + timedelta(minutes=minute))

    recorded = metrics._samples[(FN, ALIAS, "2")]
    assert [s.at for s in recorded] == [AT + timedelta(minutes=i) for i in range(5)]
    assert sum(s.invocations for s in recorded) == pytest.approx(500.0)
    assert sum(s.errors for s in recorded) == pytest.approx(5.0)


def test_a_version_without_a_shared_cache_has_no_cache_traffic_in_either_mode() -> None:
    modes: list[Mode] = [Steady(), Sampled(seed=7)]
    for mode in modes:
        sink = Collect()
        model = TrafficModel(canary_at(0), FN, ALIAS, default=REDIS, mode=mode, sinks=[sink])
        model.behave("1", cache_hit_rate=None)
        model.minute(AT)
        figures = sink.got[0].figures
        assert (figures.cache_hits, figures.cache_misses, figures.cache_miss_latencies) == (0, 0, ())


def test_sampled_traffic_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    def draw(seed: int, exact: bool) -> list[Served]:
        sink = Collect()
        model = TrafficModel(
            canary_at(0.05), FN, ALIAS, default=REDIS, mode=Sampled(seed, exact_counts=exact)
        )
        model.sinks.append(sink)
        for minute in range(3):
            model.minute(AT + timedelta(minutes=minute))
        return sink.got

    for exact in (False, True):
        assert draw(1, exact) == draw(1, exact)
        assert draw(1, exact) != draw(2, exact)


@pytest.mark.parametrize("exact", [False, True])
def test_sampled_traffic_centres_on_the_behaviour(exact: bool) -> None:
    """Volume ±10%, errors and cache hits at their rates, latencies through p50 and p95 (an explicit p99
    bends the tail to it)."""
    sink = Collect()
    b = Behaviour(error_rate=0.01, p50_ms=40.0, p95_ms=100.0, p99_ms=200.0, cache_hit_rate=0.8)
    model = TrafficModel(canary_at(0), FN, ALIAS, per_minute=20_000, default=b, sinks=[sink])
    model.mode = Sampled(3, exact_counts=exact)
    for minute in range(100):
        model.minute(AT + timedelta(minutes=minute))

    figures = [s.figures for s in sink.got]
    invocations = sum(f.invocations for f in figures)
    assert all(18_000 <= f.invocations <= 22_000 for f in figures)
    assert sum(f.errors for f in figures) / invocations == pytest.approx(0.01, rel=0.05)
    assert sum(f.cache_hits for f in figures) / invocations == pytest.approx(0.8, rel=0.02)
    durations = [d for f in figures for d in f.durations_ms]
    assert nearest_rank(durations, 50) == pytest.approx(40.0, rel=0.1)
    assert nearest_rank(durations, 95) == pytest.approx(100.0, rel=0.1)
    assert nearest_rank(durations, 99) == pytest.approx(200.0, rel=0.1)
    misses = [m for f in figures for m in f.cache_miss_latencies]
    assert nearest_rank(misses, 95) == pytest.approx(b.cache_miss_p95_ms, rel=0.15)


# ---------------------------------------------------------------- the demo's sinks, into moto
@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        clients = {
            name: boto3.client(name, region_name="us-east-1") for name in ("cloudwatch", "logs", "sns")
        }
        clients["sqs"] = boto3.client("sqs", region_name="us-east-1")
        yield clients


def test_the_demo_sinks_write_datapoints_log_lines_and_fire_the_canary_alarm(aws: dict[str, Any]) -> None:
    cw, logs, sns, sqs = aws["cloudwatch"], aws["logs"], aws["sns"], aws["sqs"]
    logs.create_log_group(logGroupName=f"/aws/lambda/{FN}")
    topic = sns.create_topic(Name="alarms")["TopicArn"]
    queue = sqs.create_queue(QueueName="alarms")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    name = f"canary-bot/{FN}/{ALIAS}/v2/error-rate"
    cw.put_metric_alarm(
        AlarmName=name,
        EvaluationPeriods=2,
        Threshold=0.001,
        ComparisonOperator="GreaterThanThreshold",
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Period=300,
        Statistic="Sum",
    )
    # Logs keep only events of the last 14 days: the hour before now, from a 5-minute boundary.
    hour_ago = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    start = hour_ago - timedelta(minutes=hour_ago.minute % 5)
    alarms = AlarmEvaluator(cw, sns, topic)
    model = TrafficModel(
        canary_at(0.05),
        FN,
        ALIAS,
        default=REDIS,
        mode=Sampled(5),
        sinks=[CloudWatchSink(cw), LogsSink(logs), alarms],
    )
    model.behave("2", error_rate=0.05, error_message="Redis connection pool exhausted")

    fired = []
    for minute in range(10):
        model.minute(start + timedelta(minutes=minute))
        fired.append(alarms.evaluate(start + timedelta(minutes=minute + 1)))

    assert fired == [[]] * 9 + [[name]]  # two bad 5-minute periods, judged at the boundary that ends them
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] == "ALARM"
    [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
    assert json.loads(json.loads(message["Body"])["Message"])["AlarmName"] == name
    lines = [e["message"] for e in logs.filter_log_events(logGroupName=f"/aws/lambda/{FN}")["events"]]
    assert any(line.startswith("ERROR Redis connection pool exhausted (x") for line in lines)
    assert any(line.startswith("Redis cache miss latency=85ms") for line in lines)
    datapoints = cw.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Invocations",
        Dimensions=[
            {"Name": "FunctionName", "Value": FN},
            {"Name": "Resource", "Value": f"{FN}:{ALIAS}"},
            {"Name": "ExecutedVersion", "Value": "2"},
        ],
        StartTime=start,
        EndTime=start + timedelta(minutes=10),
        Period=600,
        Statistics=["Sum"],
    )["Datapoints"]
    assert 900 <= datapoints[0]["Sum"] <= 1100  # 5% of 2,000 a minute, ±10%
