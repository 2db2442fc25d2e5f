"""Answers for one person: /canary status, history, help, usage errors, refusals, and the App Home."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, get_args

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.judge import PeriodVerdict
from bot.model import AuditRecord, DeployLock, Deployment, State
from bot.service import HistoryEntry, StatusEntry
from bot.views.decision import Choice, control_buttons
from bot.views.kit import (
    MESSAGE_BLOCKS_MAX,
    SECTION_TEXT_MAX,
    VIEW_BLOCKS_MAX,
    actions,
    context,
    divider,
    header,
    render,
    section,
)
from bot.views.parent import CANARY_MARK, summary_lines
from bot.views.runbook import locks_blocks
from bot.views.text import BREACH, PASS, WARN, clip, clock, escape, state_word, when, who

REFUSAL_MARK = "🚫"
CANCELLED_MARK = "✖️"
AUDIT_LINES = 6
# Deployments shown before "… and N more" (each takes up to three blocks; Slack allows 50 in a message).
MAX_LISTED = 15


def status_blocks(
    entries: list[StatusEntry], *, now: datetime, latest: Mapping[str, PeriodVerdict] | None = None
) -> list[dict[str, Any]]:
    """The ephemeral answer to /canary status; `latest` maps a deployment id (or fn:alias) to its verdict."""
    if not entries:
        return render([section("No live canaries.")])
    blocks: list[Block | None] = [section(f"*Live canaries · {len(entries)}* · {clock(now)}")]
    for entry in entries[:MAX_LISTED]:
        d = entry.deployment
        last = (latest or {}).get(d.id) or (latest or {}).get(d.key)
        lines = summary_lines(d, now=now, alias=entry.alias, last=last)
        if entry.alias_error:
            lines.append(f"{WARN} could not read the alias: {escape(entry.alias_error)}")
        blocks += [section("\n".join(lines)), context(_identity(d, now))]
    blocks.append(_more(len(entries)))
    return render(blocks)


def history_blocks(entries: list[HistoryEntry], *, now: datetime) -> list[dict[str, Any]]:
    if not entries:
        return render([section("No canaries recorded yet.")])
    first = entries[0].deployment
    blocks: list[Block | None] = [section(f"*Canary history · {first.key}* · latest first")]
    for entry in entries[:MAX_LISTED]:
        d = entry.deployment
        title = (
            f"{_mark(d.state)} *{d.id}* v{d.stable_version} → v{d.canary_version} · "
            f"{state_word(d.state)} · {when(d.created_at, now)}"
        )
        if d.reason and d.state is not State.PROMOTED:
            title += f"\n{escape(clip(d.reason, 300))}"
        blocks += [section(title), context(_audit_lines(entry.audit))]
    blocks.append(_more(len(entries)))
    return render(blocks)


def _mark(state: State) -> str:
    return {
        State.PROMOTED: PASS,
        State.ROLLED_BACK: BREACH,
        State.CANCELLED: CANCELLED_MARK,
    }.get(state, CANARY_MARK)


def _audit_lines(audit: list[AuditRecord]) -> str:
    shown = [r for r in audit if r.phase in ("done", "event")][-AUDIT_LINES:]
    if not shown:
        return "no audit records"
    lines = []
    for record in shown:
        why = f": {escape(clip(record.reason, 120))}" if record.reason else ""
        lines.append(f"{clock(record.at)} {record.action.replace('_', ' ')} by {who(record.actor)}{why}")
    return clip("\n".join(lines), SECTION_TEXT_MAX)


def _identity(d: Deployment, now: datetime) -> str:
    return f"{d.id} · started by {who(d.created_by)} · {when(d.created_at, now)}"


def _more(total: int) -> Block | None:
    return context(f"… and {total - MAX_LISTED} more") if total > MAX_LISTED else None


# ---------------------------------------------------------------- App Home
HOME_CHOICES: tuple[Choice, ...] = get_args(Choice)


def home_view(
    entries: list[StatusEntry],
    *,
    now: datetime,
    can_act: Callable[[Deployment, str], bool],
    notice: str | None = None,
    locks: Sequence[DeployLock] = (),
) -> dict[str, Any]:
    """The viewer's App Home: live canaries, with only the buttons `can_act(d, action)` allows them.

    `notice` is the answer to the viewer's last click on this Home (its outcome, or why it was refused).
    """
    blocks: list[Block | None] = [header("Canaries")]
    if notice:
        blocks += [section(clip(notice, SECTION_TEXT_MAX)), context(f"Your last action · {clock(now)}")]
    blocks.append(context(f"Updated {when(now, now)}"))
    if not entries:
        blocks.append(section("No live canaries."))
    blocks += locks_blocks(locks)  # deploy locks (bot.views.runbook)
    for entry in entries[: (VIEW_BLOCKS_MAX - 6) // 4]:
        d = entry.deployment
        lines = summary_lines(d, now=now, alias=entry.alias)
        if entry.alias_error:
            lines.append(f"{WARN} could not read the alias: {escape(entry.alias_error)}")
        buttons = control_buttons(d, HOME_CHOICES, may=_viewer_may(d, can_act))
        blocks += [divider(), section("\n".join(lines)), context(_identity(d, now)), actions(buttons)]
    return View(type="home", blocks=[b for b in blocks if b is not None]).to_dict()


def _viewer_may(d: Deployment, can_act: Callable[[Deployment, str], bool]) -> Callable[[Choice], bool]:
    return lambda action: can_act(d, action)


# ---------------------------------------------------------------- short answers
def help_blocks(text: str) -> list[dict[str, Any]]:
    """Help text as sections, split on blank lines so each fits Slack's 3000 characters."""
    chunks: list[str] = []
    for paragraph in text.strip().split("\n\n"):
        if chunks and len(chunks[-1]) + len(paragraph) + 2 <= SECTION_TEXT_MAX:
            chunks[-1] += "\n\n" + paragraph
        else:
            chunks.append(paragraph)
    return render(
        [section(chunk) for chunk in chunks[:MESSAGE_BLOCKS_MAX]] or [section("No help available.")]
    )


def error_blocks(message: str, usage: str | None = None) -> list[dict[str, Any]]:
    """'⚠️ <what was wrong>' and, when known, the usage to type instead. Both may echo what was typed."""
    blocks: list[Block | None] = [section(f"{WARN} {escape(message)}")]
    if usage:
        # The parser's usage lines begin 'usage: …'; the label is said once.
        shown = usage[len("usage:") :].strip() if usage.lower().startswith("usage:") else usage
        blocks.append(context(f"Usage: `{escape(shown)}`"))
    return render(blocks)


def refusal_blocks(message: str) -> list[dict[str, Any]]:
    """Understood but not allowed or not possible now; nothing was changed."""
    return render([section(f"{REFUSAL_MARK} {message}"), context("Nothing was changed.")])
