"""Signed Slack requests, shaped and signed the way Slack sends them, for driving Bolt in tests.

    body, headers = slash_command("/canary", "status", secret=SIGNING_SECRET)
    response = app.dispatch(bolt_request(body, headers))

Each builder returns a SignedRequest (a (body, headers) tuple). `timestamp=` signs as of another moment (Bolt
refuses anything more than 300 s off), `secret=` signs with another secret (to test refusals).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlencode

from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from canary_demo.fake_slack import APP_ID, BOT_USER_ID, TEAM_ID

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
USER_ID = "U0ALICE"
USER_NAME = "alice"
CHANNEL_ID = "C0DEPLOYS"
CHANNEL_NAME = "deploys"
# Pass `response_url=fake_slack.response_url()` when the listener responds; this default fails fast, locally.
DEFAULT_RESPONSE_URL = "http://127.0.0.1:9/response/not-set"

_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"


class SignedRequest(NamedTuple):
    body: str
    headers: dict[str, str]


def sign(
    body: str, *, content_type: str, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> SignedRequest:
    """Sign `body` with Slack's v0 scheme: HMAC-SHA256 over "v0:{timestamp}:{body}"."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None  # None only when the secret is empty
    headers = {
        "content-type": content_type,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": signature,
    }
    return SignedRequest(body=body, headers=headers)


def bolt_request(body: str, headers: Mapping[str, str]) -> BoltRequest:
    """Wrap a signed request for `app.dispatch(...)`."""
    return BoltRequest(body=body, headers=dict(headers))


def slash_command(
    command: str = "/canary",
    text: str = "",
    *,
    user_id: str = USER_ID,
    user_name: str = USER_NAME,
    channel_id: str = CHANNEL_ID,
    channel_name: str = CHANNEL_NAME,
    team_id: str = TEAM_ID,
    trigger_id: str = "1111.2222.trigger",
    response_url: str = DEFAULT_RESPONSE_URL,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> SignedRequest:
    form = {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "team_domain": "fake-workspace",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    return sign(urlencode(form), content_type=_FORM, secret=secret, timestamp=timestamp)


def block_actions(
    action_id: str,
    value: str = "",
    *,
    block_id: str = "actions",
    user_id: str = USER_ID,
    user_name: str = USER_NAME,
    channel_id: str = CHANNEL_ID,
    channel_name: str | None = None,
    team_id: str = TEAM_ID,
    message_ts: str = "1700000000.000100",
    message_blocks: Sequence[Mapping[str, Any]] = (),
    message_text: str = "",
    response_url: str = DEFAULT_RESPONSE_URL,
    trigger_id: str = "1111.2222.trigger",
    action_ts: str | None = None,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> SignedRequest:
    """A button click on a message the bot posted (the container is that message)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": "fake-workspace"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {
            "id": channel_id,
            "name": channel_name or (CHANNEL_NAME if channel_id == CHANNEL_ID else "random"),
        },
        "message": {
            "type": "message",
            "user": BOT_USER_ID,
            "ts": message_ts,
            "bot_id": "B0CANARYBOT",
            "app_id": APP_ID,
            "text": message_text,
            "team": team_id,
            "blocks": [dict(block) for block in message_blocks],
        },
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": action_ts or f"{time.time():.6f}",
            }
        ],
    }
    return _interactive(payload, secret=secret, timestamp=timestamp)


def view_submission(
    callback_id: str,
    values: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    *,
    private_metadata: str = "",
    view_id: str = "V0000000001",
    user_id: str = USER_ID,
    user_name: str = USER_NAME,
    team_id: str = TEAM_ID,
    trigger_id: str = "1111.2222.trigger",
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> SignedRequest:
    """A modal submitted; `values` is view.state.values (build it with `plain_text_values`)."""
    state = {block: {action: dict(v) for action, v in acts.items()} for block, acts in (values or {}).items()}
    payload: dict[str, Any] = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "fake-workspace"},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": trigger_id,
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": state},
            "hash": "1700000000.abcdef",
            "title": {"type": "plain_text", "text": "canary-bot"},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": {"type": "plain_text", "text": "Cancel"},
            "submit": {"type": "plain_text", "text": "Submit"},
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": "B0CANARYBOT",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interactive(payload, secret=secret, timestamp=timestamp)


def plain_text_values(entries: Mapping[tuple[str, str], str]) -> dict[str, dict[str, dict[str, Any]]]:
    """view.state.values for plain-text inputs: {(block_id, action_id): value}."""
    values: dict[str, dict[str, dict[str, Any]]] = {}
    for (block_id, action_id), value in entries.items():
        values.setdefault(block_id, {})[action_id] = {"type": "plain_text_input", "value": value}
    return values


def app_home_opened(
    user_id: str = USER_ID,
    *,
    tab: str = "home",
    team_id: str = TEAM_ID,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> SignedRequest:
    now = int(time.time()) if timestamp is None else timestamp
    envelope = {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": {
            "type": "app_home_opened",
            "user": user_id,
            "channel": "D" + user_id[1:],
            "tab": tab,
            "event_ts": f"{now}.000100",
        },
        "type": "event_callback",
        "event_id": f"Ev{now}{user_id}",
        "event_time": now,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    return sign(json.dumps(envelope), content_type=_JSON, secret=secret, timestamp=timestamp)


def url_verification(
    challenge: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> SignedRequest:
    body = json.dumps(
        {"token": "legacy-verification-token", "challenge": challenge, "type": "url_verification"}
    )
    return sign(body, content_type=_JSON, secret=secret, timestamp=timestamp)


def _interactive(payload: Mapping[str, Any], *, secret: str, timestamp: int | None) -> SignedRequest:
    # Slack posts interactivity as a form with one field, `payload`, holding the JSON.
    return sign(
        urlencode({"payload": json.dumps(payload)}), content_type=_FORM, secret=secret, timestamp=timestamp
    )
