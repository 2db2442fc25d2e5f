"""Three `canary-bot serve` processes on one DynamoDB table and one alarm queue (moto_server): one alarm gives one
rollback and one alert — and two alarms at once too — whichever replicas receive them.

The README's production steps where they can run here: `canary-bot init-store` creates the table, the CLI and
the replicas share it through CANARY_STORE_URL=dynamodb://TABLE and AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from bot.store.dynamodb import DynamoStore, create_table
from canary_demo.moto_server import free_port as _free_port
from canary_demo.moto_server import running_moto
from canary_demo.seed import LEGO_API, PRODUCTION_ALIAS, seed_lego_api
from tests.support.fake_slack import FakeSlack
from tests.support.fault_proxy import FaultProxy
from tests.support.serve_process import policy_yaml
from tests.support.sns_signing import alarm_message

BIN = Path(sys.executable).parent
TABLE = "canary-bot-replicas"
REPLICAS = 3


def _wait(what: str, done: Callable[[], bool], timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def moto_server() -> Iterator[str]:
    with running_moto() as url:
        yield url


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
        return True
    except OSError:
        return False


def _boto(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(channels={"#deploys": "C0DEPLOYS"}) as fake:
        yield fake


def test_two_alarms_reaching_three_replicas_give_one_rollback_and_one_alert(
    moto_server: str, slack: FakeSlack, tmp_path: Path
) -> None:
    seed_lego_api(_boto("lambda", moto_server), _boto("iam", moto_server))
    sns, sqs = _boto("sns", moto_server), _boto("sqs", moto_server)
    topic = sns.create_topic(Name="canary-bot-alarms")["TopicArn"]
    queue = sqs.create_queue(QueueName="canary-bot-alarms")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_server,
        "CANARY_STORE_URL": f"dynamodb://{TABLE}",
        "CANARY_ALARM_TOPIC_ARN": topic,
        "CANARY_ALARM_QUEUE_URL": queue,
        "CANARY_RECONCILE_EVERY": "1s",
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "test-secret",
        "SLACK_API_URL": slack.base_url,
    }
    env.pop("CANARY_POLICY_FILE", None)
    env.pop("SLACK_APP_TOKEN", None)

    def cli(*words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "canary-bot"), *words],
            env={**env, "CANARY_ACTOR": "maria"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert cli("init-store").returncode == 0
    started = cli("start", LEGO_API, "2", "--yes")
    assert started.returncode == 0, started.stderr
    lam = _boto("lambda", moto_server)

    def routing() -> tuple[str, dict[str, float]]:
        alias = lam.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)
        return alias["FunctionVersion"], dict(
            alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
        )

    assert routing() == ("1", {"2": 0.05})

    ports = [_free_port() for _ in range(REPLICAS)]
    replicas = [
        subprocess.Popen(
            [str(BIN / "canary-bot"), "serve"],
            env={**env, "PORT": str(port)},
            stdout=(tmp_path / f"replica-{n}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for n, port in enumerate(ports)
    ]
    try:
        for port in ports:
            _wait(f"replica on {port}", lambda port=port: _answers(f"http://127.0.0.1:{port}/healthz"))

        # Both canary alarms fire at once: two messages, likely taken by two replicas.
        for name, shape in (("error-rate", "metrics"), ("p95", "dimensions")):
            sns.publish(
                TopicArn=topic,
                Subject=f'ALARM: "canary-bot/production-lego-api/production/v2/{name}"',
                Message=alarm_message(
                    alarm_name=f"canary-bot/{LEGO_API}/{PRODUCTION_ALIAS}/v2/{name}", shape=shape
                ),
            )

        _wait("the alias reverted", lambda: routing() == ("1", {}))
        store = DynamoStore(_boto("dynamodb", moto_server), TABLE)
        [deployment] = store.history(LEGO_API, PRODUCTION_ALIAS, 1)
        _wait("the rollback recorded", lambda: store.get(deployment.id).state.value == "rolled_back")  # type: ignore[union-attr]

        def told() -> bool:
            return any("error-rate" in json.dumps(m.blocks) for m in slack.messages())

        _wait("the alert posted", lambda: told() and store.outbox_pending() == 0)
        time.sleep(3)  # every replica has had time to act on it too

        rollbacks = [i for i in store.intents_for(deployment.id) if i.kind == "rollback"]
        # Two replicas may each write a rollback intent (the later supersedes the earlier); one finishes.
        finished = [i for i in rollbacks if i.status in ("done", "recorded")]
        assert len(finished) == 1 and all(
            i.status in ("superseded", "cancelled") for i in rollbacks if i not in finished
        )
        reverted = [
            r for r in store.audit_for(deployment.id) if r.alias_after and r.alias_after["weights"] == {}
        ]
        assert len(reverted) == 1  # one alias write recorded
        _wait("both alarms told", lambda: store.outbox_pending() == 0 and len(slack.messages()) >= 3)
        texts = [m.text or "" for m in slack.messages()]
        assert len([t for t in texts if t.startswith("🔴 Rolled back")]) == 1, texts
        alerts = [m for m in slack.messages() if m.text and m.text.startswith("🚨 Canary Deployment Alert")]
        # One alert tells the story (rolled back, by which alarm); the other alarm is at most a quiet note.
        assert not any("rollback under way" in json.dumps(m.blocks) for m in slack.messages()), texts
        assert 1 <= len(alerts) <= 2, texts
        assert all(p.poll() is None for p in replicas), "a replica died"
    finally:
        for proc in replicas:
            proc.terminate()
        for proc in replicas:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


# ---------------------------------------------------------------- replicas sharing the soak loop
TICK_EVERY = 1.0
LEASE_TTL = 3.0
REPORT_EVERY = timedelta(seconds=2)
# A lease period, a tick, a report period, and a margin for a loaded 2-core machine (three bots and moto).
TAKEOVER_SECONDS = LEASE_TTL + TICK_EVERY + REPORT_EVERY.total_seconds() + 5.0
REPORT = re.compile(r"Soak report (\d+)/\d+")


def _reports(slack: FakeSlack) -> list[int]:
    """The soak reports posted, by number, in posting order."""
    found = []
    for m in slack.messages():
        match = REPORT.search((m.text or "") + json.dumps(m.blocks or []))
        if match:
            found.append(int(match.group(1)))
    return found


def _holder(db: Any, lease: str) -> int | None:
    """The pid of the process holding `lease` (owners are '<kind>-<host>-<pid>-<random>'), None when free."""
    item = db.get_item(TableName=TABLE, Key={"pk": {"S": f"LEASE#{lease}"}, "sk": {"S": "LEASE"}}).get("Item")
    if item is None or item["held_until"]["S"] <= datetime.now(UTC).isoformat(timespec="microseconds"):
        return None
    return int(item["owner"]["S"].split("-")[-2])


def _took(log: Path, deployment_id: str) -> list[int]:
    """The tick lease tokens with which a replica took the deployment (from its log)."""
    return [
        int(t)
        for t in re.findall(rf"ticks {re.escape(deployment_id)} \(lease token (\d+)\)", log.read_text())
    ]


def _kill9(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()  # SIGKILL: nothing released, nothing flushed
    proc.wait(timeout=10)


def test_three_replicas_report_a_soak_once_per_due_time_and_take_over_from_a_killed_one(
    moto_server: str, slack: FakeSlack, tmp_path: Path
) -> None:
    """Three replicas tick one soak: each report is posted once, by the holder of the deployment's tick lease.
    Killing that holder (kill -9) hands the soak to another replica within a lease period; killing the
    replica whose rollback is in flight (its UpdateAlias held in the proxy) hands the rollback over too."""
    seed_lego_api(_boto("lambda", moto_server), _boto("iam", moto_server))
    sns, sqs = _boto("sns", moto_server), _boto("sqs", moto_server)
    topic = sns.create_topic(Name="canary-bot-alarms")["TopicArn"]
    queue = sqs.create_queue(QueueName="canary-bot-alarms")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    policy = tmp_path / "policy.yaml"
    # A report every 2 s; 60 s periods: nothing is judged within the test, so the canary soaks on.
    policy.write_text(policy_yaml(report_every=f"{REPORT_EVERY.seconds}s", soak="1h", period="60s"))
    with FaultProxy(moto_server) as proxy:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CANARY_", "SLACK_"))}
        env.update(
            {
                "AWS_ENDPOINT_URL": proxy.url,
                "AWS_DEFAULT_REGION": "us-east-1",
                "CANARY_STORE_URL": f"dynamodb://{TABLE}",
                "CANARY_POLICY_FILE": str(policy),
                "CANARY_ALARM_TOPIC_ARN": topic,
                "CANARY_ALARM_QUEUE_URL": queue,
                "CANARY_TICK_EVERY": f"{TICK_EVERY:g}s",
                "CANARY_RECONCILE_EVERY": "1s",
                "CANARY_LEASE_TTL": f"{LEASE_TTL:g}s",
                "SLACK_BOT_TOKEN": "xoxb-test",
                "SLACK_SIGNING_SECRET": "test-secret",
                "SLACK_API_URL": slack.base_url,
                "MPLBACKEND": "Agg",
            }
        )
        proxy.rewrite(
            "ReceiveMessage", lambda body: {**body, "WaitTimeSeconds": min(body.get("WaitTimeSeconds", 0), 1)}
        )
        cli = [str(BIN / "canary-bot")]
        create_table(
            _boto("dynamodb", moto_server), TABLE
        )  # `canary-bot init-store` is run by the test above
        started = subprocess.run(
            [*cli, "start", LEGO_API, "2", "--yes"],
            env={**env, "CANARY_ACTOR": "maria"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert started.returncode == 0, started.stderr
        db = _boto("dynamodb", moto_server)
        store = DynamoStore(db, TABLE)
        [deployment] = store.history(LEGO_API, PRODUCTION_ALIAS, 1)
        tick_lease = f"tick:{deployment.id}"

        replicas: dict[int, subprocess.Popen[bytes]] = {}
        logs: dict[int, Path] = {}
        ports = [_free_port() for _ in range(REPLICAS)]
        for n, port in enumerate(ports):
            proc = subprocess.Popen(
                [*cli, "serve"],
                env={**env, "PORT": str(port)},
                stdout=(tmp_path / f"replica-{n}.log").open("w"),
                stderr=subprocess.STDOUT,
            )
            replicas[proc.pid] = proc
            logs[proc.pid] = tmp_path / f"replica-{n}.log"
        try:
            for port in ports:
                _wait(f"replica on {port}", lambda port=port: _answers(f"http://127.0.0.1:{port}/healthz"))

            # One soak, three replicas: every report once, in order.
            _wait("three soak reports", lambda: len(_reports(slack)) >= 3, timeout=30)
            holder = _holder(db, tick_lease)
            assert holder in replicas
            reports = _reports(slack)
            assert reports == sorted(set(reports)), reports
            # Only the holder ticks it: one alias read per tick (the drift check), not one per replica.
            reads, since = proxy.seen("GetAlias"), time.monotonic()
            time.sleep(3 * TICK_EVERY)
            reads, elapsed = proxy.seen("GetAlias") - reads, time.monotonic() - since
            assert reads <= elapsed / TICK_EVERY + 2, f"{reads} alias reads in {elapsed:.1f}s"
            assert [pid for pid, log in logs.items() if _took(log, deployment.id)] == [holder]

            # kill -9 the tick lease holder: another replica posts the next report within a lease period. A
            # report numbered past the last one due at the kill can only come from a living replica (the dead
            # one's last report may still be delivered from the outbox by another).
            _kill9(replicas.pop(holder))
            killed_at = time.monotonic()
            assert deployment.step_started_at is not None
            due_at_kill = (datetime.now(UTC) - deployment.step_started_at) // REPORT_EVERY
            _wait(
                "a report by another replica",
                lambda: max(_reports(slack)) > due_at_kill,
                timeout=TAKEOVER_SECONDS + 10,
            )
            took = time.monotonic() - killed_at
            assert took <= TAKEOVER_SECONDS, f"the next report came {took:.1f}s after the kill"
            successor = _holder(db, tick_lease)
            assert successor in replicas
            assert _took(logs[successor], deployment.id) == [1 + _took(logs[holder], deployment.id)[-1]]

            # A rollback in flight on the replica that took the alarm: kill it while its UpdateAlias is held.
            held = proxy.hold("UpdateAlias")
            sns.publish(
                TopicArn=topic,
                Subject='ALARM: "canary-bot/production-lego-api/production/v2/error-rate"',
                Message=alarm_message(alarm_name=f"canary-bot/{LEGO_API}/{PRODUCTION_ALIAS}/v2/error-rate"),
            )
            held.wait_held(20)
            writer = _holder(db, f"deployment:{deployment.id}")
            assert writer in replicas
            _kill9(replicas.pop(writer))
            killed_at = time.monotonic()
            lam = _boto("lambda", moto_server)
            _wait(
                "the rollback finished by the last replica",
                lambda: (
                    not lam.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)
                    .get("RoutingConfig", {})
                    .get("AdditionalVersionWeights")
                ),
                timeout=TAKEOVER_SECONDS + 10,
            )
            took = time.monotonic() - killed_at
            assert took <= TAKEOVER_SECONDS, f"the rollback was finished {took:.1f}s after the kill"
            _wait("the rollback recorded", lambda: store.get(deployment.id).state.value == "rolled_back")  # type: ignore[union-attr]

            def rolled_back_told() -> list[str]:
                return [m.text or "" for m in slack.messages() if (m.text or "").startswith("🔴 Rolled back")]

            _wait("the rollback told", lambda: bool(rolled_back_told()) and store.outbox_pending() == 0)
            time.sleep(2 * TICK_EVERY)  # time for a second announcement, were there one
            assert len(rolled_back_told()) == 1, [
                m.text for m in slack.messages() if "Soak" not in (m.text or "")
            ]
            reports = _reports(slack)
            assert reports == sorted(set(reports)), f"a report posted twice: {reports}"
            assert all(p.poll() is None for p in replicas.values()), "a replica died"
            # A clean stop (SIGTERM) goes through the scheduler's shutdown, which releases the tick leases.
            [(last_pid, last)] = replicas.items()
            last.terminate()
            assert last.wait(timeout=30) == 0, logs[last_pid].read_text()[-2000:]
        finally:
            for proc in replicas.values():
                proc.terminate()
            for proc in replicas.values():
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
