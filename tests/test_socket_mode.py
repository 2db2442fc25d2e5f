"""Socket Mode end to end (the manifest's default): `serve`'s Socket Mode handler against a local Socket Mode
server that the fake Slack's `apps.connections.open` points at, sending the envelopes Slack sends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot import views
from bot.clock import ManualClock
from bot.config import Settings
from bot.runtime import AwsAdapters, Runtime, build_runtime
from bot.serve import socket_mode_handler
from bot.slack_client import RetryPolicy, make_web_client
from bot.store import open_store
from canary_demo.fake_slack import APP_ID, TEAM_ID, FakeSlack
from canary_demo.fakes.alarms import FakeAlarms
from canary_demo.fakes.metrics import FakeMetrics
from canary_demo.fakes.traffic import FakeTraffic, lego_api_world
from tests.support.socket_mode_server import SocketModeServer
from tests.support.world import FN, policy_with

APPROVER, STARTER = "U0APPROVER", "U0STARTER"
CHANNEL_ID = "C0DEPLOYS"
ACK_DEADLINE = 3.0


@dataclass
class Socket:
    server: SocketModeServer
    slack: FakeSlack
    runtime: Runtime
    traffic: FakeTraffic

    def alias(self) -> tuple[str, dict[str, float]]:
        state = self.traffic.get_alias(FN, "production")
        return state.version, dict(state.weights)

    def slash(self, text: str, user: str) -> str:
        return self.server.send_envelope(
            "slash_commands",
            {
                "token": "legacy",
                "team_id": TEAM_ID,
                "team_domain": "fake",
                "channel_id": CHANNEL_ID,
                "channel_name": "deploys",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/canary",
                "text": text,
                "api_app_id": APP_ID,
                "is_enterprise_install": "false",
                "response_url": self.slack.response_url(f"slash-{time.monotonic_ns()}"),
                "trigger_id": "1.2.trigger",
            },
        )

    def click(self, action_id: str, value: str, user: str) -> str:
        return self.server.send_envelope(
            "interactive",
            {
                "type": "block_actions",
                "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
                "api_app_id": APP_ID,
                "token": "legacy",
                "container": {"type": "message", "message_ts": "1.1", "channel_id": CHANNEL_ID},
                "trigger_id": "1.2.trigger",
                "team": {"id": TEAM_ID, "domain": "fake"},
                "channel": {"id": CHANNEL_ID, "name": "deploys"},
                "message": {"type": "message", "ts": "1.1", "text": "", "blocks": []},
                "response_url": self.slack.response_url(f"click-{time.monotonic_ns()}"),
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": "b",
                        "value": value,
                        "type": "button",
                        "action_ts": "1",
                    }
                ],
            },
        )

    def responses(self) -> list[dict[str, Any]]:
        return [c.params for c in self.slack.calls("response_url")]

    def wait_for(self, predicate: Any, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the bot to act")
            time.sleep(0.02)


@pytest.fixture
def socket() -> Iterator[Socket]:
    with (
        FakeSlack(usergroups={"S0SREONCALL": [APPROVER]}, channels={"#deploys": CHANNEL_ID}) as slack,
        SocketModeServer() as server,
    ):
        slack.socket_mode_url = server.url
        client = make_web_client(
            "xoxb-test", base_url=slack.base_url, retry=RetryPolicy(sleep=lambda _s: None)
        )
        settings = Settings(SLACK_BOT_TOKEN="xoxb-test", SLACK_APP_TOKEN="xapp-1-test")
        traffic = lego_api_world()
        runtime = build_runtime(
            settings,
            slack=client,
            clock=ManualClock(),
            store=open_store("sqlite://:memory:"),
            aws=AwsAdapters(traffic=traffic, metrics=FakeMetrics(), alarms=FakeAlarms("us-east-1")),
            policy=policy_with(approvers=["S0SREONCALL"], channel="#deploys", allowed_channels=[CHANNEL_ID]),
        )
        # As serve runs it: the outbox worker delivers the answers (response_url) and thread messages.
        if runtime.outbox_worker is not None:
            runtime.outbox_worker.start()
        handler = socket_mode_handler(runtime.app, "xapp-1-test", ping_interval=0.5)
        handler.connect()
        try:
            server.wait_connection()
            yield Socket(server=server, slack=slack, runtime=runtime, traffic=traffic)
        finally:
            handler.close()
            if runtime.outbox_worker is not None:
                runtime.outbox_worker.stop()


def _start_canary(s: Socket) -> None:
    s.slash(f"start {FN} 2", STARTER)
    s.wait_for(lambda: any(r.get("blocks") for r in s.responses()))
    preview = next(r for r in s.responses() if r.get("blocks"))
    value = _button(preview["blocks"], views.ACTION_START_CONFIRM)
    s.server.wait_ack(s.click(views.ACTION_START_CONFIRM, value, STARTER), timeout=ACK_DEADLINE)
    s.wait_for(lambda: s.alias() == ("1", {"2": 0.05}))


def _button(blocks: list[dict[str, Any]], action_id: str) -> str:
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button")


def test_a_slash_command_is_acked_with_its_envelope_id_within_3_s_and_acted_on(socket: Socket) -> None:
    sent = time.monotonic()
    envelope = socket.slash(f"start {FN} 2", STARTER)
    ack = socket.server.wait_ack(envelope, timeout=ACK_DEADLINE)
    assert ack["envelope_id"] == envelope and ack["_received"] - sent < ACK_DEADLINE
    socket.wait_for(lambda: any("Canary plan" in json.dumps(r) for r in socket.responses()))
    assert socket.alias() == ("1", {}), "a preview changes nothing"


def test_events_api_envelopes_are_acked_and_handled(socket: Socket) -> None:
    envelope = socket.server.send_envelope(
        "events_api",
        {
            "token": "legacy",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": {"type": "app_home_opened", "user": APPROVER, "channel": "D0X", "tab": "home"},
            "type": "event_callback",
            "event_id": "Ev1",
            "event_time": 1,
        },
    )
    socket.server.wait_ack(envelope, timeout=ACK_DEADLINE)
    socket.wait_for(lambda: socket.slack.home_view(APPROVER) is not None)


def test_after_a_refresh_the_client_reconnects_and_acts_once(socket: Socket) -> None:
    _start_canary(socket)
    writes = len(socket.traffic.routing_writes)
    before = socket.server.accepted
    socket.server.refresh()
    socket.server.wait_connection(after=before)
    envelope = socket.slash(f"weight {FN} 25%", APPROVER)
    socket.server.wait_ack(envelope, timeout=ACK_DEADLINE)
    socket.wait_for(lambda: socket.alias() == ("1", {"2": 0.25}))
    time.sleep(0.3)  # nothing else arrives later
    assert len(socket.traffic.routing_writes) == writes + 1
    assert [a["envelope_id"] for a in socket.server.acks].count(envelope) == 1


def test_after_a_dropped_connection_the_client_reconnects_and_acts_once(socket: Socket) -> None:
    _start_canary(socket)
    writes = len(socket.traffic.routing_writes)
    before = socket.server.accepted
    socket.server.drop()
    socket.server.wait_connection(after=before, timeout=15)
    envelope = socket.slash(f"weight {FN} 25%", APPROVER)
    socket.server.wait_ack(envelope, timeout=ACK_DEADLINE)
    socket.wait_for(lambda: socket.alias() == ("1", {"2": 0.25}))
    time.sleep(0.3)
    assert len(socket.traffic.routing_writes) == writes + 1
    assert [a["envelope_id"] for a in socket.server.acks].count(envelope) == 1


def test_an_envelope_delivered_again_after_a_reconnect_changes_traffic_once(socket: Socket) -> None:
    """Slack redelivers what it thinks was not handled (retry_attempt > 0) on the new connection."""
    socket.slash(f"start {FN} 2", STARTER)
    socket.wait_for(lambda: any(r.get("blocks") for r in socket.responses()))
    preview = next(r for r in socket.responses() if r.get("blocks"))
    value = _button(preview["blocks"], views.ACTION_START_CONFIRM)
    first = socket.click(views.ACTION_START_CONFIRM, value, STARTER)
    socket.server.wait_ack(first, timeout=ACK_DEADLINE)
    socket.wait_for(lambda: any("Canary started" in r.get("text", "") for r in socket.responses()))
    answered = len(socket.responses())
    before = socket.server.accepted
    socket.server.drop()
    socket.server.wait_connection(after=before, timeout=15)
    again = socket.server.send_envelope(
        "interactive", json.loads(json.dumps(_last_interactive(socket))), retry_attempt=1
    )
    socket.server.wait_ack(again, timeout=ACK_DEADLINE)
    socket.wait_for(lambda: len(socket.responses()) > answered)
    refusal = socket.responses()[-1]
    assert refusal.get("replace_original") is False and "⛔" in refusal["text"], refusal
    assert socket.alias() == ("1", {"2": 0.05})
    assert len(socket.traffic.routing_writes) == 1


def _last_interactive(socket: Socket) -> dict[str, Any]:
    sent = [m for m in socket.server.sent if m.get("type") == "interactive"]
    return dict(sent[-1]["payload"])
