"""Alert fan-out: a function's notify_topics get the alarm alert and the rollback message (the seed's internal
text and status-page text) as SNS messages, beside Slack, through the outbox: a failing publish never blocks a
rollback, is retried later and delivered once, and what was queued before a restart is delivered after it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from moto import mock_aws

from bot.actors import cli_actor
from bot.aws.clients import aws_client
from bot.aws.topics import SnsTopics
from bot.composition import build_runbook
from bot.config import Settings
from bot.events import AlarmAlert, RecordingNotifier
from bot.outbox import Outbox, OutboxDrainer
from bot.ports import AwsFailure
from bot.sns_fanout import SnsFanout, fan_out_message
from canary_demo.fakes.topics import FakeTopics
from tests.support.world import FN, World, make_world, policy_with, slack_user

TOPIC = "arn:aws:sns:us-east-1:123456789012:ops-alerts"
PAGER = "arn:aws:sns:us-east-1:123456789012:pagerduty"


def world_with(
    topics: Any, notify: list[str] | None = None, **world_kwargs: Any
) -> tuple[World, RecordingNotifier]:
    """The fan-out on the world's store: its outbox is drained (SNS rows only) as soon as a row is queued."""
    policy = policy_with(notify_topics=notify if notify is not None else [TOPIC, PAGER])
    world = make_world(policy, **world_kwargs)
    slack = RecordingNotifier()
    drainer = OutboxDrainer(world.store, None, world.clock, topics=topics)
    world.announcer.notifier = SnsFanout(slack, Outbox(world.store, world.clock, wake=drainer.drain), policy)
    return world, slack


def drain(world: World, topics: Any) -> int:
    """A drainer (a replica, a restarted process) on the world's store."""
    return OutboxDrainer(world.store, None, world.clock, topics=topics).drain()


def alarm(
    world: World, *, rolled_back: bool = True, state: str = "ALARM", follow_up: bool = False
) -> AlarmAlert:
    d = world.store.history(FN, None, 1)[0]
    return AlarmAlert(
        at=world.clock.now(),
        alarm_name="canary-bot/production-lego-api/production/v2/error-rate",
        state=state,
        reason="Threshold Crossed: 2 datapoints were greater than the threshold (0.001)",
        function=FN,
        deployment=d,
        rolled_back=rolled_back,
        follow_up=follow_up,
        key=f"alarm-test:{state}:{follow_up}",
    )


def test_a_rollback_goes_to_every_topic_with_the_internal_and_status_page_texts() -> None:
    topics = FakeTopics()
    world, slack = world_with(topics)
    world.start()
    world.service.rollback(FN, None, slack_user("UAPPROVER1"), reason="Error rate exceeded 0.1%")
    assert [m.topic_arn for m in topics.messages] == [TOPIC, PAGER]
    message = topics.messages[0]
    assert message.subject == "ROLLBACK: LEGO API canary rolled back"
    assert message.message.startswith("🔴 ROLLBACK INITIATED\n- Service: LEGO API (production)")
    assert "- Reason: Manual decision (Error rate exceeded 0.1%)" in message.message
    assert "- Action: Reverted to version 1 (the version before v2)" in message.message
    assert "Status page:\nInvestigating: LEGO API Deployment Rollback" in message.message
    assert any(e.kind == "traffic_changed" for e in slack.events)  # Slack still told, first


def test_a_revert_and_a_fallback_go_to_the_topics_like_a_rollback() -> None:
    topics = FakeTopics()
    world, _ = world_with(topics)
    world.start()
    world.service.promote(FN, None, slack_user("UAPPROVER1"))
    book = build_runbook(world.service)
    book.revert.revert(FN, None, slack_user("UAPPROVER1"), reason="p95 regression after the promotion")
    [reverted] = {m.subject for m in topics.messages}
    assert reverted == "ROLLBACK: LEGO API promotion reverted"
    assert "- Action: Reverted to version 1" in topics.messages[0].message

    topics = FakeTopics()
    world, _ = world_with(topics)
    world.start()
    world.service.promote(FN, None, slack_user("UAPPROVER1"))
    before = len(topics.messages)
    build_runbook(world.service).fallback.fallback(
        FN, None, slack_user("UAPPROVER1"), unset=["REDIS_URL"], reason="redis down"
    )
    fallbacks = topics.messages[before:]
    assert [m.topic_arn for m in fallbacks] == [TOPIC, PAGER]
    assert fallbacks[0].subject == "ROLLBACK: LEGO API emergency fallback"


def test_an_alarm_alert_goes_to_the_topics_with_what_the_bot_did() -> None:
    topics = FakeTopics()
    world, _ = world_with(topics, [TOPIC])
    world.start()
    world.service.notify(alarm(world))
    (message,) = topics.messages
    assert message.subject == "ALARM: canary-bot/production-lego-api/production/v2/error-rate"
    assert "🚨 Canary Deployment Alert" in message.message
    assert "Status: ALARM" in message.message and "Reason: Threshold Crossed" in message.message
    assert "Action: canary-bot rolled production-lego-api:production back to v1" in message.message


@pytest.mark.parametrize(("state", "follow_up"), [("OK", False), ("ALARM", True)])
def test_an_ok_or_a_follow_up_alarm_is_not_fanned_out(state: str, follow_up: bool) -> None:
    topics = FakeTopics()
    world, _ = world_with(topics)
    world.start()
    world.service.notify(alarm(world, state=state, follow_up=follow_up))
    assert topics.messages == []


def test_nothing_else_is_fanned_out_and_no_topics_means_no_publish() -> None:
    topics = FakeTopics()
    world, slack = world_with(topics, [])
    world.start()
    world.service.rollback(FN, None, slack_user("UAPPROVER1"), reason="manual")
    assert topics.messages == [] and slack.events  # started, rolled back: Slack only
    world2, _ = world_with(topics)
    world2.start()
    assert topics.messages == []  # a start is not an alert


def test_a_failing_topic_never_blocks_the_rollback_nor_the_other_topics_and_is_retried_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    topics = FakeTopics(failing={TOPIC})
    world, _ = world_with(topics)
    world.start()
    result = world.service.rollback(FN, None, slack_user("UAPPROVER1"), reason="bad canary")
    assert result.deployment.state.value == "rolled_back" and world.alias() == ("1", {})
    assert [m.topic_arn for m in topics.messages] == [PAGER]
    assert (
        f"SNS message sns:intent:{result.deployment.id}:rollback:" in caplog.text
    )  # keyed by intent and topic
    assert "not delivered (attempt 1): SNS Publish to " + TOPIC + " failed: Throttling" in caplog.text
    assert world.store.outbox_pending() == 1

    topics.failing.clear()  # SNS is back
    assert drain(world, topics) == 0  # not due yet: backing off
    world.clock.advance(timedelta(seconds=20))
    assert drain(world, topics) == 1
    assert [m.topic_arn for m in topics.messages] == [PAGER, TOPIC]
    assert drain(world, topics) == 0 and world.store.outbox_pending() == 0


def test_a_topic_that_does_not_exist_is_given_up_logged_and_holds_nothing_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    topics = FakeTopics(missing={TOPIC})
    world, _ = world_with(topics)
    world.start()
    world.service.rollback(FN, None, slack_user("UAPPROVER1"), reason="bad canary")
    assert [m.topic_arn for m in topics.messages] == [PAGER]
    assert world.store.outbox_pending() == 0
    assert "SNS message sns:" in caplog.text and "dropped: SNS Publish to " + TOPIC in caplog.text


def test_an_event_told_again_after_a_crash_is_queued_and_published_once_per_topic() -> None:
    topics = FakeTopics()
    world, _ = world_with(topics)
    world.start()
    event = alarm(world)
    fanout = world.announcer.notifier
    fanout.publish(event)
    fanout.publish(event)  # the announcement repeated: a crash came before its `msg:` claim
    world.clock.advance(timedelta(minutes=1))
    drain(world, topics)
    assert [m.topic_arn for m in topics.messages] == [TOPIC, PAGER]
    assert len({m.dedup_id for m in topics.messages}) == 2  # one per (event, topic), for FIFO topics


def test_an_alert_queued_before_a_restart_is_published_after_it(tmp_path: Any) -> None:
    from bot.store import open_store

    url = f"sqlite:///{tmp_path / 'canary.db'}"
    topics = FakeTopics()
    world, _ = world_with(_Unreachable(), [TOPIC], store=open_store(url))
    world.start()
    world.service.rollback(FN, None, slack_user("UAPPROVER1"), reason="bad canary")
    assert world.alias() == ("1", {}) and topics.messages == []
    # The process dies here; another starts on the same store, a minute later.
    world.clock.advance(timedelta(minutes=1))
    restarted = OutboxDrainer(open_store(url), None, world.clock, topics=topics)
    assert restarted.drain() == 1
    (message,) = topics.messages
    assert message.subject == "ROLLBACK: LEGO API canary rolled back"
    assert restarted.drain() == 0


class _Unreachable:
    """SNS not answering at all (the network is down)."""

    def publish(self, topic_arn: str, *, subject: str, message: str, dedup_id: str | None = None) -> str:
        raise AwsFailure(f"SNS Publish to {topic_arn} failed: Could not connect to the endpoint URL")


def test_a_failing_slack_notifier_still_fans_out() -> None:
    class Broken(RecordingNotifier):
        def publish(self, event: Any) -> None:
            raise RuntimeError("slack down")

    topics = FakeTopics()
    policy = policy_with(notify_topics=[TOPIC])
    world = make_world(policy)
    drainer = OutboxDrainer(world.store, None, world.clock, topics=topics)
    world.announcer.notifier = SnsFanout(
        Broken(), Outbox(world.store, world.clock, wake=drainer.drain), policy
    )
    world.start()
    world.service.rollback(FN, None, slack_user("UAPPROVER1"), reason="bad canary")
    assert [m.subject for m in topics.messages] == ["ROLLBACK: LEGO API canary rolled back"]
    assert world.alias() == ("1", {})


def test_a_bad_topic_arn_in_the_policy_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="is not an SNS topic ARN"):
        policy_with(notify_topics=["ops-alerts"]).for_function(FN)


def test_subjects_stay_within_snss_limit() -> None:
    world, _ = world_with(FakeTopics())
    world.start()
    event = alarm(world).model_copy(update={"alarm_name": "x" * 300})
    found = fan_out_message(event, world.service.ports.policy)
    assert found is not None and len(found[1].subject) < 100


# ---------------------------------------------------------------- SNS itself (moto: SNS → SQS)
@pytest.fixture
def sns_queue() -> Iterator[tuple[Any, str, str]]:
    with mock_aws():
        sns = aws_client("sns", region="us-east-1")
        sqs = aws_client("sqs", region="us-east-1")
        topic = sns.create_topic(Name="ops-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="ops-alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        yield sqs, queue, topic


def test_the_sns_adapter_delivers_subject_and_message_to_a_subscribed_queue(
    sns_queue: tuple[Any, str, str],
) -> None:
    sqs, queue, topic = sns_queue
    topics = SnsTopics(aws_client("sns", region="us-east-1"))
    message_id = topics.publish(
        topic, subject="ROLLBACK: LEGO API canary rolled back", message="🔴 ROLLBACK INITIATED"
    )
    (received,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)["Messages"]
    envelope = json.loads(received["Body"])
    assert envelope["MessageId"] == message_id and envelope["TopicArn"] == topic
    assert (envelope["Subject"], envelope["Message"]) == (
        "ROLLBACK: LEGO API canary rolled back",
        "🔴 ROLLBACK INITIATED",
    )


def test_the_sns_adapter_turns_a_missing_topic_into_an_aws_failure(sns_queue: tuple[Any, str, str]) -> None:
    topics = SnsTopics(aws_client("sns", region="us-east-1"))
    with pytest.raises(AwsFailure, match=r"SNS Publish to .*nope failed"):
        topics.publish("arn:aws:sns:us-east-1:123456789012:nope", subject="s", message="m")


def test_the_composition_root_wraps_the_notifier_only_when_a_function_lists_topics(
    sns_queue: tuple[Any, str, str],
) -> None:
    from bot.composition import AwsAdapters, build_service
    from bot.store import open_store
    from canary_demo.fakes.traffic import lego_api_world

    sqs, queue, topic = sns_queue
    clock = make_world().clock
    adapters = AwsAdapters(traffic=lego_api_world(), metrics=None, alarms=None)  # type: ignore[arg-type]
    plain = build_service(
        Settings(),
        policy=policy_with(),
        clock=clock,
        store=open_store("sqlite://:memory:"),
        aws=adapters,
        slack=None,
    )
    assert not isinstance(plain.announcer.notifier, SnsFanout)
    policy = policy_with(notify_topics=[topic])
    service = build_service(
        Settings(),
        policy=policy,
        clock=clock,
        store=open_store("sqlite://:memory:"),
        aws=adapters,
        slack=None,
    )
    assert isinstance(service.announcer.notifier, SnsFanout)
    world = World(traffic=adapters.traffic, clock=clock, notifier=RecordingNotifier(), service=service)  # type: ignore[arg-type]
    world.start()
    service.rollback(FN, None, cli_actor("maria"), reason="Cache hit rate below 80%")
    (received,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)["Messages"]
    envelope = json.loads(received["Body"])
    assert envelope["Subject"] == "ROLLBACK: LEGO API canary rolled back"
    assert "- Reason: Manual decision (Cache hit rate below 80%)" in envelope["Message"]


class FlakySns:
    """The real (moto) SNS client, throttled for its first `failures` Publish calls."""

    def __init__(self, real: Any, failures: int) -> None:
        self.real = real
        self.failures = failures
        self.calls = 0

    def publish(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise ClientError(
                {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}, "ResponseMetadata": {}},
                "Publish",
            )
        return self.real.publish(**kwargs)


def received(sqs: Any, queue: str) -> list[dict[str, Any]]:
    answer = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def test_a_throttled_publish_is_retried_later_and_reaches_the_subscribed_queue_once(
    sns_queue: tuple[Any, str, str],
) -> None:
    sqs, queue, topic = sns_queue
    flaky = FlakySns(aws_client("sns", region="us-east-1"), failures=2)
    world, _ = world_with(SnsTopics(flaky), [topic])
    world.start()
    world.service.rollback(FN, None, slack_user("UAPPROVER1"), reason="Error rate exceeded 0.1%")
    assert world.alias() == ("1", {})  # the rollback did not wait for SNS
    assert received(sqs, queue) == [] and world.store.outbox_pending() == 1

    for _ in range(3):  # the drainer's backoff: 1-2 s, then 1-4 s
        world.clock.advance(timedelta(seconds=5))
        drain(world, SnsTopics(flaky))
    (envelope,) = received(sqs, queue)
    assert envelope["Subject"] == "ROLLBACK: LEGO API canary rolled back"
    assert "- Reason: Manual decision (Error rate exceeded 0.1%)" in envelope["Message"]
    assert flaky.calls == 3 and world.store.outbox_pending() == 0


def test_a_fifo_topic_gets_a_group_and_the_rows_deduplication_id() -> None:
    with mock_aws():
        sns = aws_client("sns", region="us-east-1")
        sqs = aws_client("sqs", region="us-east-1")
        topic = sns.create_topic(Name="ops-alerts.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
        queue = sqs.create_queue(QueueName="ops-alerts.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        with pytest.raises(Exception, match="MessageGroupId"):  # what SnsTopics spares the drainer
            sns.publish(TopicArn=topic, Message="m")
        world, _ = world_with(SnsTopics(sns), [topic])
        world.start()
        world.service.rollback(FN, None, slack_user("UAPPROVER1"), reason="bad canary")
        answer = sqs.receive_message(
            QueueUrl=queue, WaitTimeSeconds=0, AttributeNames=["MessageGroupId", "MessageDeduplicationId"]
        )
        (message,) = answer["Messages"]
        assert message["Attributes"]["MessageGroupId"] == "canary-bot"
        assert len(message["Attributes"]["MessageDeduplicationId"]) == 64  # sha256 of the row's key
        assert json.loads(message["Body"])["Subject"] == "ROLLBACK: LEGO API canary rolled back"


def test_a_drainer_without_an_sns_client_leaves_the_fan_out_untouched_for_one_that_has_it() -> None:
    topics = FakeTopics()
    policy = policy_with(notify_topics=[TOPIC])
    world = make_world(policy)
    world.announcer.notifier = SnsFanout(RecordingNotifier(), Outbox(world.store, world.clock), policy)
    world.start()
    world.service.rollback(FN, None, slack_user("UAPPROVER1"), reason="bad canary")
    (queued,) = [m for m in _rows(world) if m.method == "sns_publish"]

    assert OutboxDrainer(world.store, None, world.clock).drain() == 0  # Slack-less, SNS-less: not its rows
    assert world.store.outbox_message(queued.key) == queued  # not even an attempt counted
    assert drain(world, topics) == 1 and [m.topic_arn for m in topics.messages] == [TOPIC]


def _rows(world: World) -> list[Any]:
    return world.store.outbox_heads(world.clock.now())
