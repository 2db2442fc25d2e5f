"""The embedded world of `canary-bot demo`: in-process AWS (moto), a local fake Slack rendered in the terminal,
and the real Bolt app, service, soak runner, alarm intake and SQLite store around them. Time is a manual clock,
so a 1 h soak takes seconds."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from slack_bolt.request import BoltRequest

from bot.aws.alarm_queue import AlarmQueue
from bot.aws.alarms import CloudWatchAlarms
from bot.aws.clients import aws_client
from bot.aws.traffic import LambdaTraffic
from bot.clock import SimulatedClock
from bot.config import Policy, Settings
from bot.runtime import AwsAdapters, Runtime, build_runtime, poison_reporter
from bot.slack_client import RetryPolicy, make_web_client
from bot.store import open_store
from canary_demo import slack_requests as req
from canary_demo.cloudwatch_sinks import AlarmEvaluator, CloudWatchSink, LogsSink
from canary_demo.fake_slack import FakeSlack
from canary_demo.fakes.metrics import FakeMetrics
from canary_demo.preflight import POLICY as PREFLIGHT_POLICY
from canary_demo.preflight import DemoPreflight
from canary_demo.render import Button, TerminalSlack
from canary_demo.seed import BASE_ENV, LEGO_API, PRODUCTION_ALIAS, REDIS_ENV, create_function, publish
from canary_demo.simulator import IN_MEMORY_CACHE, REDIS, MetricsSink, Sampled, TrafficModel

REGION = "us-east-1"
CHANNEL_ID = req.CHANNEL_ID
CHANNEL = "#deploys"
GROUP = "S0SREONCALL"
PEOPLE = {"maria": "U0MARIA", "joe": "U0JOE", "sam": "U0SAM"}  # maria and joe are on call; sam is not
NAMES = {**{uid: name for name, uid in PEOPLE.items()}, GROUP: "sre-oncall"}
START = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

DEMO_POLICY: dict[str, Any] = {
    "defaults": {"soak": "1h", "report_every": "15m"},
    "functions": {
        LEGO_API: {
            "alias": PRODUCTION_ALIAS,
            "channel": CHANNEL,
            "approvers": [GROUP],
            "two_person_rule": True,
            "log_group": f"/aws/lambda/{LEGO_API}",
            "service_name": "LEGO API",
            **PREFLIGHT_POLICY,  # the seed's pre-deployment checklist, before every start
        }
    },
}


class DemoWorld:
    """Use as a context manager: AWS is mocked and the fake Slack serves only inside it."""

    def __init__(self, write: Callable[[str], None], *, publish_redis_version: bool) -> None:
        self.write = write
        self._publish_redis_version = publish_redis_version
        self._tmp = tempfile.TemporaryDirectory(prefix="canary-bot-demo-")
        self._mock: Any = None
        self.slack = FakeSlack(
            usergroups={GROUP: [PEOPLE["maria"], PEOPLE["joe"]]}, channels={CHANNEL: CHANNEL_ID}
        )

    def __enter__(self) -> DemoWorld:
        from moto import mock_aws

        self._mock = mock_aws()
        self._mock.start()
        self.slack.start()
        self._build()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.runtime.scheduler.shutdown()
        self.slack.stop()
        self._mock.stop()
        self._tmp.cleanup()

    # ------------------------------------------------------------ building
    def _build(self) -> None:
        self.lambda_ = aws_client("lambda", region=REGION)
        cloudwatch = aws_client("cloudwatch", region=REGION)
        sns = aws_client("sns", region=REGION)
        sqs = aws_client("sqs", region=REGION)
        logs = aws_client("logs", region=REGION)
        create_function(self.lambda_, LEGO_API, BASE_ENV, iam_client=aws_client("iam", region=REGION))
        publish(self.lambda_, LEGO_API, BASE_ENV, "v1: in-memory cache")
        if self._publish_redis_version:
            publish(self.lambda_, LEGO_API, REDIS_ENV, "v2: Redis cache")
            # $LATEST back to the running configuration, as after a deploy pipeline's publish.
        self.lambda_.create_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS, FunctionVersion="1")
        logs.create_log_group(logGroupName=f"/aws/lambda/{LEGO_API}")
        topic_arn = sns.create_topic(Name="canary-bot-alarms")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="canary-bot-alarms")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

        self.clock = SimulatedClock(START)
        self.metrics = FakeMetrics()
        settings = Settings(
            SLACK_BOT_TOKEN="xoxb-demo",
            SLACK_SIGNING_SECRET=req.SIGNING_SECRET,
            CANARY_ALARM_TOPIC_ARN=topic_arn,
            CANARY_ALARM_QUEUE_URL=queue_url,
            CANARY_ALERT_CHANNEL=CHANNEL,
        )
        client = make_web_client(
            "xoxb-demo", base_url=self.slack.base_url, retry=RetryPolicy(sleep=lambda _s: None)
        )
        traffic = LambdaTraffic(self.lambda_, update_wait_delay_seconds=0)
        alarms = CloudWatchAlarms(cloudwatch, REGION)
        self.preflight = DemoPreflight(self.lambda_, alarms, self.metrics, self.clock)
        self.runtime: Runtime = build_runtime(
            settings,
            slack=client,
            clock=self.clock,
            store=open_store(f"sqlite:///{Path(self._tmp.name) / 'canary-bot.db'}"),
            aws=AwsAdapters(traffic=traffic, metrics=self.metrics, alarms=alarms, preflight=self.preflight),
            policy=Policy.model_validate(DEMO_POLICY),
            inline=True,
        )
        # The real SQS intake, polling the in-process queue without waiting (time here is simulated).
        self.queue = AlarmQueue(
            sqs,
            queue_url,
            self.runtime.responder.handle,
            poison_reporter(self.runtime.store, self.runtime.clock, self.runtime.service.announcer, CHANNEL),
            wait_seconds=0,
        )
        # CloudWatch's part: moto stores the canary alarms but never evaluates them.
        self.alarms = AlarmEvaluator(cloudwatch, sns, topic_arn)
        self.sim = TrafficModel(
            traffic,
            LEGO_API,
            PRODUCTION_ALIAS,
            behaviours={"1": IN_MEMORY_CACHE, "2": REDIS},
            default=REDIS,
            mode=Sampled(seed=2124),
            sinks=[MetricsSink(self.metrics), CloudWatchSink(cloudwatch), LogsSink(logs), self.alarms],
        )
        # The hour before the story: v1 serving production, so the preflight's baseline and the plan's evidence
        # have a stable hour to read (its own simulator: the story's random draws stay the same).
        history = TrafficModel(
            traffic,
            LEGO_API,
            PRODUCTION_ALIAS,
            behaviours={"1": IN_MEMORY_CACHE},
            default=IN_MEMORY_CACHE,
            mode=Sampled(seed=1724),
            sinks=[MetricsSink(self.metrics)],
        )
        for minutes_before in range(60, 0, -5):
            history.minute(START - minutes_before * MINUTE, minutes=5)
        self.screen = TerminalSlack(self.slack, self.write, names=NAMES, channels={CHANNEL_ID: "deploys"})

    # ------------------------------------------------------------ people
    def slash(self, who: str, text: str) -> None:
        self.write(f"\n» @{who} types: /canary {text}")
        signed = req.slash_command(
            text=text,
            user_id=PEOPLE[who],
            user_name=who,
            channel_id=CHANNEL_ID,
            channel_name="deploys",
            response_url=self.slack.response_url(f"{who}-{len(self.slack.calls())}"),
        )
        self._dispatch(signed)

    def press(self, who: str, button: Button) -> None:
        confirm = f" (confirms: {button.confirm})" if button.confirm else ""
        self.write(f"\n» @{who} presses [{button.number}] {button.label}{confirm}")
        signed = req.block_actions(
            button.action_id,
            button.value,
            user_id=PEOPLE[who],
            user_name=who,
            channel_id=button.channel or CHANNEL_ID,
            channel_name="deploys",
            message_ts=button.message_ts or "1700000000.000100",
            response_url=self.slack.response_url(f"{who}-{len(self.slack.calls())}"),
        )
        self._dispatch(signed)

    def submit_reason(self, who: str, reason: str) -> None:
        """Fill in and submit the rollback-reason form the last click opened."""
        from bot import views

        opened = self.slack.calls("views.open")[-1].params["view"]
        self.write(f"\n» @{who} writes the reason “{reason}” and submits")
        signed = req.view_submission(
            views.CALLBACK_ROLLBACK_REASON,
            req.plain_text_values({(views.BLOCK_ROLLBACK_REASON, views.INPUT_ROLLBACK_REASON): reason}),
            private_metadata=opened.get("private_metadata", ""),
            user_id=PEOPLE[who],
            user_name=who,
        )
        self._dispatch(signed)

    def open_home(self, who: str) -> None:
        self.write(f"\n» @{who} opens canary-bot's App Home")
        self._dispatch(req.app_home_opened(PEOPLE[who]))

    def _dispatch(self, signed: req.SignedRequest) -> None:
        response = self.runtime.app.dispatch(BoltRequest(body=signed.body, headers=dict(signed.headers)))
        if response.status != 200:
            self.write(f"  (Slack request answered {response.status}: {response.body})")
        elif response.body:
            self.write("◌ canary-bot (only visible to you)")
            self.screen._text(_ack_text(response.body), "  ")
        self.screen.flush()

    def button(self, label_starts: str) -> Button:
        """The newest button whose label starts with the text."""
        for number in sorted(self.screen.buttons, reverse=True):
            b = self.screen.buttons[number]
            if b.label.lower().startswith(label_starts.lower()):
                return b
        raise LookupError(f"no button starting with {label_starts!r} on screen")

    # ------------------------------------------------------------ time
    def run(self, minutes: int, *, quiet: bool = False, stop: Callable[[], bool] | None = None) -> int:
        """Simulate minute by minute: traffic, CloudWatch's alarms, the alarm queue, the soak loop."""
        for done in range(1, minutes + 1):
            self.sim.minute(self.clock.now().replace(second=0, microsecond=0))
            now = self.clock.advance(MINUTE)
            self.alarms.evaluate(now)
            while self.queue.poll_once():
                pass
            self.runtime.soak.tick(now)
            self.runtime.soak.report(now)
            if not quiet:
                self.screen.flush()
            if stop is not None and stop():
                return done
        return minutes

    def watch(
        self, hours: int, *, step: timedelta = timedelta(minutes=5), stop: Callable[[], bool] | None = None
    ) -> None:
        """After a promotion: the 24 h watch, five simulated minutes at a time (no canary, no alarms left).
        `stop`: end early once it holds (checked after each step)."""
        minutes = int(step.total_seconds() // 60)
        for _ in range(hours * 60 // minutes + 2):  # two steps past the end: the tick that closes the watch
            self.sim.minute(self.clock.now().replace(second=0, microsecond=0), minutes=minutes)
            now = self.clock.advance(step)
            self.runtime.soak.tick(now)
            self.runtime.soak.report(now)
            if stop is not None and stop():
                break
        self.screen.flush()

    @contextmanager
    def quietly(self) -> Iterator[None]:
        """What happens inside is not printed (the story so far, told in one line); buttons stay numbered."""
        write = self.write
        self.write = _say_nothing
        self.screen.set_writer(_say_nothing)
        try:
            yield
            self.screen.flush()
        finally:
            self.write = write
            self.screen.set_writer(write)

    def alias(self) -> tuple[str, dict[str, float]]:
        got = self.lambda_.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)
        return got["FunctionVersion"], dict(got.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}))

    def print_alias(self) -> None:
        version, weights = self.alias()
        self.write(
            f"\n$ aws lambda get-alias --function-name {LEGO_API} --name {PRODUCTION_ALIAS}"
            f"\n  FunctionVersion={version}  RoutingConfig.AdditionalVersionWeights={weights or '{}'}"
        )


def _ack_text(body: str) -> str:
    import json

    try:
        payload = json.loads(body)
    except ValueError:
        return body
    return str(payload.get("text") or payload)


def _say_nothing(_text: str) -> None:
    return None
