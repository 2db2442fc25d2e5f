"""Realistic CloudWatch GetMetricData and Logs Insights answers for botocore's Stubber, and small doubles.

moto cannot compute percentiles nor run Logs Insights stats (shared/TESTING.md), so those paths are tested
against canned answers shaped like AWS's (the Stubber validates them against the service model).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.stub import ANY, Stubber

REGION = "us-east-1"


# ---------------------------------------------------------------- clients
@functools.cache
def _session() -> Any:  # Any: the stubs type clients per literal service name
    # One session for all stubbed clients: it caches the service models, which take ~0.3 s to load.
    return boto3.session.Session()


def stubbed_client(service: str) -> tuple[Any, Stubber]:
    """A real botocore client (fake credentials, no network) and its activated Stubber."""
    client = _session().client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    stubber = Stubber(client)
    stubber.activate()
    return client, stubber


def capture_params(client: Any, operation: str) -> list[dict[str, Any]]:
    """Parameters of every call to `operation` ('GetMetricData'), in call order, as the caller gave them."""
    calls: list[dict[str, Any]] = []
    service = client.meta.service_model.service_name

    def capture(params: dict[str, Any], **_: Any) -> None:
        calls.append(copy.deepcopy(params))

    client.meta.events.register(f"provide-client-params.{service}.{operation}", capture)
    return calls


# ---------------------------------------------------------------- GetMetricData
def metric_data_result(
    query_id: str,
    points: Iterable[tuple[datetime, float]] = (),
    *,
    label: str | None = None,
    status: str = "Complete",
    messages: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """One MetricDataResults entry. `status` 'PartialData' marks a result continued on the next page."""
    ordered = sorted(points)
    result: dict[str, Any] = {
        "Id": query_id,
        "Label": label or query_id,
        "Timestamps": [t for t, _ in ordered],
        "Values": [float(v) for _, v in ordered],
        "StatusCode": status,
    }
    if messages:
        result["Messages"] = [{"Code": c, "Value": v} for c, v in messages]
    return result


def get_metric_data_response(
    results: Iterable[dict[str, Any]],
    *,
    next_token: str | None = None,
    messages: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "MetricDataResults": list(results),
        "Messages": [{"Code": c, "Value": v} for c, v in messages],
    }
    if next_token:
        response["NextToken"] = next_token
    return response


def get_metric_data_params(
    start: datetime, end: datetime, *, queries: Any = ANY, next_token: str | None = None
) -> dict[str, Any]:
    """Expected GetMetricData parameters for Stubber.add_response."""
    params: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    if next_token:
        params["NextToken"] = next_token
    return params


# ---------------------------------------------------------------- Logs Insights
def insights_bin(at: datetime) -> str:
    """How Logs Insights writes a bin() value: UTC, millisecond precision, no zone."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"


def stats_row(**fields: object) -> list[Any]:
    """One result row: [{field, value}], values as strings, None fields left out (as Logs Insights does)."""
    return [{"field": k, "value": str(v)} for k, v in fields.items() if v is not None]


def cache_rows(
    version: str, period_start: datetime, *, hits: int, misses: int, miss_p95_ms: float | None = None
) -> list[list[Any]]:
    """The default cache query's rows for one version and bin: one per lookup result that occurred."""
    rows = []
    if hits:
        rows.append(
            stats_row(
                version=version, cache_result="hit", period_start=insights_bin(period_start), events=hits
            )
        )
    if misses:
        rows.append(
            stats_row(
                version=version,
                cache_result="miss",
                period_start=insights_bin(period_start),
                events=misses,
                latency_p95_ms=miss_p95_ms,
            )
        )
    return rows


def start_query_response(query_id: str) -> dict[str, Any]:
    return {"queryId": query_id}


def query_results_response(status: str, rows: Sequence[list[dict[str, str]]] = ()) -> dict[str, Any]:
    matched = sum(1 for _ in rows)
    return {
        "status": status,
        "results": list(rows),
        "statistics": {"recordsMatched": float(matched), "recordsScanned": 1000.0, "bytesScanned": 65536.0},
    }


@dataclass
class _ScriptedQuery:
    log_group: str
    polls_left: int
    rows: list[list[dict[str, str]]]
    status: str = "Running"


@dataclass
class ScriptedLogsClient:
    """A Logs client double for scheduling tests: each log group's query stays Running for `polls` polls, then
    Complete with `rows`. Tracks how many queries were in flight at once."""

    polls: int = 2
    rows_by_group: dict[str, list[list[dict[str, str]]]] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    max_in_flight: int = 0
    _queries: dict[str, _ScriptedQuery] = field(default_factory=dict)

    @property
    def in_flight(self) -> int:
        return sum(1 for q in self._queries.values() if q.status == "Running")

    def start_query(self, **params: Any) -> dict[str, Any]:
        query_id = f"q-{len(self._queries) + 1}"
        group = params["logGroupName"]
        self._queries[query_id] = _ScriptedQuery(group, self.polls, self.rows_by_group.get(group, []))
        self.started.append(group)
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return start_query_response(query_id)

    def get_query_results(self, *, queryId: str) -> dict[str, Any]:
        query = self._queries[queryId]
        if query.status == "Running":
            query.polls_left -= 1
            if query.polls_left < 0:
                query.status = "Complete"
        return query_results_response(query.status, query.rows if query.status == "Complete" else [])

    def stop_query(self, *, queryId: str) -> dict[str, Any]:
        self.stopped.append(queryId)
        self._queries[queryId].status = "Cancelled"
        return {"success": True}


class ManualClock:
    """A monotonic clock that moves only when slept on: `sleep` advances it and records the pause."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
