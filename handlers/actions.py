"""Buttons: Start/Cancel on the preview, Promote / Roll back / Extend / Hold / Resume on prompts and decisions,
Revert on a revert prompt and a watch alert, Fall back on a fallback prompt.

Each click is acked at once; the work then authorizes the clicker on the server (at click time, with the
clicker's identity) and checks the deployment revision the message was rendered for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot import views
from bot.actors import Actor
from commands import extend, fallback, hold, promote, resume, revert, rollback, start
from commands.base import Deps, Reply, ack_now, safely, slack_actor
from handlers.home import HomeBoard, from_home

log = logging.getLogger(__name__)

# A button's work: (deployment id, revision it was rendered for, extra values, clicker) → reply.
Click = Callable[[views.ButtonRef, Actor, Deps], Reply]

CLICKS: dict[str, Click] = {
    views.ACTION_START_CONFIRM: lambda ref, actor, deps: start.confirm(
        ref.deployment_id, ref.revision, actor, deps
    ),
    views.ACTION_START_CANCEL: lambda ref, actor, deps: start.cancel(
        ref.deployment_id, ref.revision, actor, deps
    ),
    views.ACTION_PROMOTE: lambda ref, actor, deps: promote.click(
        ref.deployment_id, ref.revision, actor, deps
    ),
    views.ACTION_EXTEND: lambda ref, actor, deps: extend.click(
        ref.deployment_id, ref.revision, ref.extra.get("by"), actor, deps
    ),
    views.ACTION_HOLD: lambda ref, actor, deps: hold.click(ref.deployment_id, ref.revision, actor, deps),
    views.ACTION_RESUME: lambda ref, actor, deps: resume.click(ref.deployment_id, ref.revision, actor, deps),
    # Revert a promotion (a /canary revert prompt, or a watch alert): the value carries id, revision, reason.
    views.ACTION_REVERT: lambda ref, actor, deps: revert.click(
        ref.deployment_id, ref.revision, str(ref.extra.get("reason") or "reverted from Slack"), actor, deps
    ),
    views.ACTION_FALLBACK: lambda ref, actor, deps: fallback.click(ref.extra, actor, deps),
}


def _answer(body: dict[str, Any], respond: Respond, reply: Reply, deps: Deps, board: HomeBoard) -> None:
    """Success replaces the buttons with the outcome; a refusal goes to the clicker alone.

    A click on the App Home has no message to answer: the clicker's Home is re-published with the outcome.
    """
    if from_home(body):
        board.publish(slack_actor(body).id, notice=reply)
        return
    payload = reply.payload()
    if not reply.replace_original:
        payload["replace_original"] = False
        payload["response_type"] = "ephemeral"
    deps.answer(respond, payload)


def _button(body: dict[str, Any], respond: Respond, deps: Deps, board: HomeBoard) -> views.ButtonRef | None:
    try:
        return views.parse_button_value(body["actions"][0].get("value") or "")
    except ValueError as exc:
        log.warning("unreadable button value: %s", exc)
        _answer(body, respond, Reply(text="⚠️ This button is not one canary-bot can read."), deps, board)
        return None


def register(app: App, deps: Deps, board: HomeBoard) -> None:
    def on_click(body: dict[str, Any], respond: Respond) -> None:
        ref = _button(body, respond, deps, board)
        if ref is not None:
            reply = CLICKS[body["actions"][0]["action_id"]](ref, slack_actor(body), deps)
            _answer(body, respond, reply, deps, board)

    def on_rollback(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ref = _button(body, respond, deps, board)
        if ref is None:
            return
        actor = slack_actor(body)
        reason = str(ref.extra.get("reason") or "").strip()
        if reason:
            reply = rollback.click(ref.deployment_id, ref.revision, reason, actor, deps)
            _answer(body, respond, reply, deps, board)
            return

        def ask_reason() -> Reply:
            # Authorize before asking for a reason: a refused clicker should not fill in a form first.
            d = deps.service.get(ref.deployment_id)
            deps.service.authorize(actor, d, "rollback")
            modal = views.rollback_reason_modal(d)
            # Carry where to answer (the button's response_url) and the revision the button was rendered for.
            modal["private_metadata"] = json.dumps(
                {
                    "button": views.button_value(d),
                    "revision": ref.revision,
                    "response_url": body.get("response_url"),
                }
            )
            client.views_open(trigger_id=body["trigger_id"], view=modal)
            return Reply(text="")

        reply = safely("rollback", ask_reason)
        if reply.text:
            _answer(body, respond, reply, deps, board)

    for action_id in CLICKS:
        app.action(action_id)(ack=ack_now, lazy=[on_click])
    app.action(views.ACTION_ROLLBACK)(ack=ack_now, lazy=[on_rollback])
