"""Sinks of the traffic model that write what AWS would hold (into moto, for the demo).

CloudWatch datapoints per version, a few of the log lines the Logs Insights cache query reads, and the canary
alarms evaluated as CloudWatch would (moto stores alarms but never evaluates them), publishing the alarm JSON
to the SNS topic when one fires.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from canary_demo.simulator import Served

MINUTE = timedelta(minutes=1)


@dataclass
class CloudWatchSink:
    """Invocations, Errors and Duration per version, as Lambda publishes them (ExecutedVersion dimension)."""

    cloudwatch: Any

    def served(self, s: Served) -> None:
        f = s.figures
        dims = [
            {"Name": "FunctionName", "Value": s.function},
            {"Name": "Resource", "Value": f"{s.function}:{s.alias}"},
            {"Name": "ExecutedVersion", "Value": s.version},
        ]
        data: list[dict[str, Any]] = [
            {"MetricName": "Invocations", "Dimensions": dims, "Timestamp": s.at, "Value": f.invocations},
            {"MetricName": "Errors", "Dimensions": dims, "Timestamp": s.at, "Value": f.errors},
        ]
        if f.durations_ms:
            durations = list(f.durations_ms[:150])
            data.append(
                {"MetricName": "Duration", "Dimensions": dims, "Timestamp": s.at, "Values": durations}
            )
        self.cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data)


@dataclass
class LogsSink:
    """A few of the log lines the Logs Insights cache query reads (the stream name carries the version)."""

    logs: Any

    def served(self, s: Served) -> None:
        f, b = s.figures, s.behaviour
        stamp = int(s.at.timestamp() * 1000)
        lines = [f"Redis cache hit latency=3ms (x{f.cache_hits})"] if f.cache_hits else []
        if f.cache_misses:
            lines.append(f"Redis cache miss latency={round(b.cache_miss_median_ms)}ms (x{f.cache_misses})")
        if errors := round(f.errors):
            lines.append(f"ERROR {b.error_message} (x{errors})")
        if not lines:
            return
        group = f"/aws/lambda/{s.function}"
        stream = f"{s.at:%Y/%m/%d}/[{s.version}]demo"
        with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
            self.logs.create_log_stream(logGroupName=group, logStreamName=stream)
        self.logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": stamp + i, "message": line} for i, line in enumerate(lines)],
        )


@dataclass
class AlarmEvaluator:
    """CloudWatch's part: keeps each version's invocations and errors a minute, and at every 5-minute boundary
    judges the canary error-rate alarms over their last periods, publishing the alarm notification to the
    topic when one enters ALARM."""

    cloudwatch: Any
    sns: Any
    topic_arn: str
    fired: list[str] = field(default_factory=list)
    # (version, minute start) → (invocations, errors)
    _counts: dict[tuple[str, datetime], tuple[float, float]] = field(default_factory=dict)

    def served(self, s: Served) -> None:
        per_minute = (s.figures.invocations / s.minutes, s.figures.errors / s.minutes)
        for i in range(s.minutes):
            self._counts[(s.version, s.at + i * MINUTE)] = per_minute

    def evaluate(self, now: datetime) -> list[str]:
        """Returns the alarms that fired at `now` (none off a 5-minute boundary)."""
        if now.minute % 5 or now.second:
            return []
        cw = self.cloudwatch
        fired = []
        for alarm in cw.describe_alarms(AlarmNamePrefix="canary-bot/")["MetricAlarms"]:
            if not alarm["AlarmName"].endswith("/error-rate") or alarm["StateValue"] == "ALARM":
                continue
            version = alarm["AlarmName"].split("/")[3].removeprefix("v")
            period = timedelta(seconds=300)
            periods = int(alarm.get("EvaluationPeriods", 2))
            rates = [self._error_rate(version, now - (i + 1) * period, period) for i in range(periods)]
            if all(r is not None and r > float(alarm["Threshold"]) for r in rates):
                reason = (
                    f"Threshold Crossed: {periods} out of the last {periods} datapoints "
                    f"[{', '.join(f'{r:.4f}' for r in rates if r is not None)}] were greater than the threshold "
                    f"({alarm['Threshold']})."
                )
                cw.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="ALARM", StateReason=reason)
                self.sns.publish(
                    TopicArn=self.topic_arn,
                    Subject=f'ALARM: "{alarm["AlarmName"]}" in US East (N. Virginia)'[:100],
                    Message=json.dumps(alarm_json(alarm, reason, now)),
                )
                fired.append(alarm["AlarmName"])
        self.fired += fired
        return fired

    def _error_rate(self, version: str, start: datetime, period: timedelta) -> float | None:
        invocations = errors = 0.0
        t = start
        while t < start + period:
            inv, err = self._counts.get((version, t), (0, 0))
            invocations += inv
            errors += err
            t += MINUTE
        return errors / invocations if invocations else None


def alarm_json(alarm: dict[str, Any], reason: str, now: datetime) -> dict[str, Any]:
    """The document CloudWatch puts in the SNS Message of an alarm action."""
    metrics = []
    for query in alarm.get("Metrics", []):
        entry: dict[str, Any] = {"Id": query["Id"], "ReturnData": query.get("ReturnData", True)}
        if "Expression" in query:
            entry["Expression"] = query["Expression"]
            entry["Label"] = query.get("Label", "")
        if "MetricStat" in query:
            stat = query["MetricStat"]
            entry["MetricStat"] = {
                "Metric": {
                    "Namespace": stat["Metric"]["Namespace"],
                    "MetricName": stat["Metric"]["MetricName"],
                    "Dimensions": [
                        {"value": d["Value"], "name": d["Name"]} for d in stat["Metric"]["Dimensions"]
                    ],
                },
                "Period": stat["Period"],
                "Stat": stat["Stat"],
            }
        metrics.append(entry)
    return {
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": "123456789012",
        "NewStateValue": "ALARM",
        "NewStateReason": reason,
        "StateChangeTime": now.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "Region": "US East (N. Virginia)",
        "AlarmArn": alarm.get("AlarmArn"),
        "OldStateValue": "OK",
        "Trigger": {
            "Metrics": metrics,
            "Period": 300,
            "EvaluationPeriods": alarm.get("EvaluationPeriods", 2),
            "ComparisonOperator": alarm.get("ComparisonOperator"),
            "Threshold": alarm.get("Threshold"),
            "TreatMissingData": alarm.get("TreatMissingData", "notBreaching"),
        },
    }
