"""AlarmQueue over moto SNS -> SQS delivery: alarms reach the handler once; poison never blocks the queue."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends

from bot.alarm_event import AlarmNotification, SnsEnvelope, parse_alarm
from bot.aws.alarm_queue import AlarmQueue
from bot.ports import AwsFailure
from tests.support.sns_signing import alarm_message, make_identity, subscription_confirmation

REGION = "us-east-1"


@dataclass
class Recorder:
    """Handler and on_poison in one: remembers what arrived; can be told to fail."""

    alarms: list[AlarmNotification] = field(default_factory=list)
    envelopes: list[SnsEnvelope] = field(default_factory=list)
    poison: list[tuple[str, str]] = field(default_factory=list)
    failures_left: int = 0
    calls: int = 0

    def handle(self, envelope: SnsEnvelope) -> None:
        self.calls += 1
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("store unavailable")
        self.envelopes.append(envelope)
        self.alarms.append(parse_alarm(envelope))

    def on_poison(self, message_id: str, reason: str) -> None:
        self.poison.append((message_id, reason))


@dataclass
class Pipe:
    """A topic delivering to a queue (standard, not raw, delivery), as CloudWatch -> SNS -> SQS does."""

    sns: Any
    sqs: Any
    topic_arn: str
    queue_url: str
    recorder: Recorder

    def queue(self, **options: Any) -> AlarmQueue:
        settings: dict[str, Any] = {"wait_seconds": 0} | options
        return AlarmQueue(self.sqs, self.queue_url, self.recorder.handle, self.recorder.on_poison, **settings)

    def publish_alarm(self, **alarm: Any) -> None:
        self.sns.publish(TopicArn=self.topic_arn, Message=alarm_message(**alarm), Subject="ALARM: canary")

    def send_raw(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)

    def counts(self) -> tuple[int, int]:
        """(visible, in flight)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


@pytest.fixture(scope="module")
def moto_messaging() -> Iterator[None]:
    # One mock for the module, reset per test: starting mock_aws costs more than most of these tests.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            yield


@pytest.fixture
def pipe(moto_messaging: None) -> Pipe:
    sns_backends.reset()
    sqs_backends.reset()
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="canary-bot-alarms")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="canary-bot-alarms")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return Pipe(sns, sqs, topic_arn, queue_url, Recorder())


def test_alarm_published_to_the_topic_reaches_the_handler_and_leaves_the_queue(pipe: Pipe) -> None:
    pipe.publish_alarm(function="production-lego-api", alias="production", version="2")
    assert pipe.queue().poll_once() == 1
    (alarm,) = pipe.recorder.alarms
    assert (alarm.function_name, alarm.alias, alarm.version) == ("production-lego-api", "production", "2")
    assert alarm.is_alarm
    (envelope,) = pipe.recorder.envelopes
    assert (envelope.TopicArn, envelope.Subject) == (pipe.topic_arn, "ALARM: canary")
    assert pipe.counts() == (0, 0)
    assert pipe.recorder.poison == []


def test_both_trigger_shapes_arrive_intact(pipe: Pipe) -> None:
    pipe.publish_alarm(shape="metrics", version="3")
    pipe.publish_alarm(shape="dimensions", version="3")
    queue = pipe.queue()
    while queue.poll_once():
        pass
    assert [a.version for a in pipe.recorder.alarms] == ["3", "3"]


def test_poison_is_reported_once_and_deleted_and_the_alarm_behind_it_is_handled(pipe: Pipe) -> None:
    pipe.send_raw("this is not json")
    pipe.publish_alarm()
    queue = pipe.queue()
    received = queue.poll_once() + queue.poll_once() + queue.poll_once()
    assert received == 2
    assert len(pipe.recorder.poison) == 1
    message_id, reason = pipe.recorder.poison[0]
    assert message_id and "body is not JSON" in reason and "this is not json" in reason
    assert len(pipe.recorder.alarms) == 1
    assert pipe.counts() == (0, 0)


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("not an object", "not an object"),
        ("not an envelope", "not an SNS envelope"),
        ("raw delivery", "raw message delivery"),
        ("not an alarm", "not a CloudWatch alarm"),
        ("confirmation", "carries no alarm"),
    ],
)
def test_every_kind_of_poison_is_reported_with_its_reason_and_deleted(
    pipe: Pipe, kind: str, why: str
) -> None:
    if kind == "not an object":
        pipe.send_raw("[1, 2, 3]")
    elif kind == "not an envelope":
        pipe.send_raw(json.dumps({"hello": "world"}))
    elif kind == "raw delivery":
        pipe.send_raw(alarm_message())
    elif kind == "not an alarm":
        pipe.sns.publish(
            TopicArn=pipe.topic_arn, Message=json.dumps({"event": "deploy finished"}), Subject="FYI"
        )
    else:
        pipe.send_raw(json.dumps(subscription_confirmation(make_identity(), topic_arn=pipe.topic_arn)))
    queue = pipe.queue()
    assert queue.poll_once() == 1
    assert queue.poll_once() == 0
    assert [why in reason for _, reason in pipe.recorder.poison] == [True]
    assert pipe.recorder.calls == 0
    assert pipe.counts() == (0, 0)


def test_handler_failure_leaves_the_message_for_a_retry(pipe: Pipe) -> None:
    pipe.recorder.failures_left = 1
    pipe.publish_alarm()
    assert pipe.queue(visibility_timeout=60).poll_once() == 1
    assert pipe.recorder.alarms == []
    assert pipe.recorder.poison == []
    assert pipe.counts() == (0, 1)  # in flight: it comes back after the visibility timeout


def test_failed_message_is_retried_and_then_handled(pipe: Pipe) -> None:
    pipe.recorder.failures_left = 2
    pipe.publish_alarm()
    queue = pipe.queue(visibility_timeout=0)  # visible again at once: retries without waiting
    for _ in range(3):
        queue.poll_once()
    assert pipe.recorder.calls == 3
    assert len(pipe.recorder.alarms) == 1
    assert pipe.counts() == (0, 0)


def test_message_received_too_often_becomes_poison(pipe: Pipe) -> None:
    pipe.recorder.failures_left = 100
    pipe.publish_alarm()
    queue = pipe.queue(visibility_timeout=0, max_receive_count=3)
    for _ in range(6):
        queue.poll_once()
    assert pipe.recorder.calls == 3  # receives 1..3 reach the handler; the 4th is poison
    assert len(pipe.recorder.poison) == 1
    assert "received 4 times" in pipe.recorder.poison[0][1]
    assert pipe.counts() == (0, 0)


def test_poison_is_deleted_even_when_on_poison_fails(pipe: Pipe) -> None:
    def broken_on_poison(message_id: str, reason: str) -> None:
        raise RuntimeError("slack down")

    pipe.send_raw("garbage")
    queue = AlarmQueue(pipe.sqs, pipe.queue_url, pipe.recorder.handle, broken_on_poison, wait_seconds=0)
    assert queue.poll_once() == 1
    assert pipe.counts() == (0, 0)


def test_run_forever_stops_when_told(pipe: Pipe) -> None:
    stop = threading.Event()

    def handle_then_stop(envelope: SnsEnvelope) -> None:
        pipe.recorder.handle(envelope)
        stop.set()

    pipe.publish_alarm()
    AlarmQueue(
        pipe.sqs, pipe.queue_url, handle_then_stop, pipe.recorder.on_poison, wait_seconds=0
    ).run_forever(stop)
    assert len(pipe.recorder.alarms) == 1


class FailingSqs:
    """ReceiveMessage always fails; sets `stop` so run_forever's back-off returns at once."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.calls = 0

    def receive_message(self, **_: Any) -> Any:
        self.calls += 1
        self.stop.set()
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ReceiveMessage")


def test_receive_failure_is_an_aws_failure() -> None:
    queue = AlarmQueue(FailingSqs(threading.Event()), "https://q", lambda e: None, lambda i, r: None)  # type: ignore[arg-type]
    with pytest.raises(AwsFailure, match="AccessDenied"):
        queue.poll_once()


def test_run_forever_survives_receive_failures() -> None:
    stop = threading.Event()
    sqs = FailingSqs(stop)
    AlarmQueue(sqs, "https://q", lambda e: None, lambda i, r: None).run_forever(stop)  # type: ignore[arg-type]
    assert sqs.calls == 1


@pytest.mark.parametrize(
    ("option", "value"), [("wait_seconds", 21), ("max_messages", 11), ("max_messages", 0)]
)
def test_settings_outside_sqs_limits_are_refused(option: str, value: int) -> None:
    with pytest.raises(ValueError, match=option):
        AlarmQueue(object(), "https://q", lambda e: None, lambda i, r: None, **{option: value})  # type: ignore[arg-type]
