"""One contract for every MetricsPort: the same recorded traffic gives the same PeriodFigures.

Worlds:
- fake:     canary_demo.fakes.metrics.FakeMetrics.
- moto:     CloudWatchMetrics against moto; counts written with put_metric_data (moto cannot compute
            percentiles, so no Duration is written and percentile scenarios skip this world).
- stubbed:  CloudWatchMetrics (+ LogsInsightsCache) against botocore's Stubber; the canned answers are
            computed from the recorded traffic and from what each planned query asks (metric, stat and
            dimensions), the way CloudWatch and Logs Insights would answer it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import boto3
import pytest
from moto import mock_aws

from bot.aws.cache_logs import LogsInsightsCache
from bot.aws.metrics import CloudWatchMetrics, plan_queries
from bot.model import PeriodFigures
from bot.ports import AwsFailure, MetricsPort, WindowRequest
from canary_demo.fakes.metrics import FakeMetrics
from tests.support.cloudwatch_responses import (
    ManualClock,
    cache_rows,
    capture_params,
    get_metric_data_params,
    get_metric_data_response,
    metric_data_result,
    query_results_response,
    start_query_response,
    stubbed_client,
)

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
PERIOD = timedelta(minutes=5)
FUNCTION, ALIAS, CANARY, STABLE = "orders", "live", "7", "6"


def window(
    deployment_id: str = "dep-1",
    *,
    function: str = FUNCTION,
    minutes: int = 15,
    log_group: str | None = None,
) -> WindowRequest:
    return WindowRequest(
        deployment_id=deployment_id,
        function=function,
        alias=ALIAS,
        canary_version=CANARY,
        stable_version=STABLE,
        start=T0,
        end=T0 + timedelta(minutes=minutes),
        period_seconds=int(PERIOD.total_seconds()),
        log_group=log_group,
    )


@dataclass
class Traffic:
    function: str
    alias: str
    version: str
    at: datetime
    invocations: float = 0
    errors: float = 0
    throttles: float = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    cache_hits: int = 0
    cache_misses: int = 0
    cache_miss_latencies: list[float] = field(default_factory=list)


class World(Protocol):
    supports_percentiles: bool
    supports_cache: bool

    def record(self, traffic: Traffic) -> None: ...

    def port(self) -> MetricsPort: ...

    def rounds(self) -> int:
        """How many times the backend was asked (GetMetricData calls / fake fetches)."""
        ...


# ---------------------------------------------------------------- fake
class FakeWorld:
    supports_percentiles = True
    supports_cache = True

    def __init__(self) -> None:
        self.metrics = FakeMetrics()

    def record(self, t: Traffic) -> None:
        self.metrics.record(
            t.function,
            t.alias,
            t.version,
            t.at,
            invocations=t.invocations,
            errors=t.errors,
            throttles=t.throttles,
            p50=t.p50,
            p95=t.p95,
            p99=t.p99,
            cache_hits=t.cache_hits,
            cache_misses=t.cache_misses,
            cache_miss_latencies=t.cache_miss_latencies,
        )

    def port(self) -> MetricsPort:
        return self.metrics

    def rounds(self) -> int:
        return self.metrics.calls


# ---------------------------------------------------------------- moto
def dimensions(function: str, alias: str, version: str) -> list[dict[str, str]]:
    return [
        {"Name": "FunctionName", "Value": function},
        {"Name": "Resource", "Value": f"{function}:{alias}"},
        {"Name": "ExecutedVersion", "Value": version},
    ]


class MotoWorld:
    supports_percentiles = False  # moto crashes on pNN statistics
    supports_cache = False  # moto ignores Logs Insights stats

    def __init__(self) -> None:
        self.client = boto3.client("cloudwatch", region_name="us-east-1")
        self.calls = capture_params(self.client, "GetMetricData")

    def record(self, t: Traffic) -> None:
        data: list[Any] = [
            {
                "MetricName": name,
                "Dimensions": dimensions(t.function, t.alias, t.version),
                "Timestamp": t.at,
                "Value": value,
                "Unit": "Count",
            }
            for name, value in (
                ("Invocations", t.invocations),
                ("Errors", t.errors),
                ("Throttles", t.throttles),
            )
        ]
        self.client.put_metric_data(Namespace="AWS/Lambda", MetricData=data)

    def port(self) -> MetricsPort:
        return CloudWatchMetrics(self.client)

    def rounds(self) -> int:
        return len(self.calls)


# ---------------------------------------------------------------- stubbed
class StubbedWorld:
    """Arms the Stubbers at fetch time: the answers depend on the requests, as AWS's would."""

    supports_percentiles = True
    supports_cache = True

    def __init__(self) -> None:
        self.traffic: list[Traffic] = []
        self.cloudwatch, self.cw_stub = stubbed_client("cloudwatch")
        self.logs, self.logs_stub = stubbed_client("logs")
        self.calls = capture_params(self.cloudwatch, "GetMetricData")
        self.clock = ManualClock()

    def record(self, t: Traffic) -> None:
        self.traffic.append(t)

    def port(self) -> MetricsPort:
        cache = LogsInsightsCache(self.logs, sleep=self.clock.sleep, monotonic=self.clock.monotonic)
        real = CloudWatchMetrics(self.cloudwatch, cache)
        world = self

        class Armed:
            def fetch(self, requests: Sequence[WindowRequest]) -> dict[str, list[PeriodFigures]]:
                world.arm(requests)
                figures = real.fetch(requests)
                world.cw_stub.assert_no_pending_responses()
                world.logs_stub.assert_no_pending_responses()
                return figures

        return Armed()

    def rounds(self) -> int:
        return len(self.calls)

    def arm(self, requests: Sequence[WindowRequest]) -> None:
        planned = plan_queries(requests)
        if planned:  # all requests in these scenarios share one window
            start, end = requests[0].start, _whole_end(requests[0])
            results = [self._answer(pq.query, start, end) for pq in planned]
            self.cw_stub.add_response(
                "get_metric_data", get_metric_data_response(results), get_metric_data_params(start, end)
            )
        for n, request in enumerate(r for r in requests if r.log_group and _whole_end(r) > r.start):
            query_id = f"q-{n}"
            self.logs_stub.add_response("start_query", start_query_response(query_id))
            self.logs_stub.add_response(
                "get_query_results",
                query_results_response("Complete", self._cache_rows(request)),
                {"queryId": query_id},
            )

    def _answer(self, query: Any, start: datetime, end: datetime) -> dict[str, Any]:
        stat = query["MetricStat"]
        dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
        matching = [
            t
            for t in self.traffic
            if dims
            == {
                "FunctionName": t.function,
                "Resource": f"{t.function}:{t.alias}",
                "ExecutedVersion": t.version,
            }
        ]
        points = []
        for period_start in _periods(start, end, timedelta(seconds=stat["Period"])):
            inside = [t for t in matching if period_start <= t.at < period_start + PERIOD]
            value = _statistic(stat["Metric"]["MetricName"], stat["Stat"], inside)
            if value is not None:
                points.append((period_start, value))
        return metric_data_result(query["Id"], points)

    def _cache_rows(self, request: WindowRequest) -> list[list[dict[str, str]]]:
        rows = []
        for period_start in _periods(request.start, _whole_end(request), PERIOD):
            for version in (request.canary_version, request.stable_version):
                inside = [
                    t
                    for t in self.traffic
                    if (t.function, t.alias, t.version) == (request.function, request.alias, version)
                    and period_start <= t.at < period_start + PERIOD
                ]
                latencies = sorted(x for t in inside for x in t.cache_miss_latencies)
                p95 = latencies[math.ceil(0.95 * len(latencies)) - 1] if latencies else None
                rows += cache_rows(
                    version,
                    period_start,
                    hits=sum(t.cache_hits for t in inside),
                    misses=sum(t.cache_misses for t in inside),
                    miss_p95_ms=p95,
                )
        return rows


def _whole_end(request: WindowRequest) -> datetime:
    step = timedelta(seconds=request.period_seconds)
    return request.start + ((request.end - request.start) // step) * step


def _periods(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    at = start
    while at < end:
        yield at
        at += step


def _statistic(metric: str, stat: str, traffic: list[Traffic]) -> float | None:
    """What CloudWatch answers for one period: sums when something was published, the recorded percentile."""
    if stat == "Sum":
        published = {"Invocations": "invocations", "Errors": "errors", "Throttles": "throttles"}[metric]
        return sum(getattr(t, published) for t in traffic) if traffic else None
    values = [getattr(t, stat) for t in traffic if getattr(t, stat) is not None]
    return values[-1] if values else None


# ---------------------------------------------------------------- worlds
@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(params=["fake", "moto", "stubbed"])
def world(request: pytest.FixtureRequest, aws_env: None) -> Iterator[World]:
    if request.param == "fake":
        yield FakeWorld()
    elif request.param == "moto":
        with mock_aws():
            yield MotoWorld()
    else:
        yield StubbedWorld()


def needs(world: World, *, percentiles: bool = False, cache: bool = False) -> None:
    if (percentiles and not world.supports_percentiles) or (cache and not world.supports_cache):
        pytest.skip(f"{type(world).__name__} cannot produce these figures (see shared/TESTING.md)")


def traffic(version: str, at: datetime, **figures: Any) -> Traffic:
    return Traffic(FUNCTION, ALIAS, version, at, **figures)


# ---------------------------------------------------------------- the contract
def test_counts_are_summed_per_period_and_zero_without_traffic(world: World) -> None:
    world.record(traffic(CANARY, T0 + MIN, invocations=100, errors=1, throttles=2))
    world.record(traffic(CANARY, T0 + 3 * MIN, invocations=50, errors=1))
    world.record(traffic(STABLE, T0 + 11 * MIN, invocations=900, errors=0, throttles=1))

    periods = world.port().fetch([window()])["dep-1"]

    assert [(p.start, p.end) for p in periods] == [(T0 + i * PERIOD, T0 + (i + 1) * PERIOD) for i in range(3)]
    assert [(p.canary.invocations, p.canary.errors, p.canary.throttles) for p in periods] == [
        (150, 2, 2),
        (0, 0, 0),
        (0, 0, 0),
    ]
    assert [(p.stable.invocations, p.stable.errors, p.stable.throttles) for p in periods] == [
        (0, 0, 0),
        (0, 0, 0),
        (900, 0, 1),
    ]
    assert [p.canary.error_rate for p in periods] == [pytest.approx(2 / 150), None, None]
    assert all(p.canary.version == CANARY and p.stable.version == STABLE for p in periods)


def test_traffic_of_another_alias_or_version_is_not_counted(world: World) -> None:
    world.record(traffic(CANARY, T0, invocations=10))
    world.record(Traffic(FUNCTION, "staging", CANARY, T0, invocations=1000))
    world.record(traffic("5", T0, invocations=1000))

    first = world.port().fetch([window()])["dep-1"][0]

    assert (first.canary.invocations, first.stable.invocations) == (10, 0)


def test_only_whole_periods_are_reported_oldest_first(world: World) -> None:
    world.record(traffic(CANARY, T0 + 6 * MIN, invocations=5))
    world.record(traffic(CANARY, T0 + 11 * MIN, invocations=7))  # inside the trailing partial period

    periods = world.port().fetch([window(minutes=13)])["dep-1"]

    assert [p.start for p in periods] == [T0, T0 + PERIOD]
    assert [p.canary.invocations for p in periods] == [0, 5]


def test_a_window_shorter_than_a_period_has_no_figures(world: World) -> None:
    world.record(traffic(CANARY, T0 + MIN, invocations=5))

    assert world.port().fetch([window(minutes=4)]) == {"dep-1": []}


def test_every_deployment_is_answered_in_one_round(world: World) -> None:
    world.record(traffic(CANARY, T0, invocations=3))
    world.record(Traffic("payments", ALIAS, CANARY, T0, invocations=8))

    figures = world.port().fetch([window("a"), window("b", function="payments")])

    assert world.rounds() == 1
    assert (figures["a"][0].canary.invocations, figures["b"][0].canary.invocations) == (3, 8)


def test_percentiles_per_version_and_period_stay_none_without_data(world: World) -> None:
    needs(world, percentiles=True)
    world.record(traffic(CANARY, T0 + MIN, invocations=10, p50=20.0, p95=85.0, p99=140.0))
    world.record(traffic(STABLE, T0 + 6 * MIN, invocations=90, p50=18.0, p95=60.0, p99=95.0))

    periods = world.port().fetch([window()])["dep-1"]

    assert [(p.canary.p50_ms, p.canary.p95_ms, p.canary.p99_ms) for p in periods] == [
        (20.0, 85.0, 140.0),
        (None, None, None),
        (None, None, None),
    ]
    assert [p.stable.p95_ms for p in periods] == [None, 60.0, None]


def test_cache_figures_per_version_and_period(world: World) -> None:
    needs(world, cache=True)
    world.record(
        traffic(CANARY, T0 + MIN, cache_hits=40, cache_misses=10, cache_miss_latencies=[120, 250, 90])
    )
    world.record(traffic(STABLE, T0 + MIN, cache_hits=95, cache_misses=5, cache_miss_latencies=[80]))

    figures = world.port().fetch(
        [window(log_group="/aws/lambda/orders"), window("no-logs", function="payments")]
    )

    first, second, _ = figures["dep-1"]
    assert (first.canary.cache_hits, first.canary.cache_misses, first.canary.cache_miss_p95_ms) == (
        40,
        10,
        250,
    )
    assert first.canary.cache_hit_rate == pytest.approx(0.8)
    assert (first.stable.cache_hits, first.stable.cache_misses, first.stable.cache_miss_p95_ms) == (95, 5, 80)
    assert (second.canary.cache_hits, second.canary.cache_misses, second.canary.cache_miss_p95_ms) == (
        0,
        0,
        None,
    )
    assert all(p.canary.cache_hits is None for p in figures["no-logs"])


# ---------------------------------------------------------------- FakeMetrics' own knobs
def test_fake_computes_percentiles_from_recorded_durations() -> None:
    fake = FakeMetrics()
    fake.record(FUNCTION, ALIAS, CANARY, T0, invocations=10, durations_ms=[float(d) for d in range(1, 11)])
    fake.record(
        FUNCTION, ALIAS, CANARY, T0 + MIN, invocations=10, durations_ms=[float(d) for d in range(11, 21)]
    )

    first = fake.fetch([window()])["dep-1"][0].canary

    assert (first.p50_ms, first.p95_ms, first.p99_ms) == (10.0, 19.0, 20.0)


def test_fake_can_lose_cache_figures_and_fail_a_round() -> None:
    fake = FakeMetrics()
    fake.record(FUNCTION, ALIAS, CANARY, T0, cache_hits=5, cache_misses=1)
    fake.make_cache_unavailable(FUNCTION)

    lost = fake.fetch([window(log_group="/aws/lambda/orders")])["dep-1"][0].canary
    fake.fail_next(AwsFailure("throttled"))
    with pytest.raises(AwsFailure):
        fake.fetch([window()])
    fake.make_cache_unavailable(FUNCTION, unavailable=False)
    back = fake.fetch([window(log_group="/aws/lambda/orders")])["dep-1"][0].canary

    assert (lost.cache_hits, lost.cache_misses) == (None, None)
    assert (back.cache_hits, back.cache_misses) == (5, 1)
    assert fake.calls == 3 and [len(r) for r in fake.requests] == [1, 1, 1]
