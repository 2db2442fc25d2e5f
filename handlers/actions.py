"""Buttons: Start/Cancel on the preview, Promote / Roll back / Extend / Hold / Resume on prompts and decisions.

Each click is acked at once, then authorized on the server (at click time, with the clicker's identity) and
checked against the deployment revision the message was rendered for.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import views
from commands import extend, hold, promote, resume, rollback, start
from commands.base import Deps, Reply, safely, slack_actor

log = logging.getLogger(__name__)


def _ref(body: dict[str, Any]) -> views.ButtonRef:
    return views.parse_button_value(body["actions"][0].get("value") or "")


def _answer(respond: Respond, reply: Reply) -> None:
    """Success replaces the buttons with the outcome; a refusal goes to the clicker alone."""
    payload = reply.payload()
    if not reply.replace_original:
        payload["replace_original"] = False
        payload["response_type"] = "ephemeral"
    respond(**payload)


def register(app: App, deps: Deps) -> None:
    def bad_click(respond: Respond, exc: Exception) -> None:
        log.warning("unreadable button value: %s", exc)
        respond(text="⚠️ This button is not one canary-bot can read.", replace_original=False)

    @app.action(views.ACTION_START_CONFIRM)
    def start_confirm(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        try:
            ref = _ref(body)
        except ValueError as exc:
            bad_click(respond, exc)
            return
        _answer(respond, start.confirm(ref.deployment_id, ref.revision, slack_actor(body), deps))

    @app.action(views.ACTION_START_CANCEL)
    def start_cancel(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        try:
            ref = _ref(body)
        except ValueError as exc:
            bad_click(respond, exc)
            return
        _answer(respond, start.cancel(ref.deployment_id, ref.revision, slack_actor(body), deps))

    @app.action(views.ACTION_PROMOTE)
    def promote_click(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        try:
            ref = _ref(body)
        except ValueError as exc:
            bad_click(respond, exc)
            return
        _answer(respond, promote.click(ref.deployment_id, ref.revision, slack_actor(body), deps))

    @app.action(views.ACTION_ROLLBACK)
    def rollback_click(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        try:
            ref = _ref(body)
        except ValueError as exc:
            bad_click(respond, exc)
            return
        reason = str(ref.extra.get("reason") or "").strip()
        actor = slack_actor(body)
        if reason:
            _answer(respond, rollback.click(ref.deployment_id, ref.revision, reason, actor, deps))
            return

        def ask_reason() -> Reply:
            # Authorize before asking for a reason: a refused clicker should not fill in a form first.
            d = deps.service.get(ref.deployment_id)
            deps.service.authorizer.check(actor, deps.service.policy_for(d.function), "rollback", d)
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
            return Reply(text="", replace_original=True)

        reply = safely("rollback", ask_reason)
        if reply.text:
            _answer(respond, reply)

    @app.action(views.ACTION_EXTEND)
    def extend_click(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        try:
            ref = _ref(body)
        except ValueError as exc:
            bad_click(respond, exc)
            return
        _answer(respond, extend.click(ref.deployment_id, ref.revision, slack_actor(body), deps))

    @app.action(views.ACTION_HOLD)
    def hold_click(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        try:
            ref = _ref(body)
        except ValueError as exc:
            bad_click(respond, exc)
            return
        _answer(respond, hold.click(ref.deployment_id, slack_actor(body), deps))

    @app.action(views.ACTION_RESUME)
    def resume_click(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        try:
            ref = _ref(body)
        except ValueError as exc:
            bad_click(respond, exc)
            return
        _answer(respond, resume.click(ref.deployment_id, slack_actor(body), deps))
