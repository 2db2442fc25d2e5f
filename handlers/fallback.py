"""Requests no other listener takes: an unknown button, form or command gets a polite answer, never a 404.

Slack shows the person an error for a 404; a button from an older version of the bot, or a command pointed
here by mistake, should instead say plainly that nothing was done. Registered last: Bolt tries listeners in
order, so these only see what the others did not match.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, Respond

from bot import views
from commands.base import Deps, ack_now

log = logging.getLogger(__name__)

ANYTHING = re.compile(r".*", re.DOTALL)
UNKNOWN_BUTTON = (
    "⚠️ canary-bot does not know this button (it may come from an older message). Nothing was changed."
)


def register(app: App, deps: Deps) -> None:
    def unknown_action(body: dict[str, Any], respond: Respond) -> None:
        actions = body.get("actions") or [{}]
        log.info("unknown action_id %r", str(actions[0].get("action_id"))[:80])
        if body.get("response_url"):
            deps.answer(
                respond, {"text": UNKNOWN_BUTTON, "replace_original": False, "response_type": "ephemeral"}
            )

    def unknown_view(ack: Ack, body: dict[str, Any]) -> None:
        log.info("unknown view callback_id %r", str((body.get("view") or {}).get("callback_id"))[:80])
        ack()

    def unknown_command(ack: Ack, body: dict[str, Any]) -> None:
        command = views.escape(str(body.get("command"))[:40])
        ack(text=f"⚠️ canary-bot answers `/canary`, not `{command}`. Nothing was changed.")

    app.action(ANYTHING)(ack=ack_now, lazy=[unknown_action])  # the answer goes to Slack after the ack
    app.view(ANYTHING)(unknown_view)
    app.command(ANYTHING)(unknown_command)
