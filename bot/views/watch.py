"""Thread messages of the watch after a promotion: check-ins, a breach alert, and the post-mortem."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.comms import SoakTotals, failing_runs, migration_text, migration_verified, post_mortem, soak_totals
from bot.config import FunctionPolicy
from bot.events import PostMortem, WatchAlert, WatchCheckIn
from bot.judge import Outcome, judge_period
from bot.model import Deployment, PeriodFigures
from bot.views.kit import actions, code, context, render, section
from bot.views.parent import OUTCOME_MARKS, WATCH_MARK
from bot.views.runbook import revert_button
from bot.views.text import BREACH, PASS, WARN, clip, count, mention, millis, percent, span, when

POST_MORTEM_MARK = "📝"
REASON_MAX = 500

Format = Callable[[float | None], str]


def watch_check_in_blocks(
    event: WatchCheckIn, *, policy: FunctionPolicy, now: datetime
) -> list[dict[str, Any]]:
    d = event.deployment
    title = (
        f"*{WATCH_MARK} Watch check-in {event.number}/{event.total} · v{d.canary_version} at 100% of {d.alias} "
        f"for {_watched(d, event.at)}*"
    )
    lines = [title, _periods_line(event.figures, policy)]
    blocks = [section("\n".join(line for line in lines if line))]
    totals = soak_totals(event.figures, min_invocations=policy.min_invocations)
    if event.figures:
        blocks.append(code(_table(d, totals, policy)))
    else:
        blocks.append(section(f"{WARN} no complete period stored yet: nothing to judge"))
    ends = f"post-mortem {when(d.watch_until, now)}" if d.watch_until else ""
    return render([*blocks, context(_footnote(totals, policy), ends)])


def watch_alert_blocks(event: WatchAlert, *, policy: FunctionPolicy, now: datetime) -> list[dict[str, Any]]:
    """Approvers mentioned, and one danger Revert button (confirmed, approvers only when clicked): the watch
    itself never changes traffic, going back is a person's call."""
    d = event.deployment
    c, s = f"v{d.canary_version}", f"v{d.stable_version}"
    asked = mention(event.approvers or policy.approvers) or "Approvers (none listed in the policy)"
    since = f" since {when(d.ended_at, now)}" if d.ended_at else ""
    serving = f"{c} serves 100% of {d.key}{since}"
    verified = event.alias is None or migration_verified(d, event.alias)
    if event.alias is not None and not verified:
        serving = f"{d.key} now routes {event.alias.describe()}"
    lines = [
        f"*{BREACH} {c} breaches its thresholds during the watch after promotion — nothing was changed*",
        clip(event.reason[:1].upper() + event.reason[1:], REASON_MAX),
        f"{serving}. {asked}: go back to {s}?",
        f"*Revert* sends 100% to {s} at once (or `/canary revert {d.function} --reason TEXT`); to go back "
        f"gradually, start {s} as a canary: `/canary start {d.function} {d.stable_version}`",
    ]
    press = revert_button(d, reason=f"watch breach: {event.reason}") if verified else None
    return render(
        [
            section("\n".join(lines)),
            actions([press]) if press is not None else None,
            context(when(event.at, now), f"watch ends {when(d.watch_until, now)}" if d.watch_until else ""),
        ]
    )


def post_mortem_blocks(event: PostMortem, *, policy: FunctionPolicy, now: datetime) -> list[dict[str, Any]]:
    d = event.deployment
    verified = migration_verified(d, event.alias)
    mark = PASS if verified else WARN
    totals = soak_totals(event.watch_figures, min_invocations=policy.min_invocations).canary
    runs = failing_runs(event.watch_figures, policy.thresholds, min_invocations=policy.min_invocations)
    breaches = sum(run.periods >= policy.evaluation_periods for run in runs)
    figures = " · ".join(
        (
            f"errors {percent(totals.error_rate)}",
            f"cache hit {percent(totals.cache_hit_rate)}",
            f"p95 {millis(totals.p95_ms)} (worst period)",
            f"{len(event.watch_figures)} periods",
            f"{BREACH} {breaches} breach{'es' if breaches > 1 else ''}" if breaches else f"{PASS} no breach",
        )
    )
    document = post_mortem(
        d,
        soak_figures=event.soak_figures,
        watch_figures=event.watch_figures,
        alias=event.alias,
        alias_error=event.alias_error,
        now=now,
        thresholds=policy.thresholds,
        min_invocations=policy.min_invocations,
        evaluation_periods=policy.evaluation_periods,
        service_name=policy.service_name,
    )
    lines = [
        f"*{POST_MORTEM_MARK} Post-mortem · v{d.canary_version} after {_watched(d, event.at)} at 100% of {d.key}*",
        f"{mark} {migration_text(d, event.alias, event.alias_error)}",
        figures,
    ]
    return render(
        [
            section("\n".join(lines)),
            code(document, title="Post-mortem (copy into the review doc)"),
            context(
                when(event.at, now), "the watch is over: canary-bot says nothing more about this deployment"
            ),
        ]
    )


# ---------------------------------------------------------------- pieces
def _watched(d: Deployment, at: datetime) -> str:
    return span(max(at - d.ended_at, timedelta(0)), coarse=True) if d.ended_at else "a while"


def _periods_line(figures: Sequence[PeriodFigures], policy: FunctionPolicy) -> str:
    if not figures:
        return ""
    t, least = policy.thresholds, policy.min_invocations
    outcomes = [judge_period(f, t, min_invocations=least).outcome for f in figures]
    tally = " · ".join(
        f"{OUTCOME_MARKS[o]} {outcomes.count(o)}" for o in (Outcome.PASS, Outcome.FAIL, Outcome.NO_DATA)
    )
    line = f"{len(figures)} periods judged: {tally}"
    breaches = [
        run
        for run in failing_runs(figures, t, min_invocations=least)
        if run.periods >= policy.evaluation_periods
    ]
    if breaches:
        s = "es" if len(breaches) > 1 else ""
        line += f"\n{BREACH} {len(breaches)} breach{s} during the watch, the latest: {breaches[-1].reason}"
    return line


def _table(d: Deployment, totals: SoakTotals, policy: FunctionPolicy) -> str:
    t, v = policy.thresholds, totals.canary
    judgeable = totals.judged_periods > 0
    rows: list[tuple[str, str, str, str]] = [("", f"v{d.canary_version}", "threshold", "")]

    def add(label: str, value: float | None, limit: float | None, upper: bool, fmt: Format) -> None:
        if limit is not None:
            rule = f"{'≤' if upper else '≥'} {fmt(limit)}"
            rows.append((label, fmt(value), rule, _mark(value, limit, upper, judgeable)))

    add("errors", v.error_rate, t.error_rate, True, percent)
    add("p95", v.p95_ms, t.p95_ms, True, millis)
    add("p99", v.p99_ms, t.p99_ms, True, millis)
    add("cache hit", v.cache_hit_rate, t.cache_hit_rate, False, percent)
    add("cache-miss p95", v.cache_miss_p95_ms, t.cache_miss_p95_ms, True, millis)
    rows.append(("invocations", count(v.invocations), "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for *cells, mark in rows:
        line = "   ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        lines.append(f"{line}   {mark}".rstrip())
    return "\n".join(lines)


def _mark(value: float | None, limit: float, upper: bool, judgeable: bool) -> str:
    if value is None or math.isnan(value) or not judgeable:
        return WARN
    return BREACH if (value > limit if upper else value < limit) else PASS


def _footnote(totals: SoakTotals, policy: FunctionPolicy) -> str:
    if totals.start is None:
        return ""
    return (
        f"{totals.periods} × {span(policy.period, coarse=True)}: errors and cache hit are totals; p95, p99 and "
        f"cache-miss p95 are the worst period with ≥ {policy.min_invocations:,} invocations"
    )
