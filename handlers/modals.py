"""The rollback-reason modal: submitted reason → rollback through the service."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk.webhook import WebhookClient

from bot import views
from commands import rollback
from commands.base import Deps, slack_actor

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    @app.view(views.CALLBACK_ROLLBACK_REASON)
    def rollback_reason(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        state = view.get("state", {}).get("values", {})
        reason = (
            state.get(views.BLOCK_ROLLBACK_REASON, {}).get(views.INPUT_ROLLBACK_REASON, {}).get("value") or ""
        ).strip()
        if not reason:
            ack(
                response_action="errors",
                errors={views.BLOCK_ROLLBACK_REASON: "Say why: it goes in the audit log"},
            )
            return
        ack()
        meta = json.loads(view.get("private_metadata") or "{}")
        ref = views.parse_button_value(meta.get("button") or "")
        reply = rollback.click(ref.deployment_id, meta.get("revision"), reason, slack_actor(body), deps)
        response_url = meta.get("response_url")
        if response_url:
            # The modal has no message of its own: answer where the Roll back button was.
            payload = reply.payload()
            WebhookClient(response_url).send_dict(payload)
