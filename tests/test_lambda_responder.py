"""The serverless responder: with every replica down, an SNS alarm event rolls the canary back (moto Lambda and
DynamoDB), and a replica started afterwards posts the story from the outbox."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bot.actors import cli_actor
from bot.aws.clients import aws_client, lambda_client
from bot.aws.traffic import LambdaTraffic
from bot.clock import SystemClock
from bot.config import load_policy
from bot.lambda_responder import build_responder, envelope_of, handler
from bot.model import State
from bot.outbox import Outbox, OutboxDrainer
from bot.service import CanaryService
from bot.slack_client import RetryPolicy, make_web_client
from bot.slack_notifier import SlackNotifier
from bot.store import DynamoStore, open_store
from bot.store.dynamodb import create_table
from bot.verbs import StartArgs
from tests.support.fake_slack import FakeSlack
from tests.support.lambda_world import LEGO_API, PRODUCTION_ALIAS, moto_lego_world, use_fake_aws_credentials
from tests.support.sns_signing import TOPIC_ARN, alarm_message
from tests.support.store import TABLE, atomic_moto_dynamodb

URL = f"dynamodb://{TABLE}"


def sns_event(message: str, *, message_id: str | None = None) -> dict[str, Any]:
    """What SNS hands a subscribed Lambda (the record's own spelling: SigningCertUrl, UnsubscribeUrl)."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{TOPIC_ARN}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id or str(uuid.uuid4()),
                    "TopicArn": TOPIC_ARN,
                    "Subject": 'ALARM: "canary-bot/production-lego-api/production/v2/error-rate" in US East',
                    "Message": message,
                    "Timestamp": "2026-11-28T14:00:00.123Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLEpH+..",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {},
                },
            }
        ]
    }


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(channels={"#deploys": "C0DEPLOYS"}) as fake:
        yield fake


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    use_fake_aws_credentials(monkeypatch)
    with moto_lego_world() as lam, atomic_moto_dynamodb():
        create_table(aws_client("dynamodb", region="us-east-1"), TABLE)
        monkeypatch.setenv("CANARY_STORE_URL", URL)
        build_responder.cache_clear()
        yield lam
        build_responder.cache_clear()


def replica(slack: FakeSlack) -> tuple[CanaryService, OutboxDrainer]:
    """A bot replica on the shared table: its service writes the outbox, its drainer posts to Slack."""
    store = open_store(URL, region="us-east-1")
    assert isinstance(store, DynamoStore)
    clock = SystemClock()
    client = make_web_client("xoxb-test", base_url=slack.base_url, retry=RetryPolicy(sleep=lambda _s: None))
    policy = load_policy(None)
    outbox = Outbox(store, clock)
    service = CanaryService(
        traffic=LambdaTraffic(lambda_client(region="us-east-1")),
        store=store,
        policy=policy,
        clock=clock,
        notifier=SlackNotifier(client, policy, clock, outbox=outbox),
    )
    return service, OutboxDrainer(store, client, clock)


def routing(lam: Any) -> tuple[str, dict[str, float]]:
    alias = lam.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)
    return alias["FunctionVersion"], dict(alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}))


def test_an_alarm_with_every_replica_down_is_rolled_back_and_told_by_the_next_replica(
    world: Any, slack: FakeSlack
) -> None:
    service, drainer = replica(slack)
    plan = service.plan(StartArgs(function=LEGO_API, version="2"), cli_actor("maria"))
    service.confirm(plan.deployment.id, cli_actor("maria"))
    drainer.drain()
    assert routing(world) == ("1", {"2": 0.05})
    posted = len(slack.messages())
    # Every replica stops here.

    result = handler(sns_event(alarm_message()), None)

    assert [o["action"] for o in result["outcomes"]] == ["rolled_back"]
    assert routing(world) == ("1", {})
    store = open_store(URL, region="us-east-1")
    ended = store.get(plan.deployment.id)
    assert ended is not None and ended.state is State.ROLLED_BACK and "error-rate" in (ended.reason or "")
    assert store.outbox_pending() >= 2  # the rollback and the alarm alert, waiting for a replica
    assert len(slack.messages()) == posted  # the responder never called Slack

    _, later = replica(slack)  # a replica comes back
    later.drain()

    story = slack.messages()[posted:]
    parent = slack.messages()[0]
    assert story and all(m.thread_ts == parent.ts for m in story if m.thread_ts)
    text = " ".join(json.dumps(m.blocks) + (m.text or "") for m in story)
    assert "error-rate" in text
    assert store.outbox_pending() == 0


def test_the_responders_rollback_queues_the_alert_fan_out_and_a_replica_publishes_it(
    world: Any, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import yaml

    from bot.aws.topics import SnsTopics
    from bot.config import EMBEDDED_POLICY

    sns, sqs = aws_client("sns", region="us-east-1"), aws_client("sqs", region="us-east-1")
    topic = sns.create_topic(Name="ops-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="ops-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    policy = json.loads(json.dumps(EMBEDDED_POLICY))
    policy["functions"][LEGO_API]["notify_topics"] = [topic]
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    monkeypatch.setenv("CANARY_POLICY_FILE", str(tmp_path / "policy.yaml"))
    build_responder.cache_clear()
    service, _ = replica(slack)
    plan = service.plan(StartArgs(function=LEGO_API, version="2"), cli_actor("maria"))
    service.confirm(plan.deployment.id, cli_actor("maria"))

    handler(sns_event(alarm_message(), message_id="m-1"), None)
    handler(sns_event(alarm_message(), message_id="m-1"), None)  # Lambda's retry of the same event

    assert routing(world) == ("1", {})
    assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", []) == []  # not from Lambda
    store = open_store(URL, region="us-east-1")
    client = make_web_client("xoxb-test", base_url=slack.base_url, retry=RetryPolicy(sleep=lambda _s: None))
    later = OutboxDrainer(store, client, SystemClock(), topics=SnsTopics(sns))  # a replica comes back
    later.drain()
    later.drain()
    answer = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0, MaxNumberOfMessages=10)
    subjects = sorted(json.loads(m["Body"])["Subject"] for m in answer.get("Messages", []))
    assert subjects == [
        "ALARM: canary-bot/production-lego-api/production/v2/error-rate",
        "ROLLBACK: LEGO API canary rolled back",
    ]
    assert store.outbox_pending() == 0


def test_the_same_alarm_delivered_again_writes_the_alias_once(world: Any, slack: FakeSlack) -> None:
    service, _ = replica(slack)
    plan = service.plan(StartArgs(function=LEGO_API, version="2"), cli_actor("maria"))
    service.confirm(plan.deployment.id, cli_actor("maria"))
    event = sns_event(alarm_message(), message_id="m-1")

    first = handler(event, None)
    again = handler(event, None)

    assert first["outcomes"][0]["action"] == "rolled_back"
    assert again["outcomes"][0]["action"] == "alerted"  # about a canary already rolled back
    assert routing(world) == ("1", {})


def test_a_notification_that_is_not_an_alarm_is_dropped_not_retried(world: Any) -> None:
    result = handler(sns_event("this is not an alarm"), None)
    assert result["outcomes"][0]["action"] == "ignored"


def test_the_responder_refuses_a_store_other_than_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_STORE_URL", "sqlite:///x.db")
    build_responder.cache_clear()
    with pytest.raises(ValueError, match=r"dynamodb://TABLE"):
        handler(sns_event(alarm_message()), None)
    build_responder.cache_clear()


def test_a_lambda_record_reads_as_the_sns_envelope() -> None:
    envelope = envelope_of(sns_event(alarm_message(), message_id="m-9")["Records"][0])
    assert envelope.MessageId == "m-9" and envelope.SigningCertURL.startswith("https://sns.")
    assert envelope.UnsubscribeURL is not None


def test_the_responder_imports_neither_bolt_nor_charts_nor_the_scheduler() -> None:
    """What `make lambda-zip` leaves out must not be needed on the alarm path."""
    script = """
import sys
LEFT_OUT = ("slack_bolt", "matplotlib", "apscheduler", "waitress", "moto", "cryptography")
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in LEFT_OUT:
            raise ImportError("left out of the Lambda zip: " + name)
sys.meta_path.insert(0, Refuse())
import bot.lambda_responder, bot.aws.alarms, bot.aws.traffic, bot.clock, bot.store.dynamodb
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
