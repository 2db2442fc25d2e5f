"""Per-version Lambda figures for every live canary in one GetMetricData round (bot.ports.MetricsPort).

Lambda publishes alias traffic per executed version under the dimension set
{FunctionName, Resource=<function>:<alias>, ExecutedVersion}; we ask for exactly that set, so the canary's
and the stable version's figures come from the same alias and never mix with direct invocations.

One tick = one round: the queries of all requests are built together, sent in calls of at most 500 queries,
each call followed through NextToken. GetMetricData takes one StartTime/EndTime per call, so requests are
grouped by window: requests sharing a window (what the tick normally sends) share calls, and each distinct
window costs its own call set.

Cache figures (hits, misses, miss latency) come from application logs, not metrics; they are merged from an
optional CacheFiguresSource (bot.aws.cache_logs.LogsInsightsCache in production).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from bot.model import PeriodFigures, VersionFigures
from bot.ports import AwsFailure, WindowRequest

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import (
        DimensionTypeDef,
        GetMetricDataInputTypeDef,
        MessageDataTypeDef,
        MetricDataQueryTypeDef,
        MetricDataResultTypeDef,
    )

log = logging.getLogger(__name__)

NAMESPACE = "AWS/Lambda"
MAX_QUERIES_PER_CALL = 500  # GetMetricData's limit
Role = Literal["canary", "stable"]
ROLES: tuple[Role, ...] = ("canary", "stable")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One figure of VersionFigures and where CloudWatch keeps it. `key` is the VersionFigures field name."""

    key: str
    metric_name: str
    stat: str


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("invocations", "Invocations", "Sum"),
    MetricSpec("errors", "Errors", "Sum"),
    MetricSpec("throttles", "Throttles", "Sum"),
    MetricSpec("p50_ms", "Duration", "p50"),
    MetricSpec("p95_ms", "Duration", "p95"),
    MetricSpec("p99_ms", "Duration", "p99"),
)


# ---------------------------------------------------------------- cache figures (the source is in cache_logs)
@dataclass(frozen=True, slots=True)
class CacheCounts:
    """Cache figures of one version in one period, read from the function's logs."""

    hits: int
    misses: int
    miss_p95_ms: float | None = None


NO_CACHE_TRAFFIC = CacheCounts(hits=0, misses=0)

# deployment id -> (version, period start) -> counts. A deployment missing from the mapping means its figures
# could not be read (query failed or timed out); a (version, period) missing means no cache log line.
CacheFigures = dict[str, dict[tuple[str, datetime], CacheCounts]]


class CacheFiguresSource(Protocol):
    def fetch(self, requests: Sequence[WindowRequest]) -> CacheFigures: ...


# ---------------------------------------------------------------- periods
# Periods start at request.start and step by period_seconds. Callers should align start to a clock multiple
# of the period: Logs Insights bins are clock-aligned, and CloudWatch answers aligned windows best.
def _step(request: WindowRequest) -> timedelta:
    if request.period_seconds <= 0:
        raise ValueError(f"period_seconds must be positive, not {request.period_seconds}")
    if request.start.tzinfo is None or request.end.tzinfo is None:
        raise ValueError("window bounds must be timezone-aware")
    return timedelta(seconds=request.period_seconds)


def period_count(request: WindowRequest) -> int:
    """How many whole periods fit in [start, end); a trailing partial period is not reported."""
    return max(0, (request.end - request.start) // _step(request))


def period_starts(request: WindowRequest) -> list[datetime]:
    step = _step(request)
    start = request.start.astimezone(UTC)
    return [start + i * step for i in range(period_count(request))]


def window_end(request: WindowRequest) -> datetime:
    """End of the last whole period: what we ask AWS for, so no partial period is ever aggregated."""
    return request.start.astimezone(UTC) + period_count(request) * _step(request)


def period_index(request: WindowRequest, at: datetime) -> int | None:
    """Index of the period holding `at`, or None when `at` falls outside the whole periods of the window."""
    index = (at - request.start) // _step(request)
    return index if 0 <= index < period_count(request) else None


# ---------------------------------------------------------------- query plan
@dataclass(frozen=True, slots=True)
class PlannedQuery:
    """One MetricDataQuery and what its answer means."""

    id: str
    request_index: int
    role: Role
    version: str
    metric: MetricSpec
    query: MetricDataQueryTypeDef


def query_id(request_index: int, role: Role, metric: MetricSpec) -> str:
    # Ids must match ^[a-z][a-zA-Z0-9_]*$ and be unique in a call; the request index makes them unique in
    # the whole round and the rest keeps them readable in CloudWatch's own error messages.
    return f"d{request_index}_{role}_{metric.key}"


def lambda_dimensions(function: str, alias: str, version: str) -> list[DimensionTypeDef]:
    return [
        {"Name": "FunctionName", "Value": function},
        {"Name": "Resource", "Value": f"{function}:{alias}"},
        {"Name": "ExecutedVersion", "Value": version},
    ]


def plan_queries(requests: Sequence[WindowRequest]) -> list[PlannedQuery]:
    """Every query of the round: per request, per version, per metric. Requests without a whole period ask
    for nothing."""
    ids = [r.deployment_id for r in requests]
    if len(set(ids)) != len(ids):
        raise ValueError(f"each deployment may be requested once per round: {sorted(ids)}")
    planned: list[PlannedQuery] = []
    for index, request in enumerate(requests):
        if period_count(request) == 0:
            continue
        for role in ROLES:
            version = request.canary_version if role == "canary" else request.stable_version
            for metric in METRICS:
                qid = query_id(index, role, metric)
                query: MetricDataQueryTypeDef = {
                    "Id": qid,
                    "Label": f"{request.deployment_id} {role} v{version} {metric.key}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": NAMESPACE,
                            "MetricName": metric.metric_name,
                            "Dimensions": lambda_dimensions(request.function, request.alias, version),
                        },
                        "Period": request.period_seconds,
                        "Stat": metric.stat,
                    },
                    "ReturnData": True,
                }
                planned.append(PlannedQuery(qid, index, role, version, metric, query))
    return planned


def _chunks(items: Sequence[PlannedQuery], size: int) -> Iterator[Sequence[PlannedQuery]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ---------------------------------------------------------------- adapter
Series = dict[int, float]  # period index -> datapoint


class CloudWatchMetrics:
    """MetricsPort over CloudWatch GetMetricData (and, optionally, a cache figures source)."""

    def __init__(self, cloudwatch: CloudWatchClient, cache: CacheFiguresSource | None = None) -> None:
        self._cloudwatch = cloudwatch
        self._cache = cache

    def fetch(self, requests: Sequence[WindowRequest]) -> dict[str, list[PeriodFigures]]:
        planned = plan_queries(requests)
        values = self._get_metric_data(requests, planned)
        series: dict[tuple[int, Role], dict[str, Series]] = defaultdict(dict)
        for pq in planned:
            series[(pq.request_index, pq.role)][pq.metric.key] = values[pq.id]
        cache = self._cache_figures(requests)
        return {
            request.deployment_id: _period_figures(
                request,
                series[(index, "canary")],
                series[(index, "stable")],
                cache.get(request.deployment_id) if request.log_group else None,
            )
            for index, request in enumerate(requests)
        }

    # -------------------------------------------------------------- GetMetricData
    def _get_metric_data(
        self, requests: Sequence[WindowRequest], planned: Sequence[PlannedQuery]
    ) -> dict[str, Series]:
        """query id -> its datapoints, placed in the periods of the query's own request."""
        by_window: dict[tuple[datetime, datetime], list[PlannedQuery]] = defaultdict(list)
        for pq in planned:
            request = requests[pq.request_index]
            by_window[(request.start.astimezone(UTC), window_end(request))].append(pq)

        values: dict[str, Series] = {pq.id: {} for pq in planned}
        owners = {pq.id: requests[pq.request_index] for pq in planned}
        for (start, end), queries in by_window.items():
            for chunk in _chunks(queries, MAX_QUERIES_PER_CALL):
                for result in self._results(chunk, start, end):
                    qid = result.get("Id", "")
                    if qid not in owners:
                        log.warning("GetMetricData returned an unknown query id %r; ignored", qid)
                        continue
                    status = result.get("StatusCode", "Complete")
                    if status in ("InternalError", "Forbidden"):
                        log.warning(
                            "GetMetricData query %s: %s %s", qid, status, _messages(result.get("Messages"))
                        )
                    # A query's datapoints may be spread over several pages: merge, never replace.
                    for ts, value in zip(
                        result.get("Timestamps", []), result.get("Values", []), strict=False
                    ):
                        slot = period_index(owners[qid], ts.astimezone(UTC))
                        if slot is not None:
                            values[qid][slot] = value
        return values

    def _results(
        self, chunk: Sequence[PlannedQuery], start: datetime, end: datetime
    ) -> Iterator[MetricDataResultTypeDef]:
        """The results of one call, every page of it."""
        params: GetMetricDataInputTypeDef = {
            "MetricDataQueries": [pq.query for pq in chunk],
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        while True:
            try:
                page = self._cloudwatch.get_metric_data(**params)
            except (ClientError, BotoCoreError) as error:
                raise AwsFailure(f"CloudWatch GetMetricData failed: {_describe(error)}") from error
            if page.get("Messages"):
                # e.g. partial data or a limit hit: worth knowing, never worth failing the tick over.
                log.warning("GetMetricData messages: %s", _messages(page.get("Messages")))
            yield from page.get("MetricDataResults", [])
            token = page.get("NextToken")
            if not token:
                return
            params["NextToken"] = token

    # -------------------------------------------------------------- cache
    def _cache_figures(self, requests: Sequence[WindowRequest]) -> CacheFigures:
        with_logs = [r for r in requests if r.log_group and period_count(r) > 0]
        if self._cache is None or not with_logs:
            return {}
        return self._cache.fetch(with_logs)


def _period_figures(
    request: WindowRequest,
    canary: Mapping[str, Series],
    stable: Mapping[str, Series],
    cache: Mapping[tuple[str, datetime], CacheCounts] | None,
) -> list[PeriodFigures]:
    step = timedelta(seconds=request.period_seconds)
    return [
        PeriodFigures(
            start=start,
            end=start + step,
            canary=_version_figures(request.canary_version, canary, slot, start, cache),
            stable=_version_figures(request.stable_version, stable, slot, start, cache),
        )
        for slot, start in enumerate(period_starts(request))
    ]


def _version_figures(
    version: str,
    series: Mapping[str, Series],
    slot: int,
    start: datetime,
    cache: Mapping[tuple[str, datetime], CacheCounts] | None,
) -> VersionFigures:
    """One version in one period. `cache` None = no cache figures for this deployment (no log group, or
    the query failed); a period absent from it had no cache traffic."""
    counts = None if cache is None else cache.get((version, start), NO_CACHE_TRAFFIC)

    def point(key: str) -> float | None:
        return series[key].get(slot) if key in series else None

    def count(key: str) -> float:
        # No datapoint for a count means nothing happened: Lambda publishes no zeros.
        return point(key) or 0.0

    return VersionFigures(
        version=version,
        invocations=count("invocations"),
        errors=count("errors"),
        throttles=count("throttles"),
        p50_ms=point("p50_ms"),
        p95_ms=point("p95_ms"),
        p99_ms=point("p99_ms"),
        cache_hits=None if counts is None else counts.hits,
        cache_misses=None if counts is None else counts.misses,
        cache_miss_p95_ms=None if counts is None else counts.miss_p95_ms,
    )


def _messages(messages: Sequence[MessageDataTypeDef] | None) -> str:
    return "; ".join(f"{m.get('Code', '?')}: {m.get('Value', '')}" for m in messages or [])


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code', 'Unknown')}: {info.get('Message', '')}".rstrip(": ")
    return str(error)
