"""`canary-bot serve`: one clear line for bad settings; the assembled runtime answering over a real socket."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from bot.cli import main
from bot.clock import ManualClock
from bot.config import Settings
from bot.http_server import BackgroundServer, make_wsgi_app
from bot.runtime import AwsAdapters, Runtime, build_runtime
from bot.slack_client import RetryPolicy, make_web_client
from bot.store import open_store
from canary_demo import slack_requests as req
from canary_demo.fake_slack import FakeSlack
from canary_demo.fakes.alarms import FakeAlarms
from canary_demo.fakes.metrics import FakeMetrics
from canary_demo.fakes.traffic import lego_api_world
from tests.support.world import policy_with


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "SLACK_BOT_TOKEN must be a bot token"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-wrong"},
            "SLACK_APP_TOKEN must be an app-level",
        ),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET is not set"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": "slack.local"},
            "SLACK_API_URL",
        ),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "PORT": "eighty"}, "PORT"),
    ],
)
def test_bad_slack_settings_are_one_line_naming_the_variable_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], expected: str
) -> None:
    for key in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_API_URL", "PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]
    assert "Traceback" not in err[0]


@pytest.fixture
def runtime() -> Iterator[tuple[Runtime, FakeSlack]]:
    with FakeSlack(usergroups={"S0SREONCALL": ["U1"]}) as slack:
        client = make_web_client(
            "xoxb-test", base_url=slack.base_url, retry=RetryPolicy(sleep=lambda _s: None)
        )
        settings = Settings(SLACK_SIGNING_SECRET=req.SIGNING_SECRET, SLACK_BOT_TOKEN="xoxb-test")
        rt = build_runtime(
            settings,
            slack=client,
            clock=ManualClock(),
            store=open_store("sqlite://:memory:"),
            aws=AwsAdapters(traffic=lego_api_world(), metrics=FakeMetrics(), alarms=FakeAlarms("us-east-1")),
            policy=policy_with(),
        )
        assert rt.outbox_worker is not None  # as under serve: answers go out through the outbox
        rt.outbox_worker.start()
        try:
            yield rt, slack
        finally:
            rt.outbox_worker.stop()


def test_http_mode_answers_health_and_signed_slash_commands_over_a_socket(
    runtime: tuple[Runtime, FakeSlack],
) -> None:
    rt, slack = runtime
    app = make_wsgi_app(rt.app, sns_handler=rt.sns_intake, health=rt.health)
    with BackgroundServer(app) as server:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as answer:
            assert answer.status == 200
            assert json.loads(answer.read())["live_canaries"] == 0
        signed = req.slash_command(text="help", response_url=slack.response_url("help"))
        request = urllib.request.Request(
            f"{server.url}/slack/events",
            data=signed.body.encode(),
            headers=dict(signed.headers),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200
        assert "start FUNCTION" in json.dumps(slack.wait_for("response_url", timeout=5)[0].params)
