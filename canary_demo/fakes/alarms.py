"""In-memory AlarmsPort: records the definitions the real adapter would send; tests can fire alarms."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.aws.alarms import (
    CANARY_METRICS,
    alarm_is_about,
    alarm_name,
    cache_filter_name,
    cache_metric_filter_requests,
    canary_alarm_requests,
    dashboard_body,
    dashboard_name,
    dashboard_url,
)
from bot.model import Deployment, Thresholds

AlarmStateValue = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


@dataclass
class FakeAlarm:
    name: str
    definition: dict[str, Any]  # the PutMetricAlarm arguments
    state: AlarmStateValue = "OK"


@dataclass
class FakeAlarms:
    """AlarmsPort in memory. `alarms` and `dashboards` are open for tests to read."""

    region: str = "us-east-1"
    alarms: dict[str, FakeAlarm] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (log group, filter name) -> the PutMetricFilter arguments
    metric_filters: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------ AlarmsPort
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
        requests = canary_alarm_requests(
            deployment,
            topic_arn=topic_arn,
            thresholds=thresholds,
            period_seconds=period_seconds,
            evaluation_periods=evaluation_periods,
            log_group=log_group,
        )
        filters = (
            cache_metric_filter_requests(deployment, log_group)
            if log_group is not None and thresholds.cache_hit_rate is not None
            else []
        )
        with self._lock:
            for metric_filter in filters:
                self.metric_filters[(metric_filter["logGroupName"], metric_filter["filterName"])] = (
                    metric_filter
                )
            for request in requests:
                # Like PutMetricAlarm, overwriting keeps nothing of the old alarm: it starts OK again.
                self.alarms[request["AlarmName"]] = FakeAlarm(request["AlarmName"], request)
        return [r["AlarmName"] for r in requests]

    def delete_alarms(self, names: Sequence[str]) -> None:
        with self._lock:
            for name in names:
                self.alarms.pop(name, None)

    def delete_canary_alarms(self, deployment: Deployment, *, log_group: str | None = None) -> None:
        self.delete_alarms([alarm_name(deployment, metric) for metric in CANARY_METRICS])
        if log_group is not None:
            with self._lock:
                for result in ("hit", "miss"):
                    self.metric_filters.pop((log_group, cache_filter_name(deployment, result)), None)

    def alarms_in_alarm(self, function: str) -> list[str]:
        with self._lock:
            return sorted(
                a.name
                for a in self.alarms.values()
                if a.state == "ALARM" and alarm_is_about({"AlarmName": a.name, **a.definition}, function)
            )

    def put_dashboard(
        self,
        deployment: Deployment,
        *,
        thresholds: Thresholds | None = None,
        log_group: str | None = None,
    ) -> str:
        name = dashboard_name(deployment)
        body = dashboard_body(deployment, region=self.region, thresholds=thresholds, log_group=log_group)
        with self._lock:
            self.dashboards[name] = body
        return dashboard_url(self.region, name)

    # ------------------------------------------------------------ test controls
    def set_state(self, name: str, state: AlarmStateValue) -> None:
        """What CloudWatch does when the metric breaches (or recovers). KeyError for an unknown alarm."""
        with self._lock:
            self.alarms[name].state = state

    def add_alarm(self, name: str, *, function: str | None = None, state: AlarmStateValue = "OK") -> None:
        """An alarm someone else owns (say, the team's own), optionally on FunctionName=function."""
        dimensions = [{"Name": "FunctionName", "Value": function}] if function else []
        with self._lock:
            self.alarms[name] = FakeAlarm(name, {"AlarmName": name, "Dimensions": dimensions}, state)
