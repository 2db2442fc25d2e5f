"""The serverless alarm responder: a Lambda subscribed to the alarm topic rolls a canary back with no replica up.

`handler(event, context)` takes an SNS event (Records[].Sns, the CloudWatch alarm JSON as Message) through the
same AlarmResponder as `serve` (bot.alarm_responder): the same core, the same rollback intent and reconciler,
on the same DynamoDB table (CANARY_STORE_URL=dynamodb://TABLE). It never calls Slack: every message (the
rollback, the alarm alert, the parent's new state) is a row in the store's outbox, which the bot's replicas
deliver when they run; so is the alert fan-out to the function's `notify_topics` (bot.sns_fanout), which a
replica's drainer publishes to SNS. Configuration is the bot's own environment (CANARY_POLICY_FILE,
CANARY_ALERT_CHANNEL, CANARY_LEASE_TTL, AWS_REGION, ...).

A notification that is not a CloudWatch alarm is logged and dropped (retrying cannot fix it); any other
failure raises, so Lambda's asynchronous retries deliver the event again — the rollback intent makes a second
delivery find the work done instead of doing it twice.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any, cast

from slack_sdk import WebClient

from bot.alarm_event import BadNotification, SnsEnvelope
from bot.alarm_responder import AlarmResponder
from bot.composition import alarm_responder
from bot.config import Settings, load_policy
from bot.events import Notifier
from bot.outbox import Outbox
from bot.service import CanaryService
from bot.slack_notifier import SlackNotifier
from bot.sns_fanout import SnsFanout, wants_fanout
from bot.store import dynamodb_table, open_store

log = logging.getLogger(__name__)


class SlackNotCalled:
    """Stands where the notifier's Slack client would be: the responder only writes the outbox."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the alarm responder does not call Slack ({name}); messages go to the outbox")


def handler(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Handle every SNS record of the event; returns what was done with each (for the logs)."""
    responder = build_responder()
    outcomes: list[dict[str, Any]] = []
    for record in event.get("Records", []):
        envelope = envelope_of(record)
        try:
            outcome = responder.handle(envelope)
        except BadNotification as exc:
            log.error("not a CloudWatch alarm, dropped: message %s: %s", envelope.MessageId, exc)
            outcomes.append({"message_id": envelope.MessageId, "action": "ignored", "error": str(exc)})
            continue
        log.info("alarm %s: %s", outcome.alarm_name, outcome.action)
        outcomes.append(outcome.model_dump(mode="json"))
    return {"outcomes": outcomes}


def envelope_of(record: Mapping[str, Any]) -> SnsEnvelope:
    """The SNS message of a Lambda event record (which spells SigningCertUrl / UnsubscribeUrl)."""
    sns = dict(record["Sns"])
    renamed = {"SigningCertUrl": "SigningCertURL", "UnsubscribeUrl": "UnsubscribeURL"}
    for lambda_name, http_name in renamed.items():
        if lambda_name in sns and http_name not in sns:
            sns[http_name] = sns.pop(lambda_name)
    sns.setdefault("SignatureVersion", "1")
    sns.setdefault("Signature", "")
    sns.setdefault("SigningCertURL", "")
    return SnsEnvelope.model_validate(sns)


@functools.cache
def build_responder() -> AlarmResponder:
    """The responder on a service built from the environment; once per Lambda container."""
    from bot.aws.alarms import CloudWatchAlarms
    from bot.aws.clients import cloudwatch_client, lambda_client
    from bot.aws.traffic import LambdaTraffic
    from bot.clock import SystemClock

    settings = Settings()
    if dynamodb_table(settings.store_url) is None:
        raise ValueError(
            f"CANARY_STORE_URL={settings.store_url!r}: the alarm responder needs the replicas' DynamoDB table "
            "(dynamodb://TABLE)"
        )
    policy = load_policy(settings.policy_file)
    clock = SystemClock()
    store = open_store(settings.store_url, region=settings.aws_region)
    outbox = Outbox(store, clock)
    notifier: Notifier = SlackNotifier(cast(WebClient, SlackNotCalled()), policy, clock, outbox=outbox)
    if wants_fanout(policy):
        notifier = SnsFanout(notifier, outbox, policy)
    service = CanaryService(
        traffic=LambdaTraffic(lambda_client(region=settings.aws_region)),
        store=store,
        policy=policy,
        clock=clock,
        notifier=notifier,
        alarms=CloudWatchAlarms(cloudwatch_client(region=settings.aws_region), settings.aws_region),
        alarm_topic_arn=settings.alarm_topic_arn,
        lease_ttl=settings.lease_ttl,
        escalate_after=settings.escalate_after,
    )
    return alarm_responder(service, default_channel=settings.alert_channel)


__all__ = ["build_responder", "envelope_of", "handler"]
