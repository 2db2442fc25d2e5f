"""The soak report posted in the thread: canary beside stable beside the threshold, over the step so far."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import Block

from bot.comms import SoakTotals, soak_totals
from bot.config import FunctionPolicy
from bot.evidence import percentile_min_samples
from bot.judge import MetricVerdict, Outcome, PeriodVerdict, format_confidence
from bot.model import Deployment, PeriodFigures, State
from bot.views.kit import code, context, render, section
from bot.views.parent import OUTCOME_MARKS
from bot.views.text import BREACH, PASS, WARN, clock, count, millis, percent, ratio, span


@dataclass(frozen=True, slots=True)
class _Row:
    label: str
    canary: str
    stable: str
    threshold: str
    mark: str


def soak_report_blocks(
    d: Deployment,
    *,
    number: int,
    total: int,
    figures: list[PeriodFigures],
    verdicts: list[PeriodVerdict],
    policy: FunctionPolicy,
    now: datetime,
) -> list[dict[str, Any]]:
    started = d.step_started_at or d.created_at
    title = f"*Soak report {number}/{total} · {span(max(now - started, timedelta(0)), coarse=True)} in*"
    if len(d.steps) > 1:
        title += f" · step {d.step_index + 1}/{len(d.steps)} at {percent(d.weight)}"
    totals = soak_totals(figures, min_invocations=policy.min_invocations)
    lines = [title, _periods_line(verdicts, policy)]
    blocks: list[Block] = [section("\n".join(line for line in lines if line))]
    if figures:
        blocks.append(code(_table(d, totals, policy, _counts_judged(verdicts))))
    else:
        blocks.append(section(f"{WARN} no complete period yet: nothing to compare"))
    blocks.append(context(_footnote(d, totals, policy, now)))
    return render(blocks)


def _periods_line(verdicts: Sequence[PeriodVerdict], policy: FunctionPolicy) -> str:
    if not verdicts:
        return ""
    ordered = sorted(verdicts, key=lambda v: v.start)
    tally = {outcome: sum(v.outcome is outcome for v in ordered) for outcome in Outcome}
    counts = " · ".join(
        f"{OUTCOME_MARKS[o]} {tally[o]}" for o in (Outcome.PASS, Outcome.FAIL, Outcome.NO_DATA)
    )
    last = ordered[-1]
    line = (
        f"{len(ordered)} periods judged: {counts} · last {last.start:%H:%M}–{clock(last.end)} "
        f"{OUTCOME_MARKS[last.outcome]} {last.reason}"
    )
    streak = 0
    for verdict in reversed(ordered):
        if verdict.outcome is not Outcome.FAIL:
            break
        streak += 1
    if streak:
        then = "rollback" if policy.on_breach == "rollback" else "alert"
        line += f"\n{BREACH} {streak} of {policy.evaluation_periods} breaching periods in a row before {then}"
    return line


def _counts_judged(verdicts: Sequence[PeriodVerdict]) -> dict[str, MetricVerdict]:
    """The latest period's counts judged over the step (judge: sequential): metric -> verdict."""
    if not verdicts:
        return {}
    latest = max(verdicts, key=lambda v: v.start)
    return {m.metric: m for m in latest.metrics if m.sequential}


def _table(
    d: Deployment, totals: SoakTotals, policy: FunctionPolicy, counts: dict[str, MetricVerdict]
) -> str:
    rows = _rows(totals, policy, counts)
    head = _Row("", f"canary v{d.canary_version}", f"stable v{d.stable_version}", "threshold", "")
    widths = [
        max(len(r.label) for r in (head, *rows)),
        max(len(r.canary) for r in (head, *rows)),
        max(len(r.stable) for r in (head, *rows)),
        max(len(r.threshold) for r in (head, *rows)),
    ]
    out = []
    for r in (head, *rows):
        cells = (r.label, r.canary, r.stable, r.threshold)
        line = "   ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        out.append(f"{line}   {r.mark}".rstrip())
    return "\n".join(out)


def _rows(totals: SoakTotals, policy: FunctionPolicy, counts: dict[str, MetricVerdict]) -> list[_Row]:
    t, canary, stable = policy.thresholds, totals.canary, totals.stable
    # With no period at the traffic bar, a figure is shown but proves nothing either way.
    judgeable = totals.judged_periods > 0
    rows: list[_Row] = []

    def add(
        label: str,
        mine: float | None,
        theirs: float | None,
        limit: float | None,
        upper: bool,
        fmt: Callable[[float | None], str],
        shown: str | None = None,
        judged: MetricVerdict | None = None,
    ) -> None:
        if limit is None:
            return
        mark = _mark(mine, limit, upper=upper, judgeable=judgeable)
        figure = fmt(mine)
        if judged is not None:
            # The count judged as evidence: its bound, and the verdict of the sequential judge.
            figure += f" ({judged.evidence})" if judged.evidence else ""
            mark = {Outcome.PASS: PASS, Outcome.FAIL: BREACH, Outcome.NO_DATA: WARN}[judged.outcome]
        rows.append(_Row(label, figure, fmt(theirs), f"{'≤' if upper else '≥'} {shown or fmt(limit)}", mark))

    add(
        "errors",
        canary.error_rate,
        stable.error_rate,
        t.error_rate,
        True,
        percent,
        judged=counts.get("error_rate"),
    )
    add("p95", canary.p95_ms, stable.p95_ms, t.p95_ms, True, millis)
    add("p99", canary.p99_ms, stable.p99_ms, t.p99_ms, True, millis)
    add(
        "cache hit",
        canary.cache_hit_rate,
        stable.cache_hit_rate,
        t.cache_hit_rate,
        False,
        percent,
        judged=counts.get("cache_hit_rate"),
    )
    add(
        "cache-miss p95",
        canary.cache_miss_p95_ms,
        stable.cache_miss_p95_ms,
        t.cache_miss_p95_ms,
        True,
        millis,
    )
    if t.max_error_rate_increase is not None:
        increase = _difference(canary.error_rate, stable.error_rate)
        rows.append(
            _Row(
                "errors vs stable",
                _signed_percent(increase),
                "",
                f"≤ {_signed_percent(t.max_error_rate_increase)}",
                _mark(increase, t.max_error_rate_increase, upper=True, judgeable=judgeable),
            )
        )
    if t.max_p95_ratio is not None:
        relative = canary.p95_ms / stable.p95_ms if canary.p95_ms is not None and stable.p95_ms else None
        rows.append(
            _Row(
                "p95 vs stable",
                ratio(relative),
                "",
                f"≤ {ratio(t.max_p95_ratio)}",
                _mark(relative, t.max_p95_ratio, upper=True, judgeable=judgeable),
            )
        )
    least = policy.min_invocations
    needed = f"≥ {least:,}/{span(policy.period, coarse=True)}"
    if policy.judge == "sequential":
        # Counts need no minimum; a percentile needs enough invocations beyond it.
        least = percentile_min_samples(99)
        needed = f"p95 ≥ {percentile_min_samples(95):,}, p99 ≥ {least:,}/{span(policy.period, coarse=True)}"
    enough = canary.fewest_invocations is not None and canary.fewest_invocations >= least
    rows.append(
        _Row(
            "invocations",
            count(canary.invocations),
            count(stable.invocations),
            needed,
            PASS if enough else WARN,
        )
    )
    return rows


def _mark(value: float | None, limit: float, *, upper: bool, judgeable: bool) -> str:
    if value is None or math.isnan(value) or not judgeable:
        return WARN
    breached = value > limit if upper else value < limit
    return BREACH if breached else PASS


def _difference(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def _signed_percent(value: float | None) -> str:
    if value is None:
        return "—"
    return ("+" if value >= 0 else "−") + percent(abs(value))


def _footnote(d: Deployment, totals: SoakTotals, policy: FunctionPolicy, now: datetime) -> str:
    parts = []
    if totals.start is not None and policy.judge == "sequential":
        parts.append(
            f"{totals.periods} × {span(policy.period, coarse=True)} since {clock(totals.start)}: "
            f"errors and cache hit are totals, with their one-sided {format_confidence(policy.confidence)} "
            "bound (✅ proven within, 🔴 proven beyond, ⚠️ not yet known); p95, p99 and cache-miss p95 are the "
            f"worst period with ≥ {policy.min_invocations:,} canary invocations"
        )
    elif totals.start is not None:
        parts.append(
            f"{totals.periods} × {span(policy.period, coarse=True)} since {clock(totals.start)}: "
            "errors and cache hit are totals; p95, p99 and cache-miss p95 are the worst period "
            f"with ≥ {policy.min_invocations:,} canary invocations"
        )
    parts.append(_time_left(d, now))
    return " · ".join(p for p in parts if p)


def _time_left(d: Deployment, now: datetime) -> str:
    if d.state is State.HELD:
        return "held: the soak clock is paused"
    if d.state is not State.CANARY or d.soak_ends_at is None:
        return ""
    left = d.soak_ends_at - now
    if left <= timedelta(0):
        return "soak time is up: the decision follows"
    return f"{span(left, coarse=True)} left · soak ends {clock(d.soak_ends_at)}"
