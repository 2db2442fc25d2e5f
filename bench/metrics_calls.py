"""GetMetricData planning: how many CloudWatch calls one evaluation round costs as canaries add up.

bot.aws.metrics.CloudWatchMetrics.fetch runs against a recording CloudWatch client that checks every call's
parameters against botocore's own CloudWatch model (as Stubber would) and answers each query with one
datapoint per period. For 1, 10 and 100 canaries sharing the tick's window (2 versions × 6 metrics = 12 queries
each) we count the calls. Target: exactly ceil(queries / 500) calls (GetMetricData's limit per call), e.g.
100 canaries → 1,200 queries → 3 calls, and every canary's figures complete. Baseline: the naive plan of one
GetMetricStatistics-style call per metric per version, 12 per canary. The ratio is the reduction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
from botocore.model import OperationModel
from botocore.validate import validate_parameters

from bench.harness import Check
from bot.aws.metrics import MAX_QUERIES_PER_CALL, METRICS, ROLES, CloudWatchMetrics
from bot.ports import WindowRequest

SIZES = (1, 10, 100)
QUERIES_PER_CANARY = len(ROLES) * len(METRICS)  # both versions, every metric
PERIOD = timedelta(minutes=5)
WINDOW = timedelta(hours=1)
_END = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


class RecordingCloudWatch:
    """The one CloudWatch method CloudWatchMetrics uses. Validates like botocore, records, answers."""

    def __init__(self) -> None:
        model = botocore.session.get_session().get_service_model("cloudwatch")
        self._operation: OperationModel = model.operation_model("GetMetricData")
        self.calls: list[int] = []  # queries per call

    def get_metric_data(self, **params: Any) -> dict[str, Any]:
        shape = self._operation.input_shape
        assert shape is not None  # GetMetricData has input
        validate_parameters(params, shape)  # raises ParamValidationError
        queries: Sequence[Mapping[str, Any]] = params["MetricDataQueries"]
        self.calls.append(len(queries))
        start: datetime = params["StartTime"]
        end: datetime = params["EndTime"]
        stamps = [start + i * PERIOD for i in range(int((end - start) / PERIOD))]
        return {
            "MetricDataResults": [
                {
                    "Id": query["Id"],
                    "Label": query.get("Label", query["Id"]),
                    "Timestamps": stamps,
                    "Values": [1000.0] * len(stamps),
                    "StatusCode": "Complete",
                }
                for query in queries
            ],
            "Messages": [],
        }


def run(*, sizes: Sequence[int] = SIZES) -> list[Check]:
    return [calls_check(n) for n in sizes]


def calls_check(canaries: int) -> Check:
    client = RecordingCloudWatch()
    requests = window_requests(canaries)
    figures = CloudWatchMetrics(client).fetch(requests)  # type: ignore[arg-type]  # a recording stand-in
    queries = canaries * QUERIES_PER_CANARY
    expected = math.ceil(queries / MAX_QUERIES_PER_CALL)
    naive = canaries * QUERIES_PER_CANARY  # one GetMetricStatistics per metric per version
    periods = int(WINDOW / PERIOD)
    complete = all(
        len(figures.get(r.deployment_id, [])) == periods
        and all(p.canary.invocations and p.stable.invocations for p in figures[r.deployment_id])
        for r in requests
    )
    within_limit = all(n <= MAX_QUERIES_PER_CALL for n in client.calls)
    problems = [
        "" if complete else "some canary's figures incomplete",
        "" if within_limit else f"a call exceeded {MAX_QUERIES_PER_CALL} queries: {client.calls}",
    ]
    return Check(
        name=f"GetMetricData calls, {canaries} canar{'y' if canaries == 1 else 'ies'}",
        ours=len(client.calls),
        baseline=naive,
        unit="calls",
        target=f"= ceil({queries}/{MAX_QUERIES_PER_CALL}) = {expected}",
        passed=len(client.calls) == expected and complete and within_limit,
        note="; ".join(p for p in problems if p)
        or f"{naive / len(client.calls):g}× fewer calls; queries per call {client.calls}",
    )


def window_requests(canaries: int) -> list[WindowRequest]:
    """What one tick asks for: every canary over the same clock-aligned hour, 5-minute periods."""
    return [
        WindowRequest(
            deployment_id=f"d-bench-{i:03d}",
            function=f"bench-fn-{i:03d}",
            alias="production",
            canary_version="2",
            stable_version="1",
            start=_END - WINDOW,
            end=_END,
            period_seconds=int(PERIOD.total_seconds()),
        )
        for i in range(canaries)
    ]
