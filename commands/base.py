"""What every verb module shares: its dependencies, its reply, and the one place errors become messages."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError
from slack_bolt import Ack, Respond

from bot import views
from bot.actors import Actor, NotAuthorized
from bot.canary import IllegalTransition, InvalidPlan
from bot.config import PolicyError
from bot.outbox import Outbox
from bot.ports import AwsFailure, CanaryError, Clock, NotFound, StorePort
from bot.service import ActionPending, ActionResult, CanaryService, NotInPolicy
from bot.soak import SoakRunner
from bot.units import format_percent
from bot.usecases.runbook import Runbook
from bot.verbs import UsageError

log = logging.getLogger(__name__)


@dataclass
class Deps:
    service: CanaryService
    clock: Clock
    store: StorePort  # for the replay guard's claims
    soak: SoakRunner | None = None  # latest figures for status and App Home, read from the store
    # Answers to response_urls go through the outbox (retried while Slack is down); None: sent at once.
    outbox: Outbox | None = None

    def recovery(self) -> Runbook:
        """Revert, fallback and locks (bot.usecases.runbook)."""
        return self.service.runbook

    def answer(self, respond: Respond, payload: dict[str, Any]) -> None:
        """Answer the asker through their response_url."""
        url = getattr(respond, "response_url", None)
        if self.outbox is None or not url:
            respond(**payload)
            return
        self.outbox.respond(url=url, params=payload)


@dataclass
class Reply:
    """An answer to the asker: ephemeral unless in_channel."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    in_channel: bool = False
    replace_original: bool = False

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "text": self.text,
            "response_type": "in_channel" if self.in_channel else "ephemeral",
            "replace_original": self.replace_original,
        }
        if self.blocks:
            body["blocks"] = self.blocks
        return body


def routes_now(result: ActionResult) -> str:
    """'fn:alias now 100% v2': the alias as the action left it (what follows 'Promoted by @x at …:')."""
    d = result.deployment
    return f"{d.key} now {result.alias.describe()}" if result.alias is not None else d.key


def held_note(result: ActionResult) -> str:
    d = result.deployment
    return f"{d.key} keeps {format_percent(d.weight)} on v{d.canary_version}; no automatic step or promotion"


def soak_end(result: ActionResult) -> str:
    d = result.deployment
    return f"{d.key} now soaks until {d.soak_ends_at:%H:%M} UTC" if d.soak_ends_at else d.key


def ack_now(ack: Ack) -> None:
    """The ack of a listener whose work is lazy: answer Slack at once, nothing else."""
    ack()


def error_reply(exc: BaseException, verb: str | None) -> Reply:
    """Bad input: what was wrong and the usage line. Refusals: why. Never a traceback."""
    if isinstance(exc, UsageError):
        return usage_reply(exc)
    if isinstance(exc, NotFound | NotInPolicy | InvalidPlan | PolicyError):
        usage = UsageError("", verb).usage
        return Reply(text=f"⚠️ {exc}", blocks=views.error_blocks(str(exc), usage))
    if isinstance(exc, ActionPending):
        # Durable and being retried: not a failure to act on, and no reason to click again.
        message = f"Recorded, not applied yet: {str(exc).rstrip('.')}."
        return Reply(text=f"⏳ {message}", blocks=views.refusal_blocks(message))
    if isinstance(exc, AwsFailure | BotoCoreError):
        message = f"AWS did not do it: {str(exc).rstrip('.')}. Nothing else was changed."
        return Reply(text=f"🔴 {message}", blocks=views.refusal_blocks(message))
    if isinstance(exc, NotAuthorized | IllegalTransition | CanaryError):
        return Reply(text=f"⛔ {exc}", blocks=views.refusal_blocks(str(exc)))
    ref = uuid.uuid4().hex[:8]
    log.exception("unexpected error (ref %s)", ref)
    message = (
        f"Something went wrong on our side (ref {ref}); it is logged. Nothing was changed by this request."
    )
    return Reply(text=message, blocks=views.refusal_blocks(message))


def usage_reply(exc: UsageError) -> Reply:
    """Bad input, answered to the asker alone. The message echoes what they typed: escaped, like all user text."""
    return Reply(text=f"⚠️ {views.escape(exc.message)}", blocks=views.error_blocks(exc.message, exc.usage))


def safely(verb: str | None, work: Callable[[], Reply]) -> Reply:
    try:
        return work()
    except Exception as exc:
        return error_reply(exc, verb)


_NOT_IN_ID = re.compile(r"[^A-Z0-9]")
_NOT_IN_NAME = re.compile(r"[^\w.\-]")


def slack_actor(body: dict[str, Any]) -> Actor:
    """The person behind a slash command or an interaction payload.

    People are identified by their Slack user ID (U…/W…); the name is only for reading. Both are reduced to
    the characters Slack uses for them, so neither can carry markup into a message or the audit log.
    """
    user = body.get("user") or {}
    user_id = _NOT_IN_ID.sub("", str(body.get("user_id") or user.get("id") or "")) or "unknown"
    name = body.get("user_name") or user.get("username") or user.get("name") or user_id
    name = _NOT_IN_NAME.sub("", str(name))[:80] or user_id
    channel = body.get("channel") or {}
    container = body.get("container") or {}
    channel_id = body.get("channel_id") or channel.get("id") or container.get("channel_id")
    channel_name = body.get("channel_name") or channel.get("name")
    return Actor(id=user_id, name=name, source="slack", channel=channel_id, channel_name=channel_name)
