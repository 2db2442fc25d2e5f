"""CloudWatchMetrics against botocore's Stubber: the shape of the GetMetricData round and of its answers."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.aws.metrics import CacheCounts, CacheFigures, CloudWatchMetrics
from bot.ports import AwsFailure, WindowRequest
from tests.support.cloudwatch_responses import (
    capture_params,
    get_metric_data_params,
    get_metric_data_response,
    metric_data_result,
    stubbed_client,
)

T0 = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
FIVE_MIN = timedelta(minutes=5)
METRIC_KEYS = ("invocations", "errors", "throttles", "p50_ms", "p95_ms", "p99_ms")


def window(
    deployment_id: str = "dep-1",
    *,
    function: str = "orders",
    alias: str = "live",
    canary: str = "7",
    stable: str = "6",
    start: datetime = T0,
    minutes: int = 15,
    log_group: str | None = None,
) -> WindowRequest:
    return WindowRequest(
        deployment_id=deployment_id,
        function=function,
        alias=alias,
        canary_version=canary,
        stable_version=stable,
        start=start,
        end=start + timedelta(minutes=minutes),
        period_seconds=300,
        log_group=log_group,
    )


@pytest.fixture
def cloudwatch() -> Any:
    client, stubber = stubbed_client("cloudwatch")
    yield client, stubber
    stubber.assert_no_pending_responses()


def empty_answer(params: dict[str, Any]) -> dict[str, Any]:
    return get_metric_data_response(metric_data_result(q["Id"]) for q in params["MetricDataQueries"])


def test_one_call_carries_every_query_of_three_canaries(cloudwatch: Any) -> None:
    client, stubber = cloudwatch
    calls = capture_params(client, "GetMetricData")
    requests = [window(f"dep-{i}", function=f"fn-{i}") for i in range(3)]
    stubber.add_response(
        "get_metric_data", get_metric_data_response([]), get_metric_data_params(T0, T0 + 3 * FIVE_MIN)
    )

    figures = CloudWatchMetrics(client).fetch(requests)

    assert len(calls) == 1
    # 3 deployments x 2 versions x 6 figures (Invocations, Errors, Throttles Sum; Duration p50/p95/p99)
    assert len(calls[0]["MetricDataQueries"]) == 3 * 2 * 6
    assert set(figures) == {"dep-0", "dep-1", "dep-2"}


def test_queries_name_the_alias_and_executed_version_exactly(cloudwatch: Any) -> None:
    client, stubber = cloudwatch

    def query(qid: str, version: str, metric: str, stat: str) -> dict[str, Any]:
        return {
            "Id": qid,
            "Label": f"dep-1 {qid.split('_')[1]} v{version} {qid.split('_', 2)[2]}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/Lambda",
                    "MetricName": metric,
                    "Dimensions": [
                        {"Name": "FunctionName", "Value": "orders"},
                        {"Name": "Resource", "Value": "orders:live"},
                        {"Name": "ExecutedVersion", "Value": version},
                    ],
                },
                "Period": 300,
                "Stat": stat,
            },
            "ReturnData": True,
        }

    expected = [
        query(f"d0_{role}_{key}", version, metric, stat)
        for role, version in (("canary", "7"), ("stable", "6"))
        for key, metric, stat in (
            ("invocations", "Invocations", "Sum"),
            ("errors", "Errors", "Sum"),
            ("throttles", "Throttles", "Sum"),
            ("p50_ms", "Duration", "p50"),
            ("p95_ms", "Duration", "p95"),
            ("p99_ms", "Duration", "p99"),
        )
    ]
    stubber.add_response(
        "get_metric_data",
        get_metric_data_response([]),
        get_metric_data_params(T0, T0 + 3 * FIVE_MIN, queries=expected),
    )

    CloudWatchMetrics(client).fetch([window()])


def test_more_than_500_queries_are_split_into_calls_with_unique_ids(cloudwatch: Any) -> None:
    client, stubber = cloudwatch
    calls = capture_params(client, "GetMetricData")
    requests = [window(f"dep-{i}", function=f"fn-{i}") for i in range(45)]  # 45 x 12 = 540 queries
    for _ in range(2):
        stubber.add_response(
            "get_metric_data", get_metric_data_response([]), get_metric_data_params(T0, T0 + 3 * FIVE_MIN)
        )

    figures = CloudWatchMetrics(client).fetch(requests)

    assert [len(c["MetricDataQueries"]) for c in calls] == [500, 40]
    ids = [q["Id"] for c in calls for q in c["MetricDataQueries"]]
    assert len(set(ids)) == 540
    assert all(re.fullmatch(r"[a-z][a-zA-Z0-9_]*", i) for i in ids)
    assert len(figures) == 45


def test_next_token_pages_are_followed_and_merged(cloudwatch: Any) -> None:
    client, stubber = cloudwatch
    end = T0 + 3 * FIVE_MIN
    stubber.add_response(
        "get_metric_data",
        get_metric_data_response(
            [metric_data_result("d0_canary_invocations", [(T0, 100)], status="PartialData")],
            next_token="page-2",
        ),
        get_metric_data_params(T0, end),
    )
    stubber.add_response(
        "get_metric_data",
        get_metric_data_response(
            [
                metric_data_result("d0_canary_invocations", [(T0 + FIVE_MIN, 120), (T0 + 2 * FIVE_MIN, 90)]),
                metric_data_result("d0_stable_p95_ms", [(T0 + 2 * FIVE_MIN, 41.5)]),
            ]
        ),
        get_metric_data_params(T0, end, next_token="page-2"),
    )

    periods = CloudWatchMetrics(client).fetch([window()])["dep-1"]

    assert [p.canary.invocations for p in periods] == [100, 120, 90]
    assert [p.stable.p95_ms for p in periods] == [None, None, 41.5]


def test_periods_without_datapoints_read_zero_counts_and_no_percentiles(cloudwatch: Any) -> None:
    client, stubber = cloudwatch
    stubber.add_response(
        "get_metric_data",
        get_metric_data_response(
            [
                metric_data_result("d0_canary_invocations", [(T0 + FIVE_MIN, 300)]),
                metric_data_result("d0_canary_errors", [(T0 + FIVE_MIN, 3)]),
                metric_data_result("d0_canary_p95_ms", [(T0 + FIVE_MIN, 88.0)]),
                metric_data_result("d0_canary_p99_ms", [(T0 + FIVE_MIN, 140.0)]),
            ]
        ),
        get_metric_data_params(T0, T0 + 3 * FIVE_MIN),
    )

    periods = CloudWatchMetrics(client).fetch([window()])["dep-1"]

    assert [(p.start, p.end) for p in periods] == [
        (T0 + i * FIVE_MIN, T0 + (i + 1) * FIVE_MIN) for i in range(3)
    ]
    quiet, busy = periods[0].canary, periods[1].canary
    assert (quiet.invocations, quiet.errors, quiet.throttles) == (0, 0, 0)
    assert (quiet.p50_ms, quiet.p95_ms, quiet.p99_ms, quiet.error_rate) == (None, None, None, None)
    assert (busy.invocations, busy.errors, busy.p95_ms, busy.p99_ms) == (300, 3, 88.0, 140.0)
    assert busy.error_rate == pytest.approx(0.01)
    assert busy.p50_ms is None
    assert periods[1].stable.version == "6" and periods[1].stable.invocations == 0


def test_a_trailing_partial_period_is_not_asked_for(cloudwatch: Any) -> None:
    client, stubber = cloudwatch
    stubber.add_response(
        "get_metric_data", get_metric_data_response([]), get_metric_data_params(T0, T0 + 2 * FIVE_MIN)
    )

    periods = CloudWatchMetrics(client).fetch([window(minutes=13)])["dep-1"]

    assert [p.start for p in periods] == [T0, T0 + FIVE_MIN]


def test_window_shorter_than_one_period_asks_nothing(cloudwatch: Any) -> None:
    client, _ = cloudwatch
    calls = capture_params(client, "GetMetricData")

    assert CloudWatchMetrics(client).fetch([window(minutes=4)]) == {"dep-1": []}
    assert calls == []


def test_requests_with_different_windows_get_a_call_each(cloudwatch: Any) -> None:
    client, stubber = cloudwatch
    calls = capture_params(client, "GetMetricData")
    later = T0 + timedelta(minutes=20)
    stubber.add_response(
        "get_metric_data", get_metric_data_response([]), get_metric_data_params(T0, T0 + 3 * FIVE_MIN)
    )
    stubber.add_response(
        "get_metric_data",
        get_metric_data_response([metric_data_result("d1_canary_invocations", [(later, 5)])]),
        get_metric_data_params(later, later + 2 * FIVE_MIN),
    )

    figures = CloudWatchMetrics(client).fetch(
        [window("a"), window("b", function="payments", start=later, minutes=10)]
    )

    assert [len(c["MetricDataQueries"]) for c in calls] == [12, 12]
    assert figures["b"][0].start == later and figures["b"][0].canary.invocations == 5
    assert figures["a"][0].canary.invocations == 0


def test_response_messages_and_failed_queries_are_logged_not_raised(
    cloudwatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client, stubber = cloudwatch
    stubber.add_response(
        "get_metric_data",
        get_metric_data_response(
            [
                metric_data_result("d0_canary_invocations", [(T0, 50)]),
                metric_data_result(
                    "d0_canary_p95_ms", status="InternalError", messages=[("InternalError", "try later")]
                ),
            ],
            messages=[("MaxMetricsExceeded", "partial data returned")],
        ),
        get_metric_data_params(T0, T0 + 3 * FIVE_MIN),
    )

    with caplog.at_level(logging.WARNING, logger="bot.aws.metrics"):
        periods = CloudWatchMetrics(client).fetch([window()])["dep-1"]

    assert periods[0].canary.invocations == 50
    assert periods[0].canary.p95_ms is None
    assert "partial data returned" in caplog.text
    assert "d0_canary_p95_ms: InternalError" in caplog.text


@pytest.mark.parametrize("code", ["AccessDenied", "Throttling", "InvalidParameterValue"])
def test_aws_errors_surface_as_aws_failure(cloudwatch: Any, code: str) -> None:
    client, stubber = cloudwatch
    stubber.add_client_error(
        "get_metric_data", service_error_code=code, service_message="no", http_status_code=400
    )

    with pytest.raises(AwsFailure, match=code):
        CloudWatchMetrics(client).fetch([window()])


def test_the_same_deployment_twice_in_a_round_is_refused(cloudwatch: Any) -> None:
    client, _ = cloudwatch
    with pytest.raises(ValueError, match="once per round"):
        CloudWatchMetrics(client).fetch([window("dup"), window("dup", function="other")])


# ---------------------------------------------------------------- cache figures merged
class RecordingCache:
    def __init__(self, figures: CacheFigures) -> None:
        self.figures = figures
        self.asked: list[list[str]] = []

    def fetch(self, requests: Sequence[WindowRequest]) -> CacheFigures:
        self.asked.append([r.deployment_id for r in requests])
        return self.figures


def test_cache_figures_are_merged_per_version_and_period(cloudwatch: Any) -> None:
    client, stubber = cloudwatch
    stubber.add_response(
        "get_metric_data", get_metric_data_response([]), get_metric_data_params(T0, T0 + 3 * FIVE_MIN)
    )
    cache = RecordingCache(
        {
            "with-logs": {
                ("7", T0): CacheCounts(hits=90, misses=10, miss_p95_ms=210.0),
                ("6", T0 + FIVE_MIN): CacheCounts(hits=40, misses=0),
            }
        }
    )

    figures = CloudWatchMetrics(client, cache).fetch(
        [window("with-logs", log_group="/aws/lambda/orders"), window("no-logs", function="payments")]
    )

    assert cache.asked == [["with-logs"]]
    first, second, third = figures["with-logs"]
    assert (first.canary.cache_hits, first.canary.cache_misses, first.canary.cache_miss_p95_ms) == (
        90,
        10,
        210.0,
    )
    assert first.canary.cache_hit_rate == pytest.approx(0.9)
    assert (second.stable.cache_hits, second.stable.cache_misses) == (40, 0)
    # The query ran and saw no cache line: zero traffic, not unknown.
    assert (third.canary.cache_hits, third.canary.cache_misses, third.canary.cache_hit_rate) == (0, 0, None)
    assert all(p.canary.cache_hits is None and p.stable.cache_misses is None for p in figures["no-logs"])


def test_a_deployment_whose_cache_query_failed_has_no_cache_figures(cloudwatch: Any) -> None:
    client, stubber = cloudwatch
    stubber.add_response(
        "get_metric_data", get_metric_data_response([]), get_metric_data_params(T0, T0 + 3 * FIVE_MIN)
    )

    figures = CloudWatchMetrics(client, RecordingCache({})).fetch([window(log_group="/aws/lambda/orders")])

    assert all(
        (v.cache_hits, v.cache_misses, v.cache_miss_p95_ms) == (None, None, None)
        for p in figures["dep-1"]
        for v in (p.canary, p.stable)
    )
