"""The WSGI app routes Slack to Bolt (signatures enforced), SNS to its handler, and answers health checks."""

from __future__ import annotations

import io
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.types import WSGIApplication
from wsgiref.util import setup_testing_defaults

import pytest
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.http_server import BackgroundServer, make_wsgi_app
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import (
    SIGNING_SECRET,
    SignedRequest,
    app_home_opened,
    block_actions,
    slash_command,
    url_verification,
)


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    app: WSGIApplication, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Reply:
    """Drive the WSGI app in-process, as waitress would."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    setup_testing_defaults(environ)
    started: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started["status"] = int(status.split()[0])
        started["headers"] = {k.lower(): v for k, v in response_headers}

    chunks: Iterable[bytes] = app(environ, start_response)
    return Reply(started["status"], started["headers"], b"".join(chunks))


def signed(app: WSGIApplication, path: str, request: SignedRequest) -> Reply:
    return call(app, "POST", path, request.body.encode(), request.headers)


def healthy() -> tuple[bool, dict[str, Any]]:
    return True, {"store": "ok", "active_canaries": 2}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def bolt_app(slack: FakeSlack) -> App:
    # Token verification stays on: Bolt's auth.test goes to the fake, as in production it goes to Slack.
    app = App(
        client=WebClient(token="xoxb-test", base_url=slack.base_url),
        signing_secret=SIGNING_SECRET,
        process_before_response=True,  # listeners finish before the HTTP answer: no waiting in tests
    )

    @app.command("/canary")
    def canary(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        ack(f"heard: {command['text']} from {command['user_id']}")
        if command["text"] == "status":
            respond("no canaries running")

    @app.action("rollback")
    def rollback(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        action = body["actions"][0]
        client.chat_postMessage(
            channel=body["container"]["channel_id"],
            thread_ts=body["container"]["message_ts"],
            text=f"rolling back {action['value']} for <@{body['user']['id']}>",
        )

    @app.event("app_home_opened")
    def home(event: dict[str, Any], client: WebClient) -> None:
        client.views_publish(user_id=event["user"], view={"type": "home", "blocks": []})

    return app


@pytest.fixture
def wsgi(bolt_app: App) -> WSGIApplication:
    return make_wsgi_app(bolt_app, sns_handler=None, health=healthy)


# -- health ----------------------------------------------------------------------------------------


def test_healthz_answers_ok_with_details() -> None:
    reply = call(make_wsgi_app(None, sns_handler=None, health=healthy), "GET", "/healthz")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"status": "ok", "store": "ok", "active_canaries": 2}


def test_healthz_answers_503_when_unhealthy() -> None:
    app = make_wsgi_app(None, sns_handler=None, health=lambda: (False, {"store": "locked"}))
    reply = call(app, "GET", "/healthz")
    assert reply.status == 503
    assert reply.json() == {"status": "unavailable", "store": "locked"}


def test_healthz_answers_503_when_the_check_itself_fails() -> None:
    def broken() -> tuple[bool, dict[str, Any]]:
        raise TimeoutError("store did not answer")

    reply = call(make_wsgi_app(None, sns_handler=None, health=broken), "GET", "/healthz")
    assert reply.status == 503
    assert reply.json() == {"status": "unavailable", "error": "TimeoutError"}


# -- routing ---------------------------------------------------------------------------------------


def test_unknown_path_is_404(wsgi: WSGIApplication) -> None:
    assert call(wsgi, "GET", "/admin").status == 404
    assert call(wsgi, "POST", "/slack/event").status == 404


def test_wrong_method_is_405_naming_the_allowed_ones(wsgi: WSGIApplication) -> None:
    reply = call(wsgi, "GET", "/slack/events")
    assert reply.status == 405
    assert reply.headers["allow"] == "POST"
    assert call(wsgi, "POST", "/healthz").status == 405


def test_sns_posts_reach_the_handler_with_raw_body_and_headers() -> None:
    seen: list[tuple[bytes, dict[str, str]]] = []

    def sns(body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        seen.append((body, headers))
        return 202, "queued"

    app = make_wsgi_app(None, sns_handler=sns, health=healthy)
    raw = b'{"Type": "Notification", "Message": "{}"}'
    reply = call(
        app, "POST", "/sns", raw, {"x-amz-sns-message-type": "Notification", "content-type": "text/plain"}
    )

    assert (reply.status, reply.body) == (202, b"queued")
    [(body, headers)] = seen
    assert body == raw
    assert headers["x-amz-sns-message-type"] == "Notification"
    assert headers["content-type"] == "text/plain"


def test_a_crashing_sns_handler_gives_500_not_a_dead_server() -> None:
    def sns(body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        raise RuntimeError("boom")

    app = make_wsgi_app(None, sns_handler=sns, health=healthy)
    assert call(app, "POST", "/sns", b"{}").status == 500
    assert call(app, "GET", "/healthz").status == 200


def test_without_an_sns_handler_sns_is_404() -> None:
    assert call(make_wsgi_app(None, sns_handler=None, health=healthy), "POST", "/sns", b"{}").status == 404


def test_socket_mode_app_serves_health_but_no_slack_routes() -> None:
    app = make_wsgi_app(None, sns_handler=None, health=healthy)
    assert signed(app, "/slack/events", slash_command("/canary", "status")).status == 404
    assert call(app, "GET", "/healthz").status == 200


def test_oversized_bodies_are_refused() -> None:
    app = make_wsgi_app(None, sns_handler=lambda b, h: (200, "ok"), health=healthy)
    reply = call(app, "POST", "/sns", b"x" * (1024 * 1024 + 1))
    assert reply.status == 413


# -- Slack through Bolt ----------------------------------------------------------------------------


def test_signed_slash_command_reaches_the_listener(wsgi: WSGIApplication) -> None:
    reply = signed(wsgi, "/slack/commands", slash_command("/canary", "help", user_id="U0BOB"))
    assert reply.status == 200
    assert reply.body.decode() == "heard: help from U0BOB"


@pytest.mark.parametrize("path", ["/slack/events", "/slack/interactive", "/slack/commands"])
def test_every_slack_path_goes_to_bolt(wsgi: WSGIApplication, path: str) -> None:
    assert signed(wsgi, path, slash_command("/canary", "help")).status == 200


def test_bad_signature_is_401(wsgi: WSGIApplication) -> None:
    reply = signed(wsgi, "/slack/events", slash_command("/canary", "status", secret="not-the-secret"))
    assert reply.status == 401


def test_request_signed_301_seconds_ago_is_401(wsgi: WSGIApplication) -> None:
    stale = slash_command("/canary", "status", timestamp=int(time.time()) - 301)
    assert signed(wsgi, "/slack/events", stale).status == 401


def test_tampered_body_is_401(wsgi: WSGIApplication) -> None:
    body, headers = slash_command("/canary", "status")
    tampered = body.replace("text=status", "text=rollback")
    assert call(wsgi, "POST", "/slack/events", tampered.encode(), headers).status == 401


def test_respond_posts_to_the_response_url(wsgi: WSGIApplication, slack: FakeSlack) -> None:
    request = slash_command("/canary", "status", response_url=slack.response_url("cmd-1"))
    assert signed(wsgi, "/slack/commands", request).status == 200

    [reply] = slack.calls("response_url")
    assert reply.path == "/response/cmd-1"
    assert reply.params["text"] == "no canaries running"


def test_button_click_reaches_the_action_listener(wsgi: WSGIApplication, slack: FakeSlack) -> None:
    click = block_actions("rollback", "production-lego-api", message_ts="1700000000.000500", user_id="U0BOB")
    assert signed(wsgi, "/slack/interactive", click).status == 200

    [message] = slack.messages()
    assert message.thread_ts == "1700000000.000500"
    assert message.text == "rolling back production-lego-api for <@U0BOB>"


def test_app_home_opened_publishes_the_home_tab(wsgi: WSGIApplication, slack: FakeSlack) -> None:
    assert signed(wsgi, "/slack/events", app_home_opened("U0ALICE")).status == 200
    assert slack.home_view("U0ALICE") is not None


def test_url_verification_echoes_the_challenge(wsgi: WSGIApplication) -> None:
    reply = signed(wsgi, "/slack/events", url_verification("c-123"))
    assert (reply.status, reply.json()) == (200, {"challenge": "c-123"})


# -- a real socket ---------------------------------------------------------------------------------


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


def test_waitress_serves_health_and_slack_over_a_real_socket(wsgi: WSGIApplication) -> None:
    with BackgroundServer(wsgi, port=0) as server:
        health = http("GET", f"{server.url}/healthz")
        assert (health.status, health.json()["status"]) == (200, "ok")
        assert health.headers["Server"] == "canary-bot"

        body, headers = slash_command("/canary", "help")
        command = http("POST", f"{server.url}/slack/commands", body.encode(), headers)
        assert (command.status, command.body) == (200, b"heard: help from U0ALICE")

        stale_body, stale_headers = slash_command("/canary", "help", timestamp=int(time.time()) - 301)
        assert http("POST", f"{server.url}/slack/commands", stale_body.encode(), stale_headers).status == 401
        assert http("GET", f"{server.url}/nope").status == 404
        port = server.port

    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test_background_server_releases_its_port_even_if_never_started() -> None:
    server = BackgroundServer(make_wsgi_app(None, sns_handler=None, health=healthy), port=0)
    port = server.port
    server.close()
    server.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_non_ascii_command_text_reaches_bolt_unaltered(wsgi: WSGIApplication) -> None:
    # Guards the body handling: a non-ASCII text must arrive byte-exact or its signature fails.
    reply = signed(wsgi, "/slack/commands", slash_command("/canary", "rollback --reason «p99 ↑»"))
    assert reply.status == 200
    assert reply.body.decode() == "heard: rollback --reason «p99 ↑» from U0ALICE"


def test_listeners_on_worker_threads_are_awaited_through_the_fake(slack: FakeSlack) -> None:
    # The production setting (process_before_response=False): Bolt answers at once, the listener runs later.
    app = App(client=WebClient(token="xoxb-test", base_url=slack.base_url), signing_secret=SIGNING_SECRET)

    @app.event("app_home_opened")
    def home(event: dict[str, Any], client: WebClient) -> None:
        client.views_publish(user_id=event["user"], view={"type": "home", "blocks": []})

    wsgi = make_wsgi_app(app, sns_handler=None, health=healthy)
    assert signed(wsgi, "/slack/events", app_home_opened("U0CAROL")).status == 200

    [publish] = slack.wait_for("views.publish")
    assert publish.params["user_id"] == "U0CAROL"
