"""The parent message of a deployment's thread: the live truth, edited in place on every change."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from bot import canary
from bot.judge import Outcome, PeriodVerdict
from bot.model import AliasState, Deployment, State
from bot.views.kit import context, render, section
from bot.views.text import (
    BREACH,
    HELD,
    PASS,
    WARN,
    clock,
    escape,
    percent,
    progress_bar,
    relative,
    span,
    when,
    who,
)

CANARY_MARK = "🐤"
WATCH_MARK = "👀"

OUTCOME_MARKS = {Outcome.PASS: PASS, Outcome.FAIL: BREACH, Outcome.NO_DATA: WARN}


def headline(d: Deployment) -> str:
    """One line per state: '🐤 fn:alias — canary v42 at 5% · soaking'."""
    c, s, w = f"v{d.canary_version}", f"v{d.stable_version}", percent(d.weight)
    step = f" · step {d.step_index + 1}/{len(d.steps)}" if len(d.steps) > 1 else ""
    match d.state:
        case State.PLANNED:
            return f"{CANARY_MARK} {d.key} — canary {c} planned at {w} · not started"
        case State.CANARY:
            return f"{CANARY_MARK} {d.key} — canary {c} at {w} · soaking{step}"
        case State.AWAITING_APPROVAL:
            return f"{CANARY_MARK} {d.key} — canary {c} at {w} · awaiting approval"
        case State.HELD:
            return f"{HELD} {d.key} — canary {c} at {w} · held{step}"
        case State.ROLLING_BACK:
            return f"{BREACH} {d.key} — rolling back {c} → {s}"
        case State.PROMOTED:
            return f"{PASS} {d.key} — {c} promoted · alias now 100% {c}"
        case State.ROLLED_BACK:
            return f"{BREACH} {d.key} — rolled back to {s} · canary {c} removed"
        case State.CANCELLED:
            return f"{d.key} — canary {c} cancelled · alias untouched by canary-bot"


def alarm_rollback_off_line(why: str) -> str:
    """Said wherever a canary is shown while CloudWatch alarms cannot roll it back."""
    return f"{WARN} alarm rollback OFF: {why}; only the soak thresholds can roll back"


def parent_text(d: Deployment) -> str:
    """Notification / fallback text of the parent message."""
    return headline(d)


def parent_blocks(
    d: Deployment,
    *,
    now: datetime,
    alias: AliasState | None = None,
    last: PeriodVerdict | None = None,
    dashboard_url: str | None = None,
    alarm_rollback_off: str | None = None,
) -> list[dict[str, Any]]:
    lines = summary_lines(d, now=now, alias=alias, last=last)
    if alarm_rollback_off and d.is_live:
        lines.append(alarm_rollback_off_line(alarm_rollback_off))
    footer = [_started(d), "thread for reports ↓" if d.is_live or _watching(d, now) else ""]
    if dashboard_url:
        footer.append(f"<{dashboard_url}|dashboard>")
    return render([section("\n".join(lines)), context(" · ".join(part for part in footer if part))])


def summary_lines(
    d: Deployment, *, now: datetime, alias: AliasState | None = None, last: PeriodVerdict | None = None
) -> list[str]:
    """Bold headline, then progress / outcome, then the alias as read (flagged when it is not ours)."""
    lines = [f"*{headline(d)}*"]
    detail = _detail(d, now, last)
    if detail:
        lines.append(detail)
    if alias is not None:
        lines.append(_alias_line(d, alias))
    return lines


def _detail(d: Deployment, now: datetime, last: PeriodVerdict | None) -> str:
    match d.state:
        case State.CANARY:
            return " · ".join(p for p in (_progress(d, now), _last_check(d, last)) if p)
        case State.HELD:
            held = f"{HELD} held {relative(d.held_at, now)}" if d.held_at else f"{HELD} held"
            reason = f": {escape(d.reason)}" if d.reason else ""
            return " · ".join(p for p in (_progress(d, d.held_at or now), f"{held}{reason}") if p)
        case State.AWAITING_APPROVAL:
            deadline = f" · decide by {when(d.approval_deadline, now)}" if d.approval_deadline else ""
            return f"{PASS} soak passed · approval needed{deadline}"
        case State.ROLLING_BACK:
            return f"reverting: {escape(d.reason)}" if d.reason else "reverting"
        case State.PROMOTED | State.ROLLED_BACK | State.CANCELLED:
            verb = {
                State.PROMOTED: "Promoted",
                State.ROLLED_BACK: "Rolled back",
                State.CANCELLED: "Cancelled",
            }
            by = f" by {who(d.ended_by)}" if d.ended_by else ""
            at = f" · {when(d.ended_at, now)}" if d.ended_at else ""
            reason = f" — {escape(d.reason)}" if d.reason and d.state is not State.PROMOTED else ""
            return f"{verb[d.state]}{by}{at}{reason}{_watch(d, now)}"
        case _:
            return ""


def _watch(d: Deployment, now: datetime) -> str:
    """After a promotion: ' · 👀 watching 24 h, ends …' then ' · ✅ 24 h watch complete'."""
    if d.state is not State.PROMOTED or d.watch_until is None or d.ended_at is None:
        return ""
    length = span(d.watch_until - d.ended_at, coarse=True)
    if _watching(d, now):
        return f" · {WATCH_MARK} watching {length}, ends {when(d.watch_until, now)}"
    return f" · {PASS} {length} watch complete"


def _watching(d: Deployment, now: datetime) -> bool:
    return d.state is State.PROMOTED and d.watch_until is not None and now < d.watch_until


def _progress(d: Deployment, until: datetime) -> str:
    if d.step_started_at is None or d.soak_ends_at is None:
        return ""
    total = d.soak_ends_at - d.step_started_at
    return f"`{progress_bar(max(until - d.step_started_at, timedelta(0)), total)}`"


def _last_check(d: Deployment, last: PeriodVerdict | None) -> str:
    if last is not None:
        return f"last check {clock(last.end)} {OUTCOME_MARKS[last.outcome]} {last.reason}"
    return f"last check: {d.last_verdict}" if d.last_verdict else "first check after one full period"


def _alias_line(d: Deployment, alias: AliasState) -> str:
    if _routes_as_expected(d, alias):
        return f"alias: {alias.describe()}"
    return f"{WARN} alias reads {alias.describe()}, which is not what canary-bot set"


def _routes_as_expected(d: Deployment, alias: AliasState) -> bool:
    version, weights = canary.expected_routing(d)
    return (
        alias.version == version
        and alias.weights.keys() == weights.keys()
        and all(math.isclose(alias.weights[v], w, abs_tol=1e-6) for v, w in weights.items())
    )


def _started(d: Deployment) -> str:
    if d.state is State.PLANNED:
        return f"Planned by {who(d.created_by)} · {clock(d.created_at)}"
    return f"Started by {who(d.created_by)} · {clock(d.created_at)}"
