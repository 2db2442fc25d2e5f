"""The rollback-reason modal: an empty reason is refused in the form (in the ack); a submitted reason rolls back."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk.webhook import WebhookClient

from bot import views
from commands import rollback
from commands.base import Deps, slack_actor
from handlers.home import HomeBoard

log = logging.getLogger(__name__)


def _reason(view: dict[str, Any]) -> str:
    state = view.get("state", {}).get("values", {})
    value = state.get(views.BLOCK_ROLLBACK_REASON, {}).get(views.INPUT_ROLLBACK_REASON, {}).get("value")
    return str(value or "").strip()


def register(app: App, deps: Deps, board: HomeBoard) -> None:
    def acknowledge(ack: Ack, view: dict[str, Any]) -> None:
        if not _reason(view):
            ack(
                response_action="errors",
                errors={views.BLOCK_ROLLBACK_REASON: "Say why: it goes in the audit log"},
            )
            return
        ack()

    def run(body: dict[str, Any], view: dict[str, Any]) -> None:
        reason = _reason(view)
        if not reason:
            return
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            ref = views.parse_button_value(meta.get("button") or "")
        except (ValueError, AttributeError, TypeError) as exc:
            # Only a form this bot did not open gets here: nothing to act on, nobody to answer.
            log.warning("rollback form with unreadable metadata: %s", exc)
            return
        reply = rollback.click(ref.deployment_id, meta.get("revision"), reason, slack_actor(body), deps)
        response_url = meta.get("response_url")
        if response_url:
            # The modal has no message of its own: answer where the Roll back button was.
            WebhookClient(response_url).send_dict(reply.payload())
        else:
            # The button was on the App Home (a view has no response_url): answer there.
            board.publish(slack_actor(body).id, notice=reply)

    app.view(views.CALLBACK_ROLLBACK_REASON)(ack=acknowledge, lazy=[run])
