"""Revert, fallback and deploy locks: the prompts with their danger buttons, and the locks status shows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.model import AliasState, DeployLock, Deployment
from bot.views.ids import (
    ACTION_FALLBACK,
    ACTION_REVERT,
    BUTTON_VALUE_MAX,
    FALLBACK_BUTTON_ID,
    button_value,
)
from bot.views.kit import actions, button, confirm, context, render, section
from bot.views.text import clip, escape, when, who

REASON_MAX = 500
LOCK_MARK = "🔒"
REVERT_MARK = "⏪"


def revert_button(d: Deployment, *, reason: str | None, label: str | None = None) -> Any:
    """The danger button that reverts `d`'s promotion: its value carries the deployment id and revision."""
    why = clip(reason.strip(), REASON_MAX) if reason and reason.strip() else None
    s = f"v{d.stable_version}"
    return button(
        label or f"Revert to {s}",
        ACTION_REVERT,
        button_value(d, reason=why) if why else button_value(d),
        style="danger",
        ask=confirm(
            f"Revert {d.key} to {s}?",
            f"{d.key} will route all traffic to {s} at once; v{d.canary_version} gets none.",
            yes="Revert",
            style="danger",
        ),
    )


def revert_prompt_blocks(
    d: Deployment, *, alias: AliasState, reason: str, now: datetime
) -> list[dict[str, Any]]:
    lines = [
        f"*{REVERT_MARK} Revert {d.key} to v{d.stable_version}?*",
        f"*Now*  {alias.describe()}",
        f"*After*  100% v{d.stable_version} (undoes {d.id}'s promotion of v{d.canary_version})",
        f"*Reason*  {escape(clip(reason, REASON_MAX))}",
    ]
    promoted = f"promoted {when(d.ended_at, now)}" if d.ended_at else ""
    watch = f"watched until {when(d.watch_until, now)}" if d.watch_until else ""
    return render(
        [section("\n".join(lines)), actions([revert_button(d, reason=reason)]), context(promoted, watch)]
    )


def fallback_value(function: str, alias: str, unset: Sequence[str], reason: str | None) -> str:
    """What the Fall back button carries: the request, and a nonce so a second click changes nothing."""
    value = json.dumps(
        {
            "d": FALLBACK_BUTTON_ID,
            "r": 0,
            "fn": function,
            "alias": alias,
            "unset": list(unset),
            "reason": clip(reason, REASON_MAX) if reason else None,
            "n": uuid.uuid4().hex,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
    if len(value) > BUTTON_VALUE_MAX:
        raise ValueError("too many variables to fit a button; use the CLI")
    return value


def fallback_prompt_blocks(
    function: str, alias: AliasState, *, unset: Sequence[str], reason: str | None, live: Deployment | None
) -> list[dict[str, Any]]:
    gone = ", ".join(unset)
    lines = [
        f"*🚨 Emergency fallback on {function}:{alias.alias}?*",
        f"*Now*  {alias.describe()}",
        f"*After*  100% a new version: v{alias.version}'s code without {escape(gone)}",
    ]
    if live is not None:
        lines.append(f"*First*  the live canary {live.id} (v{live.canary_version}) is rolled back")
    if reason:
        lines.append(f"*Reason*  {escape(clip(reason, REASON_MAX))}")
    press = button(
        "Fall back now",
        ACTION_FALLBACK,
        fallback_value(function, alias.alias, unset, reason),
        style="danger",
        ask=confirm(
            "Publish and route 100% at once?",
            f"A new version of {function} without {gone} takes all of {alias.alias} at once, with no soak.",
            yes="Fall back",
            style="danger",
        ),
    )
    return render([section("\n".join(lines)), actions([press])])


def lock_line(lock: DeployLock) -> str:
    """'🔒 fn:alias locked by <@U1> since …: reason' (the reason escaped)."""
    since = f"{lock.since:%Y-%m-%d %H:%M} UTC"
    why = escape(clip(lock.reason, REASON_MAX))
    if lock.version is None:
        return (
            f"{LOCK_MARK} {lock.function}:{lock.alias} locked by {who(lock.locked_by)} since {since}: {why}"
        )
    return f"{LOCK_MARK} v{lock.version} of {lock.function}:{lock.alias} locked since {since}: {why}"


def locks_blocks(locks: Sequence[DeployLock]) -> list[Any]:
    """Blocks (not rendered) to add under a status or App Home: nothing when nothing is locked."""
    if not locks:
        return []
    return [section(f"*Deploy locks · {len(locks)}*\n" + "\n".join(lock_line(lock) for lock in locks[:20]))]
