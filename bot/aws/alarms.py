"""CloudWatch alarms and dashboard of one canary (AlarmsPort).

The alarms watch the canary version only, through the per-version metrics Lambda publishes for an alias
(dimensions FunctionName, Resource="function:alias", ExecutedVersion), so stable traffic cannot hide a bad
canary. The request builders below are pure, and the fake records the very same definitions.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws.cache_logs import CACHE_HIT_LINE, CACHE_MISS_LINE
from bot.model import Deployment, Thresholds
from bot.ports import AwsFailure
from bot.units import format_percent

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_logs import CloudWatchLogsClient

log = logging.getLogger(__name__)

NAME_PREFIX: Final = "canary-bot"
NAMESPACE: Final = "AWS/Lambda"
ERROR_RATE: Final = "error-rate"
P95: Final = "p95"
CACHE_HIT_RATE: Final = "cache-hit-rate"
CANARY_METRICS: Final = (ERROR_RATE, P95, CACHE_HIT_RATE)
CACHE_NAMESPACE: Final = "canary-bot/cache"
DELETE_BATCH: Final = 100  # DeleteAlarms takes at most 100 names
DASHBOARD_PERIOD_SECONDS: Final = 300  # the seed's 5-minute buckets
DASHBOARD_LOOKBACK: Final = timedelta(hours=1)  # show stable's baseline before the canary started
_NOT_FOUND_CODES: Final = frozenset(
    {"ResourceNotFound", "ResourceNotFoundException", "DashboardNotFoundError"}
)
_DASHBOARD_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_LOG_GROUP = re.compile(r"^[A-Za-z0-9_\-/.#]{1,512}$")


# ---------------------------------------------------------------- names
def alarm_name(deployment: Deployment, metric: str) -> str:
    """'canary-bot/production-lego-api/production/v2/error-rate': function, alias and canary version."""
    return f"{NAME_PREFIX}/{deployment.function}/{deployment.alias}/v{deployment.canary_version}/{metric}"


def dashboard_name(deployment: Deployment) -> str:
    """'canary-bot-<function>-<alias>-<deployment id>', with anything outside A-Za-z0-9-_ replaced."""
    raw = f"{NAME_PREFIX}-{deployment.function}-{deployment.alias}-{deployment.id}"
    return _DASHBOARD_UNSAFE.sub("-", raw)[:255]


def dashboard_url(region: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={name}"


def version_dimensions(deployment: Deployment, version: str) -> list[dict[str, str]]:
    """The dimensions of one version's metrics behind the deployment's alias."""
    return [
        {"Name": "FunctionName", "Value": deployment.function},
        {"Name": "Resource", "Value": f"{deployment.function}:{deployment.alias}"},
        {"Name": "ExecutedVersion", "Value": version},
    ]


# ---------------------------------------------------------------- the cache hit rate, from the logs
def cache_filter_name(deployment: Deployment, result: str) -> str:
    """'canary-bot/production-lego-api/production/cache-hit': one pair per function:alias, reused."""
    return f"{NAME_PREFIX}/{deployment.function}/{deployment.alias}/cache-{result}"


_PLURAL: Final = {"hit": "hits", "miss": "misses"}


def cache_metric_name(deployment: Deployment, result: str) -> str:
    """'production-lego-api/production/hits' in the canary-bot/cache namespace."""
    return f"{deployment.function}/{deployment.alias}/{_PLURAL[result]}"


def cache_metric_filter_requests(deployment: Deployment, log_group: str) -> list[dict[str, Any]]:
    """PutMetricFilter arguments counting the seed's "Redis cache hit" / "Redis cache miss" log lines (the
    lines bot.aws.cache_logs reads). A filter cannot read the log stream's name, where Lambda writes the
    version: these count every version of the function's log group, so the alarm watches the alias's overall
    hit rate; the per-version judgement stays with the soak's Logs Insights query."""
    if not _LOG_GROUP.match(log_group):
        raise ValueError(f"not a log group name: {log_group!r}")
    return [
        {
            "logGroupName": log_group,
            "filterName": cache_filter_name(deployment, result),
            "filterPattern": f'"{phrase}"',
            "metricTransformations": [
                {
                    "metricName": cache_metric_name(deployment, result),
                    "metricNamespace": CACHE_NAMESPACE,
                    "metricValue": "1",
                    "unit": "Count",
                }
            ],
        }
        for result, phrase in (("hit", CACHE_HIT_LINE), ("miss", CACHE_MISS_LINE))
    ]


def _cache_metric_query(query_id: str, deployment: Deployment, result: str, period: int) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": CACHE_NAMESPACE, "MetricName": cache_metric_name(deployment, result)},
            "Period": period,
            "Stat": "Sum",
        },
        "ReturnData": False,
    }


# ---------------------------------------------------------------- alarm definitions
def canary_alarm_requests(
    deployment: Deployment,
    *,
    topic_arn: str | None,
    thresholds: Thresholds,
    period_seconds: int = 300,
    evaluation_periods: int = 2,
    log_group: str | None = None,
) -> list[dict[str, Any]]:
    """PutMetricAlarm arguments for the canary's alarms; a metric whose threshold is None gets none, and the
    cache hit rate one only with a log group (its metric comes from cache_metric_filter_requests)."""
    if period_seconds < 60 or period_seconds % 60:
        raise ValueError(f"alarm period must be a positive multiple of 60 s, not {period_seconds}")
    if evaluation_periods < 1:
        raise ValueError("evaluation_periods must be at least 1")
    dimensions = version_dimensions(deployment, deployment.canary_version)
    common: dict[str, Any] = {
        "EvaluationPeriods": evaluation_periods,
        "DatapointsToAlarm": evaluation_periods,  # every period must breach: one bad bucket is noise
        "ComparisonOperator": "GreaterThanThreshold",
        # A quiet canary (no invocations) is not a failing one; the judge reports "no data" separately.
        "TreatMissingData": "notBreaching",
        "Tags": _tags(deployment),
    }
    if topic_arn:
        common |= {"ActionsEnabled": True, "AlarmActions": [topic_arn], "OKActions": [topic_arn]}
    target = f"{deployment.function}:{deployment.alias} v{deployment.canary_version}"
    window = f"{evaluation_periods} x {period_seconds // 60} min"
    requests: list[dict[str, Any]] = []
    if thresholds.error_rate is not None:
        requests.append(
            {
                "AlarmName": alarm_name(deployment, ERROR_RATE),
                "AlarmDescription": _description(
                    deployment,
                    f"error rate of {target} above {format_percent(thresholds.error_rate)} ({window})",
                ),
                "Metrics": [
                    _metric_query("m_errors", "Errors", dimensions, period_seconds),
                    _metric_query("m_invocations", "Invocations", dimensions, period_seconds),
                    {
                        "Id": "e1",
                        "Expression": "m_errors / m_invocations",
                        "Label": f"v{deployment.canary_version} error rate",
                        "ReturnData": True,
                    },
                ],
                "Threshold": thresholds.error_rate,
                **common,
            }
        )
    if thresholds.p95_ms is not None:
        requests.append(
            {
                "AlarmName": alarm_name(deployment, P95),
                "AlarmDescription": _description(
                    deployment, f"p95 duration of {target} above {thresholds.p95_ms:g} ms ({window})"
                ),
                "Namespace": NAMESPACE,
                "MetricName": "Duration",
                "Dimensions": dimensions,
                "ExtendedStatistic": "p95",
                "Period": period_seconds,
                "Threshold": thresholds.p95_ms,
                **common,
            }
        )
    if thresholds.cache_hit_rate is not None and log_group is not None:
        requests.append(
            {
                "AlarmName": alarm_name(deployment, CACHE_HIT_RATE),
                "AlarmDescription": _description(
                    deployment,
                    f"cache hit rate of {deployment.function}:{deployment.alias} (all versions, from the "
                    f"'{CACHE_HIT_LINE}' / '{CACHE_MISS_LINE}' lines of {log_group}) below "
                    f"{format_percent(thresholds.cache_hit_rate)} ({window})",
                ),
                "Metrics": [
                    _cache_metric_query("m_hits", deployment, "hit", period_seconds),
                    _cache_metric_query("m_misses", deployment, "miss", period_seconds),
                    {
                        "Id": "e1",
                        "Expression": "FILL(m_hits, 0) / (FILL(m_hits, 0) + FILL(m_misses, 0))",
                        "Label": f"{deployment.function}:{deployment.alias} cache hit rate",
                        "ReturnData": True,
                    },
                ],
                "Threshold": thresholds.cache_hit_rate,
                **common,
                "ComparisonOperator": "LessThanThreshold",
            }
        )
    return requests


def _metric_query(
    query_id: str, metric: str, dimensions: list[dict[str, str]], period: int
) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
            "Period": period,
            "Stat": "Sum",
        },
        "ReturnData": False,
    }


def _description(deployment: Deployment, what: str) -> str:
    return f"canary-bot deployment {deployment.id}: {what}. Created by canary-bot; deleted when it ends."[
        :1024
    ]


def _tags(deployment: Deployment) -> list[dict[str, str]]:
    return [
        {"Key": "canary-bot:deployment", "Value": deployment.id},
        {"Key": "canary-bot:function", "Value": deployment.function},
        {"Key": "canary-bot:alias", "Value": deployment.alias},
        {"Key": "canary-bot:version", "Value": deployment.canary_version},
    ]


# ---------------------------------------------------------------- "about this function"
def alarm_is_about(alarm: Mapping[str, Any], function: str) -> bool:
    """True when an alarm's metrics carry FunctionName=function (or Resource=function[:qualifier]),
    or when its name holds the function name as a whole word (so 'api' does not match 'rapid-api2')."""
    dimensions = list(alarm.get("Dimensions") or [])
    for query in alarm.get("Metrics") or []:
        dimensions += query.get("MetricStat", {}).get("Metric", {}).get("Dimensions") or []
    for dim in dimensions:
        name, value = dim.get("Name"), dim.get("Value", "")
        if name == "FunctionName" and value == function:
            return True
        if name == "Resource" and (value == function or value.startswith(f"{function}:")):
            return True
    name = str(alarm.get("AlarmName", ""))
    if name.startswith(f"{NAME_PREFIX}/"):  # ours: the function is the second path segment, exactly
        return name.split("/")[1] == function
    word = rf"(?<![A-Za-z0-9]){re.escape(function)}(?![A-Za-z0-9])"
    return re.search(word, name) is not None


# ---------------------------------------------------------------- dashboard
def dashboard_body(
    deployment: Deployment,
    *,
    region: str,
    thresholds: Thresholds | None = None,
    log_group: str | None = None,
) -> dict[str, Any]:
    """The seed's dashboard, per version: error rate, latency percentiles, cache performance."""
    cache_alarmed = log_group is not None and thresholds is not None and thresholds.cache_hit_rate is not None
    log_group = log_group or f"/aws/lambda/{deployment.function}"
    if not _LOG_GROUP.match(log_group):
        raise ValueError(f"not a log group name: {log_group!r}")
    versions = (("canary", deployment.canary_version), ("stable", deployment.stable_version))
    start = deployment.created_at - DASHBOARD_LOOKBACK
    header = (
        f"## Canary of {deployment.function}:{deployment.alias}\n"
        f"Canary **v{deployment.canary_version}** beside stable **v{deployment.stable_version}** · "
        f"deployment `{deployment.id}` · started by {deployment.created_by}"
    )
    widgets: list[dict[str, Any]] = [
        {"type": "text", "x": 0, "y": 0, "width": 24, "height": 2, "properties": {"markdown": header}},
        _widget(0, 2, 12, _error_rate_properties(deployment, versions, region, thresholds)),
        _widget(12, 2, 12, _latency_properties(deployment, versions, region, thresholds)),
        {
            "type": "log",
            "x": 0,
            "y": 8,
            "width": 24,
            "height": 6,
            "properties": {
                "title": "Cache performance per version (Logs Insights)",
                "region": region,
                "view": "table",
                "query": cache_insights_query(log_group, [v for _, v in versions]),
            },
        },
    ]
    if cache_alarmed and thresholds is not None and thresholds.cache_hit_rate is not None:
        widgets.append(_widget(0, 14, 24, _cache_hit_rate_properties(deployment, region, thresholds)))
    return {
        "start": start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "periodOverride": "inherit",
        "widgets": widgets,
    }


def _cache_hit_rate_properties(deployment: Deployment, region: str, thresholds: Thresholds) -> dict[str, Any]:
    """The cache alarm's own figure: hits / (hits + misses) from the metric filters, with its threshold."""
    lines: list[list[str | dict[str, Any]]] = [
        [CACHE_NAMESPACE, cache_metric_name(deployment, "hit"), {"id": "hits", "visible": False}],
        [CACHE_NAMESPACE, cache_metric_name(deployment, "miss"), {"id": "misses", "visible": False}],
        [
            {
                "expression": "100 * FILL(hits, 0) / (FILL(hits, 0) + FILL(misses, 0))",
                "id": "hit_rate",
                "label": "cache hit rate % (all versions)",
            }
        ],
    ]
    limit = thresholds.cache_hit_rate or 0.0
    return {
        "title": "Cache hit rate (the cache alarm's metric)",
        "view": "timeSeries",
        "stacked": False,
        "region": region,
        "period": DASHBOARD_PERIOD_SECONDS,
        "stat": "Sum",
        "metrics": lines,
        "yAxis": {"left": {"label": "Hit rate (%)", "min": 0, "max": 100}},
        "annotations": {"horizontal": [{"label": "rollback threshold", "value": limit * 100}]},
    }


def cache_insights_query(log_group: str, versions: Sequence[str]) -> str:
    """The seed's cache query, split per version by the "[<version>]" Lambda puts in each log stream name."""
    wanted = ", ".join(json.dumps(v) for v in versions)
    return "\n".join(
        [
            f"SOURCE '{log_group}' | fields @timestamp, @message, @logStream",
            "| filter @message like /Redis cache/",
            r"| parse @logStream /\[(?<version>[^\]]+)\]/",
            f"| filter version in [{wanted}]",
            '| stats count(*) as total, sum(strcontains(@message, "cache hit")) as hits,'
            ' sum(strcontains(@message, "cache miss")) as misses,'
            ' sum(strcontains(@message, "cache hit")) / count(*) * 100 as hit_rate_pct by version, bin(5m)',
        ]
    )


def _widget(x: int, y: int, width: int, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "metric", "x": x, "y": y, "width": width, "height": 6, "properties": properties}


def _metric_line(
    deployment: Deployment, version: str, metric: str, options: dict[str, Any]
) -> list[str | dict[str, Any]]:
    line: list[str | dict[str, Any]] = [NAMESPACE, metric]
    for dim in version_dimensions(deployment, version):
        line += [dim["Name"], dim["Value"]]
    return [*line, options]


def _error_rate_properties(
    deployment: Deployment,
    versions: Sequence[tuple[str, str]],
    region: str,
    thresholds: Thresholds | None,
) -> dict[str, Any]:
    metrics: list[list[str | dict[str, Any]]] = []
    for role, version in versions:
        label = f"v{version} ({role})"
        metrics += [
            _metric_line(deployment, version, "Errors", {"id": f"errors_{role}", "label": f"{label} errors"}),
            _metric_line(
                deployment,
                version,
                "Invocations",
                {"id": f"invocations_{role}", "label": f"{label} invocations"},
            ),
            [
                {
                    "expression": f"100 * errors_{role} / invocations_{role}",
                    "id": f"rate_{role}",
                    "label": f"{label} error rate %",
                    "yAxis": "right",
                }
            ],
        ]
    properties: dict[str, Any] = {
        "title": "Error rate (5-minute buckets)",
        "view": "timeSeries",
        "stacked": False,
        "region": region,
        "period": DASHBOARD_PERIOD_SECONDS,
        "stat": "Sum",
        "metrics": metrics,
        "yAxis": {"left": {"label": "Count", "min": 0}, "right": {"label": "Error rate (%)", "min": 0}},
    }
    if thresholds and thresholds.error_rate is not None:
        limit = {"label": "rollback threshold", "value": thresholds.error_rate * 100, "yAxis": "right"}
        properties["annotations"] = {"horizontal": [limit]}
    return properties


def _latency_properties(
    deployment: Deployment,
    versions: Sequence[tuple[str, str]],
    region: str,
    thresholds: Thresholds | None,
) -> dict[str, Any]:
    metrics = [
        _metric_line(deployment, version, "Duration", {"stat": stat, "label": f"v{version} ({role}) {stat}"})
        for role, version in versions
        for stat in ("p50", "p95", "p99")
    ]
    properties: dict[str, Any] = {
        "title": "Latency percentiles",
        "view": "timeSeries",
        "stacked": False,
        "region": region,
        "period": DASHBOARD_PERIOD_SECONDS,
        "metrics": metrics,
        "yAxis": {"left": {"label": "Duration (ms)", "min": 0}},
    }
    limits = []
    if thresholds and thresholds.p95_ms is not None:
        limits.append({"label": "p95 rollback threshold", "value": thresholds.p95_ms})
    if thresholds and thresholds.p99_ms is not None:
        limits.append({"label": "p99 rollback threshold", "value": thresholds.p99_ms})
    if limits:
        properties["annotations"] = {"horizontal": limits}
    return properties


# ---------------------------------------------------------------- adapter
class CloudWatchAlarms:
    """AlarmsPort on CloudWatch. Every AWS error leaves as AwsFailure."""

    def __init__(
        self, cloudwatch: CloudWatchClient, region: str, *, logs: CloudWatchLogsClient | None = None
    ) -> None:
        self._cw = cloudwatch
        self._region = region
        self._logs = logs  # for the cache hit rate's metric filters; None: no cache alarm

    def create_canary_alarms(
        self,
        deployment: Deployment,
        *,
        topic_arn: str | None,
        thresholds: Thresholds,
        period_seconds: int = 300,
        evaluation_periods: int = 2,
        log_group: str | None = None,
    ) -> list[str]:
        """Create (or overwrite) the canary's alarms; on a failure remove the ones already made.

        With a log group (and a logs client) also the cache hit rate's metric filters, then its alarm. That part
        is best effort: a log group that does not exist yet (a function that never logged) or a refused filter
        costs the cache alarm only (logged), never the error-rate and p95 alarms."""
        if self._logs is None:
            log_group = None
        if (
            log_group is not None
            and thresholds.cache_hit_rate is not None
            and not self._put_cache_filters(deployment, log_group)
        ):
            log_group = None
        requests = canary_alarm_requests(
            deployment,
            topic_arn=topic_arn,
            thresholds=thresholds,
            period_seconds=period_seconds,
            evaluation_periods=evaluation_periods,
            log_group=log_group,
        )
        created: list[str] = []
        try:
            for request in requests:
                with _aws(f"PutMetricAlarm {request['AlarmName']}"):
                    self._cw.put_metric_alarm(**request)
                created.append(request["AlarmName"])
        except AwsFailure:
            self._delete_quietly(created)
            if log_group is not None:
                self._delete_filters_quietly(deployment, log_group)
            raise
        return created

    def _put_cache_filters(self, deployment: Deployment, log_group: str) -> bool:
        """The two metric filters of the cache alarm; False (logged, and none left behind) when refused."""
        if self._logs is None:
            return False
        try:
            for metric_filter in cache_metric_filter_requests(deployment, log_group):
                with _aws(f"PutMetricFilter {metric_filter['filterName']}", service="Logs"):
                    self._logs.put_metric_filter(**metric_filter)
        except AwsFailure as exc:
            log.warning("no cache hit rate alarm for %s: %s", deployment.id, exc)
            self._delete_filters_quietly(deployment, log_group)
            return False
        return True

    def delete_alarms(self, names: Sequence[str]) -> None:
        """Delete by name; names that do not exist are ignored (DeleteAlarms does the same)."""
        unique = list(dict.fromkeys(names))
        for start in range(0, len(unique), DELETE_BATCH):
            with _aws("DeleteAlarms"):
                self._cw.delete_alarms(AlarmNames=unique[start : start + DELETE_BATCH])

    def delete_canary_alarms(self, deployment: Deployment, *, log_group: str | None = None) -> None:
        self.delete_alarms([alarm_name(deployment, metric) for metric in CANARY_METRICS])
        if log_group is not None:
            self._delete_cache_filters(deployment, log_group)

    def _delete_cache_filters(self, deployment: Deployment, log_group: str) -> None:
        if self._logs is None:
            return
        for result in ("hit", "miss"):
            name = cache_filter_name(deployment, result)
            try:
                with _aws(f"DeleteMetricFilter {name}", service="Logs"):
                    self._logs.delete_metric_filter(logGroupName=log_group, filterName=name)
            except AwsFailure as exc:
                if "ResourceNotFoundException" not in str(exc):
                    raise

    def alarms_in_alarm(self, function: str) -> list[str]:
        names: set[str] = set()
        with _aws("DescribeAlarms"):
            pages = self._cw.get_paginator("describe_alarms").paginate(
                StateValue="ALARM", AlarmTypes=["MetricAlarm"]
            )
            for page in pages:
                for alarm in page.get("MetricAlarms", []):
                    if alarm.get("StateValue") == "ALARM" and alarm_is_about(alarm, function):
                        names.add(alarm["AlarmName"])
        return sorted(names)

    def put_dashboard(
        self,
        deployment: Deployment,
        *,
        thresholds: Thresholds | None = None,
        log_group: str | None = None,
    ) -> str:
        name = dashboard_name(deployment)
        body = dashboard_body(deployment, region=self._region, thresholds=thresholds, log_group=log_group)
        with _aws(f"PutDashboard {name}"):
            answer = self._cw.put_dashboard(DashboardName=name, DashboardBody=json.dumps(body))
        for message in answer.get("DashboardValidationMessages", []):
            log.warning("dashboard %s: %s (%s)", name, message.get("Message"), message.get("DataPath"))
        return dashboard_url(self._region, name)

    def _delete_filters_quietly(self, deployment: Deployment, log_group: str) -> None:
        try:
            self._delete_cache_filters(deployment, log_group)
        except AwsFailure:
            log.exception("could not remove the cache metric filters of %s", deployment.id)

    def _delete_quietly(self, names: Sequence[str]) -> None:
        try:
            self.delete_alarms(names)
        except AwsFailure:
            log.exception("could not remove partly created alarms %s", list(names))


@contextmanager
def _aws(action: str, *, service: str = "CloudWatch") -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise _failure(action, exc, service) from exc


def _failure(action: str, exc: ClientError | BotoCoreError, service: str = "CloudWatch") -> AwsFailure:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return AwsFailure(f"{service} {action} failed: {error.get('Code')}: {error.get('Message')}")
    return AwsFailure(f"{service} {action} failed: {exc}")
