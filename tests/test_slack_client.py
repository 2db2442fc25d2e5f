"""make_web_client retries what Slack asks it to retry; validate_slack_settings names the bad variable."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from bot.config import Settings
from bot.slack_client import (
    RetryPolicy,
    SlackSettingsError,
    make_web_client,
    normalise_api_url,
    validate_slack_settings,
)
from tests.support.fake_slack import FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


class SleepRecorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def policy(sleep: SleepRecorder, **overrides: Any) -> RetryPolicy:
    fields: dict[str, Any] = {
        "sleep": sleep,
        "jitter": lambda: 0.0,
        "backoff": FixedValueRetryIntervalCalculator(0.25),
    }
    return RetryPolicy(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "https://slack.com/api/"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/api/"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/api/"),
        ("http://127.0.0.1:8080/api", "http://127.0.0.1:8080/api/"),
        ("https://slack.com/api/", "https://slack.com/api/"),
        ("http://proxy.internal/slack", "http://proxy.internal/slack/api/"),
    ],
)
def test_api_url_is_normalised_to_end_in_api_slash(given: str | None, expected: str) -> None:
    assert normalise_api_url(given) == expected


def test_client_talks_to_the_given_api_url_without_trailing_api(slack: FakeSlack) -> None:
    client = make_web_client("xoxb-test", base_url=slack.root_url)
    assert client.auth_test()["ok"]
    assert [c.method for c in slack.calls()] == ["auth.test"]


def test_rate_limited_call_waits_retry_after_then_succeeds(slack: FakeSlack) -> None:
    sleep = SleepRecorder()
    client = make_web_client("xoxb-test", base_url=slack.base_url, retry=policy(sleep))
    slack.fail_next("chat.postMessage", status=429, retry_after=2)

    answer = client.chat_postMessage(channel="C0DEPLOYS", text="canary at 5%")

    assert answer["ok"]
    assert len(slack.calls("chat.postMessage")) == 2
    assert sleep.waits == [2.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_is_retried_with_backoff(slack: FakeSlack, status: int) -> None:
    sleep = SleepRecorder()
    client = make_web_client("xoxb-test", base_url=slack.base_url, retry=policy(sleep))
    slack.fail_next("views.publish", status=status)

    answer = client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": []})

    assert answer["ok"]
    assert len(slack.calls("views.publish")) == 2
    assert sleep.waits == [0.25]


def test_retries_are_bounded(slack: FakeSlack) -> None:
    sleep = SleepRecorder()
    client = make_web_client("xoxb-test", base_url=slack.base_url, retry=policy(sleep, max_retries=2))
    slack.fail_next("chat.update", status=503, times=5)

    with pytest.raises(SlackApiError) as raised:
        client.chat_update(channel="C0DEPLOYS", ts="1700000000.000100", text="x")

    assert raised.value.response.status_code == 503
    assert len(slack.calls("chat.update")) == 3
    assert len(sleep.waits) == 2


def test_retry_after_beyond_the_cap_fails_at_once_instead_of_blocking(slack: FakeSlack) -> None:
    sleep = SleepRecorder()
    client = make_web_client("xoxb-test", base_url=slack.base_url, retry=policy(sleep, max_retry_after=10))
    slack.fail_next("chat.postMessage", status=429, retry_after=120)

    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0DEPLOYS", text="hi")

    assert raised.value.response.status_code == 429
    assert len(slack.calls("chat.postMessage")) == 1
    assert sleep.waits == []


def test_client_errors_are_not_retried(slack: FakeSlack) -> None:
    sleep = SleepRecorder()
    client = make_web_client("xoxb-test", base_url=slack.base_url, retry=policy(sleep))
    slack.fail_next("chat.postMessage", status=400, error="invalid_arguments")

    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C0DEPLOYS", text="hi")
    assert len(slack.calls("chat.postMessage")) == 1
    assert sleep.waits == []


def test_slack_level_errors_are_not_retried(slack: FakeSlack) -> None:
    sleep = SleepRecorder()
    client = make_web_client("xoxb-test", base_url=slack.base_url, retry=policy(sleep))
    slack.fail_next("chat.postMessage", status=200, error="channel_not_found")

    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C0GONE", text="hi")
    assert len(slack.calls("chat.postMessage")) == 1


def test_refused_connections_are_retried_then_raised() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleep = SleepRecorder()
    client = make_web_client(
        "xoxb-test", base_url=f"http://127.0.0.1:{port}", retry=policy(sleep, max_retries=2)
    )

    with pytest.raises(OSError):
        client.auth_test()
    assert sleep.waits == [0.25, 0.25]


# -- validate_slack_settings -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_slack_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_API_URL"):
        monkeypatch.delenv(name, raising=False)


def settings(**overrides: Any) -> Settings:
    good: dict[str, Any] = {
        "slack_bot_token": "xoxb-1-2-abc",
        "slack_app_token": "xapp-1-A1-abc",
        "slack_signing_secret": "0123456789abcdef",
        "slack_api_url": None,
    }
    return Settings(**{**good, **overrides})


@pytest.mark.parametrize("socket_mode", [True, False])
def test_good_settings_pass(socket_mode: bool) -> None:
    validate_slack_settings(settings(slack_api_url="http://127.0.0.1:9999/api/"), socket_mode=socket_mode)


def test_socket_mode_does_not_need_a_signing_secret() -> None:
    validate_slack_settings(settings(slack_signing_secret=None), socket_mode=True)


def test_http_mode_does_not_need_an_app_token() -> None:
    validate_slack_settings(settings(slack_app_token=None), socket_mode=False)


@pytest.mark.parametrize(
    ("overrides", "socket_mode", "names", "says"),
    [
        ({"slack_bot_token": None}, True, "SLACK_BOT_TOKEN", "not set"),
        ({"slack_bot_token": "  "}, False, "SLACK_BOT_TOKEN", "not set"),
        ({"slack_bot_token": "xoxp-1-2-user"}, False, "SLACK_BOT_TOKEN", "'xoxb-'"),
        ({"slack_app_token": "xoxb-1-2-abc"}, True, "SLACK_APP_TOKEN", "'xapp-'"),
        ({"slack_app_token": None}, True, "SLACK_APP_TOKEN", "not set"),
        ({"slack_signing_secret": None}, False, "SLACK_SIGNING_SECRET", "not set"),
        ({"slack_api_url": "slack.com/api"}, True, "SLACK_API_URL", "http(s) URL"),
        ({"slack_api_url": "ftp://slack.com/api/"}, False, "SLACK_API_URL", "http(s) URL"),
        ({"slack_api_url": "http://"}, False, "SLACK_API_URL", "http(s) URL"),
    ],
)
def test_bad_setting_is_named_in_one_line(
    overrides: dict[str, Any], socket_mode: bool, names: str, says: str
) -> None:
    with pytest.raises(SlackSettingsError) as raised:
        validate_slack_settings(settings(**overrides), socket_mode=socket_mode)
    message = str(raised.value)
    assert message.startswith(names)
    assert says in message
    assert "\n" not in message


def test_wrong_token_message_does_not_leak_the_token() -> None:
    with pytest.raises(SlackSettingsError) as raised:
        validate_slack_settings(settings(slack_bot_token="xoxp-1234-secretpart"), socket_mode=False)
    assert "secretpart" not in str(raised.value)
    assert "xoxp" in str(raised.value)
