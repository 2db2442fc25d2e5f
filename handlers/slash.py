"""The /canary slash command: ack at once, parse, then run the verb and answer the asker (ephemeral)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot import views
from bot.verbs import UsageError, parse_text
from commands import HANDLERS, Deps
from commands.base import slack_actor

COMMAND = "/canary"


def register(app: App, deps: Deps) -> None:
    @app.command(COMMAND)
    def canary(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        # Parsing is pure and fast, so bad input is answered in the ack itself; no AWS call happens before ack.
        try:
            args = parse_text(body.get("text") or "")
        except UsageError as exc:
            ack(text=f"⚠️ {exc.message}", blocks=views.error_blocks(exc.message, exc.usage))
            return
        ack()
        reply = HANDLERS[args.verb](args, slack_actor(body), deps)
        respond(**reply.payload())
