"""Production traffic, compressed: one simulated minute at a time.

Invocations are split by the alias weights as Lambda reports them (so a rollback or a step shows at once);
each version has its own error rate, latency distribution and cache behaviour. What the versions did is
written where the bot reads it: per-version figures for the soak judge, CloudWatch datapoints and log lines in
the in-process AWS, and the canary alarms are evaluated as CloudWatch would (moto stores alarms but never
evaluates them), publishing the alarm JSON to the SNS topic when one fires.
"""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.ports import TrafficPort
from canary_demo.fakes.metrics import FakeMetrics

MINUTE = timedelta(minutes=1)
SAMPLES_PER_MINUTE = 120  # latency samples kept per version-minute: enough for a stable p99


@dataclass(frozen=True)
class Behaviour:
    """How one version behaves. Rates are fractions; latencies in ms (log-normal around p50)."""

    error_rate: float = 0.0002
    p50_ms: float = 18.0
    p95_ms: float = 42.0
    cache_hit_rate: float = 0.94
    cache_miss_p50_ms: float = 85.0
    error_message: str = "Internal error"

    def latency(self, rng: random.Random, p50: float, p95: float) -> float:
        # Log-normal with the given median and 95th percentile (z = 1.645).
        import math

        sigma = max(math.log(p95 / p50) / 1.645, 0.01)
        return rng.lognormvariate(math.log(p50), sigma)


IN_MEMORY_CACHE = Behaviour(p50_ms=24.0, p95_ms=55.0, cache_hit_rate=0.0)  # v1: no Redis, Lambda-local cache
REDIS = Behaviour()


@dataclass
class AlarmWiring:
    """The in-process AWS pieces the alarm evaluator uses."""

    cloudwatch: Any
    sns: Any
    topic_arn: str


class TrafficSimulator:
    def __init__(
        self,
        *,
        function: str,
        alias: str,
        traffic: TrafficPort,
        metrics: FakeMetrics,
        per_minute: int = 2000,
        behaviours: dict[str, Behaviour] | None = None,
        alarms: AlarmWiring | None = None,
        logs: Any | None = None,
        seed: int = 2124,
    ) -> None:
        self.function = function
        self.alias = alias
        self._traffic = traffic
        self._metrics = metrics
        self.per_minute = per_minute
        self.behaviours: dict[str, Behaviour] = dict(behaviours or {})
        self._alarms = alarms
        self._logs = logs
        self._rng = random.Random(seed)
        # (version, minute start) → (invocations, errors): what the alarm evaluator reads.
        self._counts: dict[tuple[str, datetime], tuple[int, int]] = {}
        self.fired: list[str] = []

    def behave(self, version: str, **changes: Any) -> None:
        self.behaviours[version] = replace(self.behaviours.get(version, REDIS), **changes)

    # ------------------------------------------------------------ one minute
    def minute(self, start: datetime, minutes: int = 1) -> dict[str, int]:
        """Simulate [start, start + minutes) (recorded at `start`); returns invocations per version."""
        alias = self._traffic.get_alias(self.function, self.alias)
        shares = {alias.version: 1 - sum(alias.weights.values()), **alias.weights}
        served: dict[str, int] = {}
        for version, share in shares.items():
            invocations = self._jitter(self.per_minute * minutes * share)
            if invocations <= 0:
                continue
            served[version] = invocations
            self._serve(version, start, invocations)
        return served

    def _serve(self, version: str, start: datetime, invocations: int) -> None:
        b = self.behaviours.get(version, REDIS)
        rng = self._rng
        errors = self._binomial(invocations, b.error_rate)
        samples = min(invocations, SAMPLES_PER_MINUTE)
        durations = [b.latency(rng, b.p50_ms, b.p95_ms) for _ in range(samples)]
        hits = self._binomial(invocations, b.cache_hit_rate)
        misses = invocations - hits if b.cache_hit_rate else 0
        miss_latencies = [
            b.latency(rng, b.cache_miss_p50_ms, b.cache_miss_p50_ms * 2) for _ in range(min(misses, 60))
        ]
        self._metrics.record(
            self.function,
            self.alias,
            version,
            start,
            invocations=invocations,
            errors=errors,
            durations_ms=durations,
            cache_hits=hits,
            cache_misses=misses,
            cache_miss_latencies=miss_latencies,
        )
        self._counts[(version, start)] = (invocations, errors)
        self._write_cloudwatch(version, start, invocations, errors, durations)
        self._write_logs(version, start, b, errors, hits, misses)

    def _binomial(self, n: int, p: float) -> int:
        """How many of n requests did something with probability p (normal approximation when n is large)."""
        if p <= 0:
            return 0
        if n < 1000:
            return sum(1 for _ in range(n) if self._rng.random() < p)
        mean = n * p
        return min(n, max(0, round(self._rng.gauss(mean, (mean * (1 - p)) ** 0.5))))

    def _jitter(self, expected: float) -> int:
        return max(0, round(expected * self._rng.uniform(0.9, 1.1)))

    # ------------------------------------------------------------ what AWS would hold
    def _write_cloudwatch(
        self, version: str, start: datetime, invocations: int, errors: int, durations: list[float]
    ) -> None:
        if self._alarms is None:
            return
        dims = [
            {"Name": "FunctionName", "Value": self.function},
            {"Name": "Resource", "Value": f"{self.function}:{self.alias}"},
            {"Name": "ExecutedVersion", "Value": version},
        ]
        self._alarms.cloudwatch.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {"MetricName": "Invocations", "Dimensions": dims, "Timestamp": start, "Value": invocations},
                {"MetricName": "Errors", "Dimensions": dims, "Timestamp": start, "Value": errors},
                {"MetricName": "Duration", "Dimensions": dims, "Timestamp": start, "Values": durations[:150]},
            ],
        )

    def _write_logs(
        self, version: str, start: datetime, b: Behaviour, errors: int, hits: int, misses: int
    ) -> None:
        """A few of the log lines the Logs Insights cache query reads (the stream name carries the version)."""
        if self._logs is None:
            return
        stamp = int(start.timestamp() * 1000)
        lines = [f"Redis cache hit latency=3ms (x{hits})"] if hits else []
        if misses and b.cache_hit_rate:
            lines.append(f"Redis cache miss latency={round(b.cache_miss_p50_ms)}ms (x{misses})")
        if errors:
            lines.append(f"ERROR {b.error_message} (x{errors})")
        if not lines:
            return
        stream = f"{start:%Y/%m/%d}/[{version}]demo"
        with contextlib.suppress(self._logs.exceptions.ResourceAlreadyExistsException):
            self._logs.create_log_stream(logGroupName=f"/aws/lambda/{self.function}", logStreamName=stream)
        self._logs.put_log_events(
            logGroupName=f"/aws/lambda/{self.function}",
            logStreamName=stream,
            logEvents=[{"timestamp": stamp + i, "message": line} for i, line in enumerate(lines)],
        )

    # ------------------------------------------------------------ CloudWatch's part: evaluate the canary alarms
    def evaluate_alarms(self, now: datetime) -> list[str]:
        """At each 5-minute boundary, judge every canary error-rate alarm over its last periods; publish a
        CloudWatch alarm notification to the topic when one enters ALARM. Returns the alarms that fired."""
        if self._alarms is None or now.minute % 5 or now.second:
            return []
        cw = self._alarms.cloudwatch
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
                self._alarms.sns.publish(
                    TopicArn=self._alarms.topic_arn,
                    Subject=f'ALARM: "{alarm["AlarmName"]}" in US East (N. Virginia)'[:100],
                    Message=json.dumps(_alarm_json(alarm, reason, now)),
                )
                fired.append(alarm["AlarmName"])
        self.fired += fired
        return fired

    def _error_rate(self, version: str, start: datetime, period: timedelta) -> float | None:
        invocations = errors = 0
        t = start
        while t < start + period:
            inv, err = self._counts.get((version, t), (0, 0))
            invocations += inv
            errors += err
            t += MINUTE
        return errors / invocations if invocations else None


def _alarm_json(alarm: dict[str, Any], reason: str, now: datetime) -> dict[str, Any]:
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
