"""The real `canary-bot serve` (the console script in .venv/bin) in HTTP mode, in a world of its own.

    with serve_world(moto_url, tmp_path) as w:
        w.start()                                   # the process, env only; returns once /healthz answers
        d = w.start_canary()                        # /canary start + the Start button, as Slack sends them
        held = w.proxy.hold("UpdateAlias")          # the next alias write waits in the fault proxy...
        w.command(f"weight {FN} 25%", user=APPROVER)
        held.wait_held(10)
        w.kill9()                                   # ...and the bot dies with it in flight
        w.restart()                                 # same store, same moto, same fake Slack
        w.wait_consistent()                         # settled: alias (read from moto) == what the store
                                                    # routes, no intent open, outbox drained, thread posted

The world: a moto server (shared by the module, reset per world) seeded with the seed's function
(`production-lego-api`, versions 1 and 2, alias `production` → 1), an SNS topic delivering to an SQS queue
(CANARY_ALARM_TOPIC_ARN / CANARY_ALARM_QUEUE_URL), the FaultProxy in front of moto (AWS_ENDPOINT_URL), a
FakeSlack in this process (SLACK_API_URL; response_url answers land there too), a SQLite store file, and a
policy file with short periods. GetMetricData is answered by `MetricsFeed` (moto cannot compute the
percentiles Lambda publishes): healthy figures unless a test says otherwise. The proxy also enforces Lambda's
alias RevisionId guard, which moto ignores (FaultProxy.emulate_revision_ids).

SQS and crashes: the proxy caps ReceiveMessage long polls at 1 s, so a killed bot's orphaned poll ends
quickly; `restart()` then makes the messages the dead process had received visible again, standing in for
the 60 s visibility timeout passing while the bot was down (the redelivery SQS makes in production).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config

from bot import canary
from bot.model import AuditRecord, Deployment, State
from bot.store import SqliteStore, open_store
from canary_demo import slack_requests as req
from canary_demo.fake_slack import FakeSlack
from canary_demo.seed import LEGO_API, PRODUCTION_ALIAS, seed_lego_api
from tests.support.fault_proxy import Answer, FaultProxy, ProxiedRequest, iter_receipts, json_answer
from tests.support.moto_server import BIN, die_with_parent, free_port, reset_moto

REGION = "us-east-1"
FN = LEGO_API
ALIAS = PRODUCTION_ALIAS
CHANNEL_ID = req.CHANNEL_ID
STARTER = "USTARTER"
APPROVER = "UAPPROVER1"
APPROVER_2 = "UAPPROVER2"

# The control loop's settings for every process under test.
TICK_EVERY = 1.0
RECONCILE_EVERY = 1.0
LEASE_TTL = 3.0
# How long after a restart (or a fault clearing) the world must be consistent again: a reconcile period,
# a lease left by the dead process running out, and a margin for a loaded 2-core machine.
RECOVERY_SECONDS = RECONCILE_EVERY + LEASE_TTL + 8.0
STARTUP_SECONDS = 60.0
ALARMS_NOT_CREATED = "CloudWatch alarms could not be created"
REQUEST_TIMEOUT = 10.0

T = TypeVar("T")


# ---------------------------------------------------------------- policy
def policy_yaml(
    *, steps: str = "[5%]", soak: str = "1h", report_every: str = "1h", period: str = "60s", **defaults: Any
) -> str:
    """A policy for the seed's function: approvers by user ID (no usergroups.users.list), cache checks off
    (no Logs Insights: moto ignores its queries), no watch after a promotion, no rollback lock (the stories
    start v2 again after each rollback).

    `period` 60s (CloudWatch alarms need a multiple of 60 s) judges nothing within a test's lifetime; tests of
    the soak pass a short one (2s), and then the canary's alarms cannot be created (a warning is posted)."""
    settings: dict[str, Any] = {
        "steps": steps,
        "soak": soak,
        "report_every": report_every,
        "period": period,
        "evaluation_periods": 1,
        "min_invocations": 10,
        "approval_timeout": "1h",
        "watch_after_promote": "0s",
        "lock_after_rollback": "false",
        **defaults,
    }
    lines = ["defaults:"]
    lines += [f"  {k}: {v}" for k, v in settings.items()]
    lines += [
        "  thresholds: {error_rate: 1%, p95_ms: 100, p99_ms: 300, cache_hit_rate: null, cache_miss_p95_ms: null}",
        "functions:",
        f"  {FN}:",
        f"    alias: {ALIAS}",
        '    channel: "#deploys"',
        f"    approvers: [{APPROVER}, {APPROVER_2}]",
        f'    allowed_channels: ["#deploys", {CHANNEL_ID}]',
        "    service_name: LEGO API",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- metrics
@dataclass
class MetricsFeed:
    """GetMetricData answered from a few numbers: `invocations` per period per version, the canary's error
    rate, and Duration percentiles. Each query is answered from its MetricName, Stat and ExecutedVersion."""

    canary_version: str = "2"
    invocations: float = 1000.0
    canary_error_rate: float = 0.0
    stable_error_rate: float = 0.0
    p50_ms: float = 20.0
    p95_ms: float = 40.0
    p99_ms: float = 60.0
    calls: int = 0

    def respond(self, request: ProxiedRequest) -> Answer:
        self.calls += 1
        body = request.json()
        start, end = float(body["StartTime"]), float(body["EndTime"])
        results = []
        for query in body.get("MetricDataQueries", []):
            stat = query.get("MetricStat", {})
            metric = stat.get("Metric", {})
            version = next(
                (d["Value"] for d in metric.get("Dimensions", []) if d["Name"] == "ExecutedVersion"), ""
            )
            value = self._value(metric.get("MetricName", ""), stat.get("Stat", ""), version)
            period = float(stat.get("Period", 60))
            stamps = []
            t = start
            while t + period <= end + 1e-6:
                stamps.append(t)
                t += period
            results.append(
                {
                    "Id": query["Id"],
                    "Label": query.get("Label", query["Id"]),
                    "Timestamps": stamps if value is not None else [],
                    "Values": [value] * len(stamps) if value is not None else [],
                    "StatusCode": "Complete",
                }
            )
        return json_answer({"MetricDataResults": results, "Messages": []})

    def _value(self, name: str, stat: str, version: str) -> float | None:
        rate = self.canary_error_rate if version == self.canary_version else self.stable_error_rate
        if name == "Invocations":
            return self.invocations
        if name == "Errors":
            return self.invocations * rate
        if name == "Throttles":
            return 0.0
        if name == "Duration":
            return {"p50": self.p50_ms, "p95": self.p95_ms, "p99": self.p99_ms}.get(stat, self.p50_ms)
        return None


# ---------------------------------------------------------------- the process
class BotProcess:
    """One `canary-bot serve` process. Always stopped by its owner (ServeWorld closes it in finally)."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.env = env
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start it and wait for /healthz; returns the moment (monotonic) it answered."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "canary-bot"), "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"canary-bot serve exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return time.monotonic()
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"canary-bot serve not healthy in {STARTUP_SECONDS}s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill9()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process's output, without the scheduler's every-second job lines."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        kept = [line for line in text.splitlines() if "apscheduler" not in line]
        return "\n".join(kept[-lines:])


# ---------------------------------------------------------------- the world
@dataclass
class ServeWorld:
    moto_url: str
    tmp_path: Path
    proxy: FaultProxy
    slack: FakeSlack
    metrics: MetricsFeed
    topic_arn: str
    queue_url: str
    env: dict[str, str]
    port: int
    store_path: Path
    bot: BotProcess | None = None
    replicas: list[BotProcess] = field(default_factory=list)
    starts: int = 0
    outside_writes: int = 0  # UpdateAlias calls made by the test through the proxy, not by the bot
    healthy_at: float = 0.0
    _store: SqliteStore | None = None
    _requests: int = 0
    acks: list[str] = field(default_factory=list)  # "what -> status body" of every request sent to the bot
    _receipts: list[str] = field(default_factory=list)

    # -- life cycle
    def start(self) -> None:
        """Start a `serve` process on the world's store, port and settings (the first, or after kill9)."""
        assert self.bot is None or not self.bot.alive, "a bot is already running"
        self.starts += 1
        self.bot = BotProcess(self.env, self.port, self.tmp_path / f"bot-{self.starts}.log")
        self.healthy_at = self.bot.start()

    def start_replica(self) -> BotProcess:
        """A second `serve` process on the same store, queue and settings (another port): a replica."""
        self.starts += 1
        replica = BotProcess(
            {**self.env, "PORT": str(free_port())}, 0, self.tmp_path / f"bot-{self.starts}.log"
        )
        replica.port = int(replica.env["PORT"])
        self.replicas.append(replica)
        replica.start()
        return replica

    def kill9(self) -> None:
        """SIGKILL the bot, wherever it is; its calls held at the fake Slack are abandoned."""
        assert self.bot is not None
        self.bot.kill9()
        self.slack.abandon_holds()
        # The dead process's last long poll may still be open at moto: let it end (capped at 1 s).
        self.proxy.wait_idle("ReceiveMessage", timeout=10)

    def restart(self) -> None:
        """After kill9: SQS redelivers what the dead process had received, and a new process starts."""
        assert self.bot is not None and not self.bot.alive, "kill9() first"
        self.redeliver()
        self.start()

    def close(self) -> None:
        for process in [*self.replicas, *([self.bot] if self.bot is not None else [])]:
            process.kill9()  # nothing to keep: the world is thrown away
        if self._store is not None:
            self._store.close()
            self._store = None

    def fresh(self) -> None:
        """Throw the world away and start again: every process killed, moto reset and seeded, a new store,
        Slack's records and every fault cleared; then a new bot."""
        self.close()
        self.bot = None
        self.replicas.clear()
        self._store = None
        self.proxy.clear()
        self.slack.abandon_holds()
        self.slack.reset()
        self._receipts.clear()
        self.metrics.canary_error_rate = 0.0
        seed_world(self.moto_url)
        self.store_path = self.tmp_path / f"canary-bot-{self.starts + 1}.db"
        self.env["CANARY_STORE_URL"] = f"sqlite:///{self.store_path}"
        self.start()

    def redeliver(self) -> None:
        """Make every message the bot received and did not delete visible again (its timeout has passed)."""
        sqs = self.aws("sqs")
        for handle in self._receipts:
            with contextlib.suppress(Exception):
                sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=handle, VisibilityTimeout=0
                )
        self._receipts.clear()

    # -- AWS, straight to moto (never through the proxy)
    def aws(self, service: str) -> Any:
        config = Config(retries={"mode": "standard", "total_max_attempts": 3}, read_timeout=15)
        return _client(service, endpoint_url=self.moto_url, config=config)

    def alias(self) -> tuple[str, dict[str, float]]:
        got = self.aws("lambda").get_alias(FunctionName=FN, Name=ALIAS)
        return got["FunctionVersion"], dict(got.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}))

    def change_alias_behind_the_bot(self, version: str, weights: dict[str, float]) -> None:
        """Someone else's UpdateAlias (through the proxy, so the alias's RevisionId moves as in Lambda)."""
        self.outside_writes += 1
        config = Config(retries={"mode": "standard", "total_max_attempts": 3}, read_timeout=15)
        client = _client("lambda", endpoint_url=self.proxy.url, config=config)
        client.update_alias(
            FunctionName=FN,
            Name=ALIAS,
            FunctionVersion=version,
            RoutingConfig={"AdditionalVersionWeights": weights},
        )

    def publish_alarm(self, *, version: str = "2", metric: str = "error-rate", reason: str = "") -> str:
        """A CloudWatch alarm entering ALARM, published to the topic as CloudWatch does (moto's
        set_alarm_state delivers nothing); moto hands it to the queue. Returns the SNS MessageId."""
        name = f"canary-bot/{FN}/{ALIAS}/v{version}/{metric}"
        message = alarm_json(name, version=version, reason=reason or f"{metric} above threshold")
        published = self.aws("sns").publish(
            TopicArn=self.topic_arn,
            Subject=f'ALARM: "{name}" in US East (N. Virginia)'[:100],
            Message=json.dumps(message),
        )
        return str(published["MessageId"])

    def bot_alias_writes(self) -> int:
        """UpdateAlias calls of the bot that reached moto (were applied)."""
        return self.proxy.forwarded("UpdateAlias") - self.outside_writes

    def visible_messages(self) -> int:
        attrs = self.aws("sqs").get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])

    def queue_depth(self) -> int:
        attrs = self.aws("sqs").get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    # -- the store (read in this process; the bot is the only writer)
    @property
    def store(self) -> SqliteStore:
        if self._store is None:
            self._store = open_store(f"sqlite:///{self.store_path}")
        return self._store

    def deployments(self) -> list[Deployment]:
        """Every deployment of the function, newest first."""
        return self.store.history(FN, ALIAS, 100)

    def latest(self) -> Deployment | None:
        found = self.deployments()
        return found[0] if found else None

    def deployment(self, deployment_id: str) -> Deployment:
        found = self.store.get(deployment_id)
        assert found is not None, f"deployment {deployment_id} is lost:\n{self.describe()}"
        return found

    def audit(self, deployment_id: str) -> list[AuditRecord]:
        return self.store.audit_for(deployment_id)

    # -- Slack, as Slack sends it
    def _post(self, signed: req.SignedRequest) -> tuple[int, str]:
        assert self.bot is not None
        request = urllib.request.Request(
            f"{self.bot.url}/slack/events", data=signed.body.encode(), headers=signed.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def _key(self, what: str) -> str:
        self._requests += 1
        return f"{what}-{self._requests}-{uuid.uuid4().hex[:6]}"

    def command(self, text: str, user: str = STARTER) -> str:
        """/canary TEXT from `user` in the deploy channel; returns the key of its response_url."""
        key = self._key("cmd")
        status, body = self._post(
            req.slash_command(
                text=text,
                user_id=user,
                user_name=user.lower(),
                channel_id=CHANNEL_ID,
                response_url=self.slack.response_url(key),
            )
        )
        self.acks.append(f"/canary {text} [{key}] -> {status} {body[:200]}")
        assert status == 200, f"/canary {text} was answered {status}: {body}"
        return key

    def click(self, action_id: str, value: str, user: str = APPROVER, key: str | None = None) -> str:
        """A button press (a real block_actions payload); returns the key of its response_url."""
        key = key or self._key("click")
        status, body = self._post(
            req.block_actions(
                action_id,
                value,
                user_id=user,
                user_name=user.lower(),
                channel_id=CHANNEL_ID,
                response_url=self.slack.response_url(key),
            )
        )
        self.acks.append(f"click {action_id} by {user} [{key}] -> {status} {body[:200]}")
        assert status == 200, f"click {action_id} was answered {status}: {body}"
        return key

    def responses(self, key: str) -> list[dict[str, Any]]:
        return [c.params for c in self.slack.calls("response_url") if c.path == f"/response/{key}"]

    def response(self, key: str, timeout: float = 15.0) -> dict[str, Any]:
        """The (first) answer posted to the response_url of request `key`."""
        return wait_for(lambda: next(iter(self.responses(key)), None), timeout, f"an answer to {key}", self)

    def buttons_of(self, payload: dict[str, Any]) -> dict[str, str]:
        """action_id → value of every button in a message or answer."""
        found: dict[str, str] = {}
        for block in payload.get("blocks") or []:
            elements = block.get("elements", []) if block.get("type") == "actions" else []
            for element in [*elements, block.get("accessory") or {}]:
                if element.get("type") == "button":
                    found[element["action_id"]] = element.get("value", "")
        return found

    def prompt(self, text: str, user: str = APPROVER) -> dict[str, str]:
        """/canary promote|rollback …: the buttons of the answer."""
        answer = self.response(self.command(text, user=user))
        buttons = self.buttons_of(answer)
        assert buttons, f"/canary {text} gave no buttons: {answer.get('text')}"
        return buttons

    def preview(self, version: str = "2", user: str = STARTER) -> dict[str, str]:
        return self.prompt(f"start {FN} {version}", user=user)

    def start_canary(self, version: str = "2") -> Deployment:
        """Preview, then Start: the alias routes the first step, the store says canary."""
        from bot import views

        buttons = self.preview(version)
        self.click(views.ACTION_START_CONFIRM, buttons[views.ACTION_START_CONFIRM], user=STARTER)
        return self.wait_state(State.CANARY)

    # -- waiting and checking
    def wait_state(self, state: State, timeout: float = 15.0) -> Deployment:
        def reached() -> Deployment | None:
            d = self.latest()
            return d if d is not None and d.state is state else None

        return wait_for(reached, timeout, f"the deployment to be {state.value}", self)

    def open_intents(self) -> list[Any]:
        """Traffic changes decided and not finished (the store's intents, on a store that has them)."""
        found = getattr(self.store, "open_intents", None)
        return list(found()) if found is not None else []

    def outbox_pending(self) -> int:
        """Slack messages decided and not delivered yet (on a store with an outbox)."""
        found = getattr(self.store, "outbox_pending", None)
        return int(found()) if found is not None else 0

    def consistency(self, *, intents: bool = True) -> str | None:
        """None once the world has settled: no traffic change open, no Slack message waiting in the outbox, a
        live canary's thread posted (its ts saved), and the alias is what the store says the latest deployment
        routes; else what is not settled yet."""
        d = self.latest()
        alias = self.alias()
        pending = self.open_intents() if intents else []
        if pending:
            return "open intents: " + ", ".join(f"{i.kind}/{i.status} x{i.attempts}" for i in pending)
        unsent = self.outbox_pending()
        if unsent:
            return f"{unsent} Slack message(s) still in the outbox"
        if d is None:
            return None if not alias[1] else f"no deployment, but the alias routes {alias}"
        version, weights = canary.expected_routing(d)
        if d.is_live and d.state is not State.PLANNED and d.thread_ts is None:
            return f"{d.id} is {d.state.value} without its thread in Slack yet"
        if d.state is State.ROLLING_BACK:
            return f"{d.id} still rolling back; alias {alias}"
        if alias[0] != version or not _same(alias[1], weights):
            return f"{d.id} is {d.state.value} (routes {version} {weights}) but the alias routes {alias}"
        return None

    def wait_consistent(
        self, timeout: float = RECOVERY_SECONDS, *, open_change_ok: Callable[[], bool] | None = None
    ) -> Deployment | None:
        """Wait until the world has settled (see consistency; while `open_change_ok()` says so, a traffic
        change may still be open); fail with the whole picture if it does not happen in time."""

        def settled() -> bool | None:
            intents = open_change_ok is None or not open_change_ok()
            return self.consistency(intents=intents) is None or None

        wait_for(settled, timeout, "alias == store", self)
        return self.latest()

    def duplicated_messages(self) -> list[str]:
        """Messages posted twice (same channel, thread, text and blocks), and response_url answers delivered
        twice (failed or abandoned attempts do not count: Slack never showed them)."""
        seen: Counter[str] = Counter()
        for m in self.slack.messages():
            if ALARMS_NOT_CREATED in (m.text or ""):
                continue  # a consequence of a 2 s test period, told again by each attempt to create them
            seen[json.dumps([m.channel, m.thread_ts, m.text, m.blocks], sort_keys=True)] += 1
        for call in self.slack.delivered_responses():
            seen[json.dumps([call.path, call.params], sort_keys=True)] += 1
        return [key[:200] for key, n in seen.items() if n > 1]

    def thread_text(self, d: Deployment | None = None) -> str:
        """Everything posted in the deployment's thread (and the parent), as one string."""
        d = d or self.latest()
        assert d is not None
        parts = []
        for m in self.slack.messages():
            if d.thread_ts is None or m.ts == d.thread_ts or m.thread_ts == d.thread_ts:
                parts.append((m.text or "") + " " + json.dumps(m.blocks or [], ensure_ascii=False))
        return "\n".join(parts)

    def describe(self) -> str:
        """The whole picture, for failure messages."""
        lines = []
        with contextlib.suppress(Exception):
            lines.append(f"alias now: {self.alias()}")
        with contextlib.suppress(Exception):
            for d in self.deployments()[:3]:
                lines.append(
                    f"deployment {d.id}: {d.state.value} weight={d.weight} rev={d.revision} ({d.reason})"
                )
                for r in self.audit(d.id)[-12:]:
                    lines.append(
                        f"  audit {r.at:%H:%M:%S} {r.action}/{r.phase} by {r.actor}: {r.reason or ''}"
                    )
        with contextlib.suppress(Exception):
            for i in self.open_intents():
                lines.append(
                    f"open intent {i.id} {i.kind} -> {i.target} {i.status} attempts={i.attempts} "
                    f"next={i.next_attempt_at} error={i.last_error}"
                )
        with contextlib.suppress(Exception):
            lines.append(f"outbox pending: {self.outbox_pending()}")
        lines.append(
            f"proxy (test's own writes: {self.outside_writes}): "
            + ", ".join(
                f"{op} seen={self.proxy.seen(op)} applied={self.proxy.forwarded(op)}"
                for op in ("GetAlias", "UpdateAlias", "GetMetricData", "DeleteMessage")
            )
        )
        for m in self.slack.messages()[-8:]:
            lines.append(f"slack {m.ts} thread={m.thread_ts}: {(m.text or '')[:120]}")
        lines.append("slack calls (last 12): " + ", ".join(c.path for c in self.slack.calls()[-12:]))
        lines += [f"sent {ack}" for ack in self.acks[-4:]]
        if self.bot is not None:
            lines.append("bot log tail:\n" + self.bot.log_tail(25))
        return "\n".join(lines)


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-6 for k in a)


def wait_for(check: Callable[[], T | None], timeout: float, what: str, world: ServeWorld | None = None) -> T:
    """Poll `check` until it returns something other than None; AssertionError (with the picture) after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            picture = f"\n{world.describe()}" if world is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{picture}")
        time.sleep(0.1)


def alarm_json(name: str, *, version: str, reason: str) -> dict[str, Any]:
    """The document CloudWatch puts in an alarm action's SNS Message (single-metric trigger)."""
    now = datetime.now(UTC)
    return {
        "AlarmName": name,
        "AlarmDescription": "canary-bot canary alarm",
        "AWSAccountId": "123456789012",
        "NewStateValue": "ALARM",
        "NewStateReason": reason,
        "StateChangeTime": now.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "Region": "US East (N. Virginia)",
        "AlarmArn": f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{name}",
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": "Errors",
            "Namespace": "AWS/Lambda",
            "StatisticType": "Statistic",
            "Statistic": "SUM",
            "Dimensions": [
                {"value": FN, "name": "FunctionName"},
                {"value": f"{FN}:{ALIAS}", "name": "Resource"},
                {"value": version, "name": "ExecutedVersion"},
            ],
            "Period": 300,
            "EvaluationPeriods": 2,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0.001,
            "TreatMissingData": "notBreaching",
        },
    }


def _client(service: str, *, endpoint_url: str, config: Config) -> Any:
    """A client from its own session: boto3's default session is not thread-safe, and worlds may run in
    threads side by side."""
    return boto3.session.Session().client(  # type: ignore[call-overload]
        service, endpoint_url=endpoint_url, region_name=REGION, config=config
    )


def seed_world(moto_url: str) -> tuple[str, str]:
    """Reset moto and seed it: the seed's function and alias, the alarm topic delivering to the alarm queue.
    Returns (topic ARN, queue URL); the same names give the same ones after every reset."""
    reset_moto(moto_url)
    direct: dict[str, Any] = {"endpoint_url": moto_url, "config": Config(retries={"total_max_attempts": 3})}
    seed_lego_api(_client("lambda", **direct), _client("iam", **direct))
    sns, sqs = _client("sns", **direct), _client("sqs", **direct)
    topic_arn = sns.create_topic(Name="canary-bot-alarms")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="canary-bot-alarms")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return str(topic_arn), str(queue_url)


def _cap_long_poll(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "WaitTimeSeconds": min(int(body.get("WaitTimeSeconds", 0)), 1)}


@contextmanager
def serve_world(moto_url: str, tmp_path: Path, *, policy: str | None = None) -> Iterator[ServeWorld]:
    """A fresh world (moto reset and seeded, a new store); the bot is not started yet (call start())."""
    topic_arn, queue_url = seed_world(moto_url)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy or policy_yaml())
    store_path = tmp_path / "canary-bot.db"
    port = free_port()
    metrics = MetricsFeed()
    with (
        FakeSlack(channels={"#deploys": CHANNEL_ID}) as slack,
        FaultProxy(moto_url) as proxy,
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CANARY_", "SLACK_", "AWS_"))}
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": proxy.url,
                "SLACK_BOT_TOKEN": "xoxb-fault-injection",
                "SLACK_SIGNING_SECRET": req.SIGNING_SECRET,
                "SLACK_API_URL": slack.base_url,
                "PORT": str(port),
                "CANARY_STORE_URL": f"sqlite:///{store_path}",
                "CANARY_POLICY_FILE": str(policy_file),
                "CANARY_ALARM_TOPIC_ARN": topic_arn,
                "CANARY_ALARM_QUEUE_URL": queue_url,
                "CANARY_TICK_EVERY": f"{TICK_EVERY:g}s",
                "CANARY_RECONCILE_EVERY": f"{RECONCILE_EVERY:g}s",
                "CANARY_LEASE_TTL": f"{LEASE_TTL:g}s",
                "CANARY_ESCALATE_AFTER": "2",
                "MPLBACKEND": "Agg",
                "PYTHONUNBUFFERED": "1",
            }
        )
        world = ServeWorld(
            moto_url=moto_url,
            tmp_path=tmp_path,
            proxy=proxy,
            slack=slack,
            metrics=metrics,
            topic_arn=topic_arn,
            queue_url=queue_url,
            env=env,
            port=port,
            store_path=store_path,
        )
        proxy.emulate_revision_ids()
        proxy.serve("GetMetricData", metrics.respond)
        proxy.rewrite("ReceiveMessage", _cap_long_poll)
        proxy.observe(
            lambda request, answer: (
                world._receipts.extend(iter_receipts(answer))
                if request.operation == "ReceiveMessage"
                else None
            ),
            delivered=False,
        )
        try:
            yield world
        finally:
            world.close()
            proxy.clear()


__all__ = [
    "ALIAS",
    "APPROVER",
    "APPROVER_2",
    "CHANNEL_ID",
    "FN",
    "RECOVERY_SECONDS",
    "STARTER",
    "TICK_EVERY",
    "MetricsFeed",
    "ServeWorld",
    "policy_yaml",
    "serve_world",
    "wait_for",
]
