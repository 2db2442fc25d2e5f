"""Alarm → alias reverted, over a real moto server, beside one raw UpdateAlias to the same server.

The path that matters most. Each trial starts a canary through the service (real LambdaTraffic and
CloudWatchAlarms on boto3, a SQLite *file* store, so the durable intent costs what it costs in production),
then hands the AlarmResponder a CloudWatch alarm notification for the canary's error-rate alarm and times
`handle()` until it returns: the rollback intent made durable, the alias read, UpdateAlias answered and the
change recorded. The baseline is one raw boto3 UpdateAlias to the same server, timed alternately.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3

from bench.harness import Check, median, ms, percentile
from bot.actors import cli_actor
from bot.alarm_event import SnsEnvelope, parse_sns_body
from bot.aws.alarms import CloudWatchAlarms
from bot.aws.traffic import LambdaTraffic
from bot.clock import SystemClock
from bot.composition import alarm_responder
from bot.config import Policy, load_policy
from bot.events import RecordingNotifier
from bot.service import CanaryService
from bot.store import SqliteStore
from bot.verbs import StartArgs
from canary_demo.moto_server import running_moto
from canary_demo.seed import LEGO_API, PRODUCTION_ALIAS, seed_lego_api
from canary_demo.simulator import _alarm_json

REGION = "us-east-1"
TOPIC = "arn:aws:sns:us-east-1:123456789012:canary-alarms"
# Targets (issue "Speed against real peers"): the durable intent may cost this much over a raw UpdateAlias.
P50_OVER_RAW_MS = 50.0
P99_OVER_RAW_MS = 100.0


def run(*, trials: int = 50) -> list[Check]:
    # moto takes any credentials; named here so the run never reads (or needs) the machine's.
    session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name=REGION)
    with running_moto() as endpoint, tempfile.TemporaryDirectory() as tmp:
        lam = session.client("lambda", endpoint_url=endpoint)
        cloudwatch = session.client("cloudwatch", endpoint_url=endpoint)
        seed_lego_api(lam, session.client("iam", endpoint_url=endpoint))
        service = CanaryService(
            traffic=LambdaTraffic(lam),
            store=SqliteStore(Path(tmp) / "bench.db"),
            # Each trial starts v2 again after the last one rolled it back: no rollback lock on it.
            policy=_without_rollback_lock(load_policy(None)),
            clock=SystemClock(),
            notifier=RecordingNotifier(),
            alarms=CloudWatchAlarms(cloudwatch, REGION),
            alarm_topic_arn=TOPIC,
        )
        responder = alarm_responder(service)
        ours: list[float] = []
        raw: list[float] = []
        for _ in range(trials):
            raw.append(_raw_update_alias(lam))
            envelope = _started_canary_alarm(service, cloudwatch)
            began = time.perf_counter()
            outcome = responder.handle(envelope)
            ours.append(time.perf_counter() - began)
            if outcome.action != "rolled_back":
                raise RuntimeError(f"trial did not roll back: {outcome}")
    return _checks(ours, raw)


def _checks(ours: list[float], raw: list[float]) -> list[Check]:
    ours_p50, raw_p50 = ms(median(ours)), ms(median(raw))
    ours_p99, raw_p99 = ms(percentile(ours, 99)), ms(percentile(raw, 99))
    return [
        Check(
            name=f"alarm → alias reverted, p50 ({len(ours)} trials)",
            ours=ours_p50,
            baseline=raw_p50,
            unit="ms",
            target=f"≤ raw UpdateAlias + {P50_OVER_RAW_MS:.0f} ms",
            passed=ours_p50 <= raw_p50 + P50_OVER_RAW_MS,
            note="durable intent + GetAlias + UpdateAlias + record, SQLite file store, moto server",
        ),
        Check(
            name=f"alarm → alias reverted, p99 ({len(ours)} trials)",
            ours=ours_p99,
            baseline=raw_p99,
            unit="ms",
            target=f"≤ raw UpdateAlias + {P99_OVER_RAW_MS:.0f} ms",
            passed=ours_p99 <= raw_p99 + P99_OVER_RAW_MS,
        ),
    ]


def _without_rollback_lock(policy: Policy) -> Policy:
    return policy.model_copy(update={"defaults": {**policy.defaults, "lock_after_rollback": False}})


def _raw_update_alias(lam: object) -> float:
    client = lam  # a boto3 Lambda client
    began = time.perf_counter()
    client.update_alias(  # type: ignore[attr-defined]
        FunctionName=LEGO_API, Name=PRODUCTION_ALIAS, FunctionVersion="1", RoutingConfig={}
    )
    return time.perf_counter() - began


def _started_canary_alarm(service: CanaryService, cloudwatch: object) -> SnsEnvelope:
    """Start a canary on v2 and return the notification of its error-rate alarm going to ALARM."""
    actor = cli_actor("bench")
    plan = service.plan(StartArgs(function=LEGO_API, version="2"), actor)
    service.confirm(plan.deployment.id, actor)
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix="canary-bot/")["MetricAlarms"]  # type: ignore[attr-defined]
    alarm = next(a for a in alarms if a["AlarmName"].endswith("/error-rate"))
    message = _alarm_json(
        alarm, "Threshold Crossed: 2 datapoints were greater than the threshold", datetime.now(UTC)
    )
    body = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Subject": "ALARM",
        "Message": json.dumps(message),
        "Timestamp": datetime.now(UTC).isoformat(),
        "SignatureVersion": "1",
        "Signature": "unused on the SQS path",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/unused.pem",
    }
    return parse_sns_body(json.dumps(body))


__all__ = ["run"]
