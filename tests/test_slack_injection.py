"""Hostile text typed by people never becomes a Slack mention or link in anything the bot says.

Every verb and the rollback modal get text full of Slack's control sequences, over the real Bolt app and the fake
Slack Web API; then every message the bot sent (channel, thread, ephemeral answers, acks, App Home, modals) is
scanned for those sequences left unescaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from bot import views
from bot.views.text import escape
from tests.support import slack_requests as req
from tests.support.slack_world import APPROVER, STARTER, SlackWorld, slack_world
from tests.support.world import FN

HOSTILE = "<!channel> <https://evil.example|click> <@UEVIL> &amp;"
# What a hostile text would do if it reached Slack unescaped: notify everyone, disguise a link, mention someone,
# or smuggle an entity that Slack turns back into markup.
UNESCAPED = (re.compile(r"<!channel"), re.compile(r"<https://evil"), re.compile(r"<@UEVIL"))
RAW_ENTITY = re.compile(r"&amp;(?!amp;)")


@pytest.fixture
def sw() -> Iterator[SlackWorld]:
    with slack_world() as world:
        yield world


def _q(text: str) -> str:
    return json.dumps(text)  # a double-quoted word for the /canary parser


# Data the bot carries but Slack never displays (a button's value, a modal's private metadata, ids).
NOT_SHOWN = {"value", "private_metadata", "action_id", "block_id", "callback_id", "response_url", "url"}


def _shown(payload: Any) -> Iterator[str]:
    """Every string in a message or view that Slack shows (and parses for mentions and links)."""
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key not in NOT_SHOWN:
                yield from _shown(value)
    elif isinstance(payload, list):
        for item in payload:
            yield from _shown(item)
    elif isinstance(payload, str):
        if payload.startswith(("{", "[")):
            try:
                yield from _shown(json.loads(payload))  # blocks / view sent as a JSON string
                return
            except ValueError:
                pass
        yield payload


def _everything_said(sw: SlackWorld, acks: list[str]) -> list[str]:
    calls = [call.params for call in sw.slack.calls()]
    return [text for payload in (*calls, *acks) for text in _shown(payload)]


def _leaks(texts: list[str]) -> list[str]:
    found = []
    for text in texts:
        for pattern in UNESCAPED:
            found += [text[max(m.start() - 60, 0) : m.end() + 20] for m in pattern.finditer(text)]
        found += [text[max(m.start() - 60, 0) : m.end() + 20] for m in RAW_ENTITY.finditer(text)]
    return found


def test_escape_makes_slack_control_characters_inert() -> None:
    assert escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert escape("plain text") == "plain text"


def test_hostile_text_through_every_verb_and_the_modal_is_escaped_in_every_message(sw: SlackWorld) -> None:
    acks: list[str] = []

    def command(text: str, user: str = STARTER, user_name: str | None = None) -> dict[str, Any] | None:
        before = len(sw.responses())
        response = sw.dispatch(
            req.slash_command(
                text=text,
                user_id=user,
                user_name=user_name or user.lower(),
                response_url=sw.slack.response_url(f"cmd-{len(sw.slack.calls())}"),
            )
        )
        assert response.status == 200, response.body
        acks.append(response.body or "")
        return sw.last_response() if len(sw.responses()) > before else None

    def click(action_id: str, value: str, user: str = APPROVER) -> None:
        response = sw.click(action_id, value, user=user)
        assert response.status == 200
        acks.append(response.body or "")

    # Bad input of every verb echoes what was typed.
    for text in (
        HOSTILE,
        f"help {_q(HOSTILE)}",
        f"start {_q(HOSTILE)} 2",
        f"start {FN} {_q(HOSTILE)}",
        f"start {FN} 2 --weight {_q(HOSTILE)}",
        f"start {FN} 2 --soak {_q(HOSTILE)}",
        f"start {FN} --publish --set {_q(HOSTILE)}",
        f"start {FN} 2 --alias {_q(HOSTILE)}",
        f"status {_q(HOSTILE)}",
        f"status {FN} --alias {_q(HOSTILE)}",
        f"promote {_q(HOSTILE)}",
        f"rollback {FN} --reason {_q(HOSTILE)} --alias {_q(HOSTILE)}",
        f"history {FN} --limit {_q(HOSTILE)}",
        f"weight {FN} {_q(HOSTILE)}",
        f"hold {_q(HOSTILE)}",
        f"resume {FN} --alias {_q(HOSTILE)}",
        f"extend {FN} {_q(HOSTILE)}",
        f"status {FN} {_q(HOSTILE)}",
    ):
        command(text)

    # A canary published with a hostile environment value and a hostile override reason, by a hostile name.
    preview = command(
        f"start {FN} --publish --set REDIS_URL={_q(HOSTILE)} --override-alarms {_q(HOSTILE)}",
        user_name=HOSTILE,
    )
    assert preview is not None and views.ACTION_START_CONFIRM in sw.buttons(preview["blocks"])
    click(views.ACTION_START_CONFIRM, sw.buttons(preview["blocks"])[views.ACTION_START_CONFIRM], user=STARTER)
    command(f"hold {FN} --reason {_q(HOSTILE)}", user=APPROVER, user_name=HOSTILE)
    command(f"status {FN}")
    command(f"resume {FN}", user=APPROVER)
    command(f"extend {FN} 30m", user=APPROVER, user_name=HOSTILE)
    # Rolled back through the modal, with a hostile reason.
    prompt = command(f"rollback {FN}", user=APPROVER)
    assert prompt is not None
    click(views.ACTION_ROLLBACK, sw.buttons(prompt["blocks"])[views.ACTION_ROLLBACK])
    modal = sw.slack.calls("views.open")[-1].params["view"]
    submitted = sw.dispatch(
        req.view_submission(
            views.CALLBACK_ROLLBACK_REASON,
            req.plain_text_values({(views.BLOCK_ROLLBACK_REASON, views.INPUT_ROLLBACK_REASON): HOSTILE}),
            private_metadata=modal["private_metadata"],
            user_id=APPROVER,
            user_name=HOSTILE,
        )
    )
    acks.append(submitted.body or "")
    assert sw.world.alias() == ("1", {})

    # A second canary rolled back with a hostile --reason on the command, then the history and App Home.
    preview = command(f"start {FN} 2")
    assert preview is not None
    click(views.ACTION_START_CONFIRM, sw.buttons(preview["blocks"])[views.ACTION_START_CONFIRM], user=STARTER)
    prompt = command(f"rollback {FN} --reason {_q(HOSTILE)}", user=APPROVER)
    assert prompt is not None
    click(views.ACTION_ROLLBACK, sw.buttons(prompt["blocks"])[views.ACTION_ROLLBACK])
    assert sw.world.alias() == ("1", {})
    command(f"history {FN}")
    sw.dispatch(req.app_home_opened(APPROVER))
    # A button value naming a hostile deployment (no real button carries one) is refused without echoing it.
    for action in (views.ACTION_HOLD, views.ACTION_PROMOTE, views.ACTION_ROLLBACK):
        click(action, json.dumps({"d": HOSTILE, "r": 1}))

    said = _everything_said(sw, acks)
    # The hostile text did reach the channel and the thread (rollback broadcast, parent, hold note) — escaped.
    posted = [text for m in sw.slack.calls("chat.postMessage") for text in _shown(m.params)]
    assert sum(escape(HOSTILE) in text for text in posted) >= 3
    leaks = _leaks(said)
    assert not leaks, "\n".join(leaks[:10])
