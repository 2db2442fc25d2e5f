"""The /canary slash command: ack at once (bad input is answered in the ack), then run the verb and answer the
asker (ephemeral)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.verbs import UsageError, parse_text
from commands import HANDLERS, Deps
from commands.base import slack_actor, usage_reply

COMMAND = "/canary"
log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    def acknowledge(ack: Ack, body: dict[str, Any]) -> None:
        # Parsing is pure and fast; no AWS or Web API call happens before the ack.
        try:
            parse_text(body.get("text") or "")
        except UsageError as exc:
            reply = usage_reply(exc)
            ack(text=reply.text, blocks=reply.blocks)
            return
        ack()

    def run(body: dict[str, Any], respond: Respond) -> None:
        if not body.get("response_url"):
            # Slack always sends one; without it the asker could never be told what happened, so do nothing.
            log.warning("/canary without a response_url: not run")
            return
        try:
            args = parse_text(body.get("text") or "")
        except UsageError:
            return  # already answered in the ack
        reply = HANDLERS[args.verb](args, slack_actor(body), deps)
        deps.answer(respond, reply.payload())

    app.command(COMMAND)(ack=acknowledge, lazy=[run])
