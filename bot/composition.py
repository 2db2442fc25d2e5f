"""The one composition root: Settings → the service graph, for every way in (CLI verbs and `canary-bot serve`).

Whatever starts a canary gets the same locks: CloudWatch alarms on the canary (with their actions on
CANARY_ALARM_TOPIC_ARN), the alarm-firing guard at start, the deployment's Slack thread when SLACK_BOT_TOKEN
is set, and the same store and audit log. `serve` adds the Bolt app, the soak scheduler and the alarm intakes
around it (bot.runtime).
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient

from bot.actors import Actor, Authorizer, cli_actor
from bot.config import Policy, Settings, load_policy
from bot.events import Notifier, NullNotifier
from bot.outbox import Outbox, OutboxDrainer
from bot.ports import (
    AlarmsPort,
    Clock,
    MetricsPort,
    PreflightPort,
    StorePort,
    TopicPublisher,
    TrafficPort,
)
from bot.service import CanaryService, why_alarm_rollback_off
from bot.sns_fanout import SnsFanout, wants_fanout
from bot.usecases.runbook import Runbook

if TYPE_CHECKING:
    from bot.alarm_responder import AlarmResponder
    from bot.soak import ChartRenderer, SoakRunner
    from bot.tick_lease import TickLeases
    from bot.watch import PromotionWatch

log = logging.getLogger(__name__)


@dataclass
class AwsAdapters:
    traffic: TrafficPort
    metrics: MetricsPort
    alarms: AlarmsPort | None
    sqs: Any | None = None  # boto3 SQS client, for the alarm queue
    preflight: PreflightPort | None = None  # the pre-deployment checklist's facts
    topics: TopicPublisher | None = None  # SNS for the alert fan-out (made on demand when None)


def aws_adapters(settings: Settings) -> AwsAdapters:
    """The real adapters, on boto3 clients that honour AWS_ENDPOINT_URL."""
    from bot.aws.alarms import CloudWatchAlarms
    from bot.aws.cache_logs import LogsInsightsCache
    from bot.aws.clients import cloudwatch_client, lambda_client, logs_client, sqs_client
    from bot.aws.metrics import CloudWatchMetrics
    from bot.aws.traffic import LambdaTraffic

    region = settings.aws_region
    cloudwatch = cloudwatch_client(region=region)
    logs = logs_client(region=region)
    cache = LogsInsightsCache(logs, sleep=time.sleep, monotonic=time.monotonic)
    lambdas = lambda_client(region=region)
    metrics = CloudWatchMetrics(cloudwatch, cache)
    alarms = CloudWatchAlarms(cloudwatch, region, logs=logs)
    return AwsAdapters(
        traffic=LambdaTraffic(lambdas),
        metrics=metrics,
        alarms=alarms,
        sqs=sqs_client(region=region) if settings.alarm_queue_url else None,
        preflight=aws_preflight(region, lambdas=lambdas, alarms=alarms, metrics=metrics),
    )


def aws_preflight(region: str, *, lambdas: Any, alarms: AlarmsPort, metrics: MetricsPort) -> PreflightPort:
    """The checklist's read-only describe calls (billing alarms are read in us-east-1, where they live)."""
    from bot.aws.clients import aws_client, cloudwatch_client
    from bot.aws.preflight import BILLING_REGION, AwsPreflight
    from bot.clock import SystemClock

    return AwsPreflight(
        lambda_client=lambdas,
        ec2=aws_client("ec2", region=region),
        elasticache=aws_client("elasticache", region=region),
        secretsmanager=aws_client("secretsmanager", region=region),
        billing_cloudwatch=cloudwatch_client(region=BILLING_REGION),
        iam=aws_client("iam", region=region),
        sts=aws_client("sts", region=region),
        clock=SystemClock(),
        alarms=alarms,
        metrics=metrics,
    )


def sns_topics(region: str) -> TopicPublisher:
    """SNS Publish for the alert fan-out, on a client that gives up within seconds."""
    from bot.aws.clients import aws_client
    from bot.aws.topics import FANOUT_CONFIG, SnsTopics

    return SnsTopics(aws_client("sns", region=region, config=FANOUT_CONFIG))


class LazyTopics:
    """sns_topics(region), made on the first publish: a drainer can deliver the fan-out's rows (queued by any
    replica or by the serverless responder) without every process making an SNS client at start."""

    def __init__(self, region: str) -> None:
        self._region = region
        self._topics: TopicPublisher | None = None

    def publish(self, topic_arn: str, *, subject: str, message: str, dedup_id: str | None = None) -> str:
        if self._topics is None:
            self._topics = sns_topics(self._region)
        return self._topics.publish(topic_arn, subject=subject, message=message, dedup_id=dedup_id)


def fanout_publisher(settings: Settings, aws: AwsAdapters) -> TopicPublisher:
    """What the outbox's drainer publishes the alert fan-out's rows with."""
    return aws.topics or LazyTopics(settings.aws_region)


def slack_client(settings: Settings) -> WebClient | None:
    """The Web API client when SLACK_BOT_TOKEN is set; None otherwise (then nothing is posted to Slack)."""
    from bot.slack_client import make_web_client

    token = (settings.slack_bot_token or "").strip()
    return make_web_client(token, base_url=settings.slack_api_url) if token else None


def build_service(
    settings: Settings,
    *,
    policy: Policy,
    clock: Clock,
    store: StorePort,
    aws: AwsAdapters,
    slack: WebClient | None,
    outbox: Outbox | None = None,
) -> CanaryService:
    """The service with its alarms, guards, notifier and authorizer: the same for every way in.

    `outbox` queues the Slack messages and the alert fan-out durably (bot.outbox); without one the notifier
    posts directly, and the fan-out gets an outbox of its own, drained on the caller's thread.
    """
    from bot.slack_groups import SlackGroupDirectory
    from bot.slack_notifier import SlackNotifier

    notifier: Notifier = NullNotifier()
    groups = None
    if slack is not None:
        notifier = SlackNotifier(
            slack,
            policy,
            clock,
            dashboard_url=_dashboard_links(aws.alarms, settings.aws_region),
            alarm_rollback_off=why_alarm_rollback_off(aws.alarms is not None, settings.alarm_topic_arn),
            outbox=outbox,
        )
        groups = SlackGroupDirectory(slack, clock, store=store)
    if wants_fanout(policy):
        if outbox is None:
            drainer = OutboxDrainer(
                store, None, clock, lane_lease=settings.lease_ttl, topics=fanout_publisher(settings, aws)
            )
            outbox = Outbox(store, clock, wake=drainer.drain)
        notifier = SnsFanout(notifier, outbox, policy)
    return CanaryService(
        traffic=aws.traffic,
        store=store,
        policy=policy,
        clock=clock,
        notifier=notifier,
        authorizer=Authorizer(groups),
        alarms=aws.alarms,
        alarm_topic_arn=settings.alarm_topic_arn,
        lease_ttl=settings.lease_ttl,
        escalate_after=settings.escalate_after,
        preflight=aws.preflight,
    )


def soak_runner(
    service: CanaryService,
    metrics: MetricsPort,
    *,
    chart: ChartRenderer | None = None,
    leases: TickLeases | None = None,
) -> SoakRunner:
    """The soak loop (and the promotion watch inside it) on the service's use cases and ports."""
    from bot.soak import SoakRunner

    ports = service.ports
    return SoakRunner(
        automatic=service.automatic,
        lookup=service.lookup,
        announcer=service.announcer,
        reconciler=service.reconciler,
        store=ports.store,
        traffic=ports.traffic,
        clock=ports.clock,
        metrics=metrics,
        watch=promotion_watch(service),
        chart=chart,
        leases=leases,
    )


def promotion_watch(service: CanaryService) -> PromotionWatch:
    """The 24 h watch after a promotion (run inside the soak loop's tick)."""
    from bot.watch import PromotionWatch

    return PromotionWatch(
        store=service.ports.store, lookup=service.lookup, queries=service.queries, announcer=service.announcer
    )


def alarm_responder(service: CanaryService, *, default_channel: str | None = None) -> AlarmResponder:
    """What a CloudWatch alarm notification does, on the service's use cases and ports."""
    from bot.alarm_responder import AlarmResponder

    return AlarmResponder(
        automatic=service.automatic,
        lookup=service.lookup,
        announcer=service.announcer,
        store=service.ports.store,
        clock=service.ports.clock,
        default_channel=default_channel,
    )


def build_runbook(service: CanaryService) -> Runbook:
    """Revert, fallback and locks: built with the service's other use cases, on the same ports."""
    return service.runbook


def service_from_settings(settings: Settings, *, clock: Clock | None = None) -> CanaryService:
    """The CLI's service: real AWS adapters, the configured store and policy, Slack when a token is set."""
    from bot.clock import SystemClock
    from bot.store import open_store

    clock = clock or SystemClock()
    store = open_store(settings.store_url, region=settings.aws_region)
    slack = slack_client(settings)
    policy = load_policy(settings.policy_file)
    aws = aws_adapters(settings)
    outbox = None
    if slack is not None or wants_fanout(policy):
        # The same durable outbox as serve, drained at once: the CLI's messages (and SNS alerts) are out when
        # it exits (a message Slack or SNS refused stays queued, and serve's drainer retries it).
        drainer = OutboxDrainer(
            store, slack, clock, lane_lease=settings.lease_ttl, topics=fanout_publisher(settings, aws)
        )
        outbox = Outbox(store, clock, wake=drainer.drain)
    return build_service(
        settings, policy=policy, clock=clock, store=store, aws=aws, slack=slack, outbox=outbox
    )


def os_actor() -> Actor:
    """The person at the terminal, as the operating system knows them: 'cli:<OS user>@<host>'."""
    try:
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        user = getpass.getuser()
    return cli_actor(f"{user}@{socket.gethostname()}")


def _dashboard_links(alarms: AlarmsPort | None, region: str) -> Any:
    if alarms is None:
        return None
    from bot.aws.alarms import dashboard_name, dashboard_url

    return lambda d: dashboard_url(region, dashboard_name(d))
