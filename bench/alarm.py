"""Alarm → alias reverted, over a real moto server, beside one raw UpdateAlias to the same server.

The path that matters most, by both ways an alarm reaches the bot. Each trial starts a canary through the
service (real LambdaTraffic and CloudWatchAlarms on boto3, a SQLite *file* store, so the durable intent costs
what it costs in production), then delivers the CloudWatch notification of the canary's error-rate alarm:

- SQS: the SNS envelope sent to a moto SQS queue, then `AlarmQueue.poll_once()` (ReceiveMessage, the
  responder, DeleteMessage), timed from SendMessage until the message is deleted;
- SNS HTTPS: the envelope signed as SNS signs it (our own key and certificate, tests/support/sns_signing.py),
  POSTed to /sns of `make_wsgi_app` on the waitress server, timed until the 200 answer: signature verified,
  then the responder.

Either way the responder returns once the rollback intent is durable, the alias read, UpdateAlias answered and
the change recorded. The baseline is one raw boto3 UpdateAlias to the same server; the three are alternated.
"""

from __future__ import annotations

import http.client
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from bench.harness import Check, median, ms, percentile
from bot.actors import cli_actor
from bot.alarm_event import parse_sns_body
from bot.aws.alarm_queue import AlarmQueue
from bot.aws.alarms import CloudWatchAlarms
from bot.aws.traffic import LambdaTraffic
from bot.clock import SystemClock
from bot.composition import alarm_responder
from bot.config import Policy, load_policy
from bot.events import RecordingNotifier
from bot.http_server import BackgroundServer, make_wsgi_app
from bot.service import CanaryService
from bot.sns_http import SnsHttpIntake
from bot.sns_verify import SnsVerifier
from bot.store import SqliteStore
from bot.verbs import StartArgs
from canary_demo.cloudwatch_sinks import alarm_json
from canary_demo.moto_server import running_moto
from canary_demo.seed import LEGO_API, PRODUCTION_ALIAS, seed_lego_api
from tests.support.sns_signing import CertServer, make_identity, notification

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
        sqs = session.client("sqs", endpoint_url=endpoint)
        seed_lego_api(lam, session.client("iam", endpoint_url=endpoint))
        store = _TimedStore(SqliteStore(Path(tmp) / "bench.db"))
        service = CanaryService(
            traffic=LambdaTraffic(lam),
            store=store,  # type: ignore[arg-type]
            # Each trial starts v2 again after the last one rolled it back: no rollback lock on it.
            policy=_without_rollback_lock(load_policy(None)),
            clock=SystemClock(),
            notifier=RecordingNotifier(),
            alarms=CloudWatchAlarms(cloudwatch, REGION),
            alarm_topic_arn=TOPIC,
        )
        responder = alarm_responder(service)
        outcomes: list[str] = []
        queue_url = sqs.create_queue(QueueName="canary-alarms")["QueueUrl"]
        queue = AlarmQueue(
            sqs,
            queue_url,
            lambda envelope: outcomes.append(responder.handle(envelope).action),
            on_poison=lambda message_id, reason: outcomes.append(f"poison {reason}"),
            wait_seconds=1,
        )
        certs = CertServer()
        identity = certs.add(make_identity())
        intake = SnsHttpIntake(SnsVerifier({TOPIC}, cert_fetcher=certs), responder)
        wsgi = make_wsgi_app(None, sns_handler=intake, health=lambda: (True, {}))
        by_sqs: list[float] = []
        by_https: list[float] = []
        raw: list[float] = []
        in_store: list[float] = []  # of each timed trial, the time spent inside the store
        with BackgroundServer(wsgi) as server:
            for _ in range(trials):
                raw.append(_raw_update_alias(lam))
                message = _started_canary_alarm(service, cloudwatch)
                store.seconds = 0.0
                began = time.perf_counter()
                sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(_envelope(message)))
                if queue.poll_once() != 1:
                    raise RuntimeError("the alarm did not arrive on the queue")
                by_sqs.append(time.perf_counter() - began)
                in_store.append(store.seconds)
                message = _started_canary_alarm(service, cloudwatch)
                body = json.dumps(notification(message, identity, topic_arn=TOPIC, subject="ALARM")).encode()
                store.seconds = 0.0
                began = time.perf_counter()
                status, answer = _post(server.port, body)
                by_https.append(time.perf_counter() - began)
                in_store.append(store.seconds)
                outcomes.append(answer if status == 200 else f"HTTP {status} {answer}")
    wrong = [o for o in outcomes if o != "rolled_back"]
    if wrong:
        raise RuntimeError(f"trials did not roll back: {wrong[:3]}")
    durability = f"the store's share (SQLite file, WAL): median {ms(median(in_store)):.1f} ms a trial"
    return [*_checks("SQS", by_sqs, raw, durability), *_checks("SNS HTTPS", by_https, raw, durability)]


class _TimedStore:
    """The store as the service sees it, adding up the time spent in its methods: what durability costs."""

    def __init__(self, inner: SqliteStore) -> None:
        self._inner = inner
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began

        return timed


def _post(port: int, body: bytes) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST",
            "/sns",
            body=body,
            headers={"content-type": "text/plain", "x-amz-sns-message-type": "Notification"},
        )
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


def _checks(path: str, ours: list[float], raw: list[float], durability: str) -> list[Check]:
    ours_p50, raw_p50 = ms(median(ours)), ms(median(raw))
    ours_p99, raw_p99 = ms(percentile(ours, 99)), ms(percentile(raw, 99))
    return [
        Check(
            name=f"alarm by {path} → alias reverted, p50 ({len(ours)} trials)",
            ours=ours_p50,
            baseline=raw_p50,
            unit="ms",
            target=f"≤ raw UpdateAlias + {P50_OVER_RAW_MS:.0f} ms",
            passed=ours_p50 <= raw_p50 + P50_OVER_RAW_MS,
            note=f"{_HOW[path]} + durable intent + GetAlias + UpdateAlias + record; SQLite file store, moto server",
        ),
        Check(
            name=f"alarm by {path} → alias reverted, p99 ({len(ours)} trials)",
            ours=ours_p99,
            baseline=raw_p99,
            unit="ms",
            target=f"≤ raw UpdateAlias + {P99_OVER_RAW_MS:.0f} ms",
            passed=ours_p99 <= raw_p99 + P99_OVER_RAW_MS,
            note=durability,
        ),
    ]


def _without_rollback_lock(policy: Policy) -> Policy:
    return policy.model_copy(update={"defaults": {**policy.defaults, "lock_after_rollback": False}})


_HOW = {
    "SQS": "SendMessage + ReceiveMessage + DeleteMessage",
    "SNS HTTPS": "POST /sns on waitress + SNS signature check",
}


def _raw_update_alias(lam: object) -> float:
    client = lam  # a boto3 Lambda client
    began = time.perf_counter()
    client.update_alias(  # type: ignore[attr-defined]
        FunctionName=LEGO_API, Name=PRODUCTION_ALIAS, FunctionVersion="1", RoutingConfig={}
    )
    return time.perf_counter() - began


def _started_canary_alarm(service: CanaryService, cloudwatch: object) -> str:
    """Start a canary on v2 and return the CloudWatch message of its error-rate alarm going to ALARM."""
    actor = cli_actor("bench")
    plan = service.plan(StartArgs(function=LEGO_API, version="2"), actor)
    service.confirm(plan.deployment.id, actor)
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix="canary-bot/")["MetricAlarms"]  # type: ignore[attr-defined]
    alarm = next(a for a in alarms if a["AlarmName"].endswith("/error-rate"))
    message = alarm_json(
        alarm, "Threshold Crossed: 2 datapoints were greater than the threshold", datetime.now(UTC)
    )
    return json.dumps(message)


def _envelope(message: str) -> dict[str, str]:
    """The SNS envelope SNS puts on an SQS queue (raw delivery off); the queue path checks no signature."""
    body = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Subject": "ALARM",
        "Message": message,
        "Timestamp": datetime.now(UTC).isoformat(),
        "SignatureVersion": "1",
        "Signature": "unused on the SQS path",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/unused.pem",
    }
    parse_sns_body(json.dumps(body))  # the envelope the intake will parse
    return body


__all__ = ["run"]
