"""One way in: the CLI builds the same service as `serve` (bot.composition) — the same CloudWatch alarms and
alarm-firing guard, the same Slack thread when SLACK_BOT_TOKEN is set, and an audit that names the OS user and
host instead of a name the caller declares. Alarm wiring that cannot roll back is said, not hidden."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from moto import mock_aws

from bot.aws.clients import aws_client
from bot.cli import main
from bot.composition import os_actor
from bot.store import open_store
from canary_demo.fake_slack import FakeSlack
from canary_demo.seed import LEGO_API, PRODUCTION_ALIAS, seed_lego_api

CHANNEL_ID = "C0DEPLOYS"


@dataclass
class Cli:
    topic_arn: str
    store_url: str
    slack: FakeSlack

    def alias(self) -> tuple[str, dict[str, float]]:
        got = aws_client("lambda", region="us-east-1").get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)
        return got["FunctionVersion"], dict(got.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}))


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Cli]:
    with mock_aws(), FakeSlack(channels={"#deploys": CHANNEL_ID}) as slack:
        seed_lego_api(aws_client("lambda", region="us-east-1"))
        topic = aws_client("sns", region="us-east-1").create_topic(Name="canary-bot-alarms")["TopicArn"]
        store_url = f"sqlite:///{tmp_path / 'canary.db'}"
        monkeypatch.setenv("CANARY_STORE_URL", store_url)
        monkeypatch.setenv("CANARY_ALARM_TOPIC_ARN", topic)
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-cli")
        monkeypatch.setenv("SLACK_API_URL", slack.base_url)
        monkeypatch.setenv("CANARY_ACTOR", "someone-else")  # no longer read: the OS says who runs the CLI
        yield Cli(topic_arn=topic, store_url=store_url, slack=slack)


def test_a_cli_started_canary_has_the_alarms_with_actions_the_slack_thread_and_an_os_named_actor(
    cli: Cli,
) -> None:
    assert main(["start", LEGO_API, "2", "--yes"]) == 0
    assert cli.alias() == ("1", {"2": 0.05})

    alarms = aws_client("cloudwatch", region="us-east-1").describe_alarms()["MetricAlarms"]
    ours = [a for a in alarms if a["AlarmName"].startswith(f"canary-bot/{LEGO_API}/{PRODUCTION_ALIAS}/v2/")]
    # error rate, p95, and the cache hit rate (the embedded policy has a log group: its metric filters too)
    assert sorted(a["AlarmName"].rsplit("/", 1)[1] for a in ours) == ["cache-hit-rate", "error-rate", "p95"]
    assert all(a["AlarmActions"] == [cli.topic_arn] for a in ours)

    parents = [c for c in cli.slack.calls("chat.postMessage") if not c.params.get("thread_ts")]
    assert len(parents) == 1 and parents[0].params["channel"] == "#deploys"
    assert "canary v2 at 5%" in parents[0].params["text"]

    store = open_store(cli.store_url)
    (deployment,) = store.list_live()
    assert deployment.thread_ts, "the deployment remembers its Slack thread, so later messages go in it"
    expected = f"cli:{getpass.getuser()}@{socket.gethostname()}"
    assert deployment.created_by == expected
    assert {r.actor for r in store.audit_for(deployment.id)} == {expected}


def test_the_cli_refuses_to_start_while_an_alarm_of_the_function_fires(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    cloudwatch = aws_client("cloudwatch", region="us-east-1")
    cloudwatch.put_metric_alarm(
        AlarmName=f"{LEGO_API}-errors",
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": LEGO_API}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=f"{LEGO_API}-errors", StateValue="ALARM", StateReason="test")

    assert main(["start", LEGO_API, "2", "--yes"]) == 3
    assert "alarms in ALARM" in capsys.readouterr().err
    assert cli.alias() == ("1", {})


def test_the_cli_preview_says_alarm_rollback_is_off_without_a_topic(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CANARY_ALARM_TOPIC_ARN")
    monkeypatch.setattr("builtins.input", lambda _q: "n")
    assert main(["start", LEGO_API, "2"]) == 3
    assert "alarm rollback OFF" in capsys.readouterr().out


def test_the_parent_message_says_alarm_rollback_is_off_without_a_topic(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CANARY_ALARM_TOPIC_ARN")
    assert main(["start", LEGO_API, "2", "--yes"]) == 0
    (parent,) = [c for c in cli.slack.calls("chat.postMessage") if not c.params.get("thread_ts")]
    assert "alarm rollback OFF" in str(parent.params["blocks"])
    assert "CANARY_ALARM_TOPIC_ARN" in str(parent.params["blocks"])


def test_with_a_topic_nothing_says_alarm_rollback_is_off(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["start", LEGO_API, "2", "--yes"]) == 0
    (parent,) = [c for c in cli.slack.calls("chat.postMessage") if not c.params.get("thread_ts")]
    assert "alarm rollback OFF" not in str(parent.params["blocks"])


def test_os_actor_is_the_os_user_at_this_host() -> None:
    actor = os_actor()
    assert actor.source == "cli"
    assert actor.label == f"cli:{getpass.getuser()}@{socket.gethostname()}"


@pytest.mark.parametrize(("topic", "warned"), [(None, True), ("arn:aws:sns:us-east-1:123456789012:t", False)])
def test_serve_warns_at_start_when_alarms_cannot_roll_back(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], topic: str | None, warned: bool
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-serve")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret")
    monkeypatch.setenv("CANARY_STORE_URL", "sqlite://:memory:")
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    if topic:
        monkeypatch.setenv("CANARY_ALARM_TOPIC_ARN", topic)
    else:
        monkeypatch.delenv("CANARY_ALARM_TOPIC_ARN", raising=False)
    monkeypatch.setattr("bot.serve._run", lambda runtime, **_: 0)
    assert main(["serve"]) == 0
    err = capsys.readouterr().err
    assert ("warning: alarm rollback OFF: CANARY_ALARM_TOPIC_ARN is not set" in err) is warned


def test_the_slack_preview_says_alarm_rollback_is_off_without_a_topic() -> None:
    from tests.support.slack_world import slack_world

    with slack_world() as sw:
        sw.command(f"start {LEGO_API} 2")
        preview = str(sw.last_response())
    assert "alarm rollback OFF" in preview
