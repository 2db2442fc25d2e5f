"""Judging a canary: each period of the step, then what to do next.

Pure: figures, thresholds, policy and `now` in; verdicts and a decision out. The soak loop fetches the figures,
calls `judge_step` for the complete periods of the current step and `decide` on the result. `judge_step`
judges as the policy says: `sequential` (counts as binomial evidence, bot.evidence) or `threshold` (each
period against the table, `judge_period`). `plan_power` tells a plan what its soak can prove.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bot import evidence
from bot.config import FunctionPolicy
from bot.model import BreachCause, CauseKind, Deployment, PeriodFigures, State, Thresholds, VersionFigures
from bot.units import format_duration, format_percent

Comparison = Literal["max", "min"]
Unit = Literal["%", "ms", "x"]

# Fewer points than this in either series and Mann-Whitney says nothing useful.
MIN_SERIES_POINTS = 5
# Share of a soak's periods that must pass before a step counts as soaked.
SOAK_EVIDENCE_SHARE = (4, 5)


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no_data"


class MetricVerdict(BaseModel):
    """One metric of one period: canary beside stable, and the threshold it was held to."""

    model_config = ConfigDict(frozen=True)

    metric: str
    label: str
    outcome: Outcome
    canary: float | None
    stable: float | None
    threshold: float
    comparison: Comparison  # "max": fail above threshold; "min": fail below
    unit: Unit
    # judge: sequential. `bound` is the one-sided confidence bound of a count's rate over the step so far
    # (the side that decided: above the threshold when failing, the other side otherwise).
    bound: float | None = None
    confidence: float | None = None
    sequential: bool = False  # a count judged on the step's cumulative window: a FAIL acts at once
    note: str | None = None  # why NO_DATA: "not yet known", "412 invocations < 1,000 for p99"
    # The window a sequential FAIL was proven on: "over the step's 3,000 invocations".
    scope: str | None = None

    @property
    def value(self) -> float | None:
        """The figure held against the threshold (for relative metrics, derived from both versions)."""
        return _RELATIVE[self.metric](self.canary, self.stable) if self.metric in _RELATIVE else self.canary

    def describe(self) -> str:
        """'error rate 2.5% > 0.1%', 'cache hit rate 72% < 80%', or 'p95 no data'."""
        name = _PHRASES.get(self.metric, self.label)
        value = self.value
        if value is None or math.isnan(value):
            return f"{name} no data" + (f" ({self.note})" if self.note else "")
        shown, limit = _format_pair(value, self.threshold, self.unit)
        # The sign states the figures, not the outcome: a low-traffic NO_DATA period may read "4% > 0.1%".
        beyond = _against(value, self.threshold, self.comparison) is Outcome.FAIL
        signs = {"max": (">", "≤"), "min": ("<", "≥")}[self.comparison]
        sign = signs[0] if beyond else signs[1]
        text = f"{name} {shown} {sign} {limit}"
        if self.evidence:
            text += f" ({self.evidence})"
        if self.outcome is Outcome.FAIL and self.scope:
            text += f" {self.scope}"
        if self.outcome is Outcome.NO_DATA and self.note:
            text += f": {self.note}"
        return text

    @property
    def evidence(self) -> str:
        """'≤ 0.14% at 95%': what the count proves (empty when it was not judged as a count)."""
        if self.bound is None or self.confidence is None:
            return ""
        upper = (self.comparison == "max") != (self.outcome is Outcome.FAIL)
        shown = format_bound(self.bound, upward=upper)
        return f"{'≤' if upper else '≥'} {shown} at {format_confidence(self.confidence)}"


class PeriodVerdict(BaseModel):
    """One evaluation period [start, end) judged."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime
    outcome: Outcome
    metrics: list[MetricVerdict]
    canary_invocations: int
    reason: str

    @property
    def failing(self) -> list[MetricVerdict]:
        return [m for m in self.metrics if m.outcome is Outcome.FAIL]


# ---------------------------------------------------------------- one period
@dataclass(frozen=True, slots=True)
class _Check:
    metric: str
    label: str
    comparison: Comparison
    unit: Unit
    limit: Callable[[Thresholds], float | None]
    canary: Callable[[VersionFigures], float | None]


_ABSOLUTE_CHECKS: tuple[_Check, ...] = (
    _Check("error_rate", "errors", "max", "%", lambda t: t.error_rate, lambda v: v.error_rate),
    _Check("p95_ms", "p95", "max", "ms", lambda t: t.p95_ms, lambda v: v.p95_ms),
    _Check("p99_ms", "p99", "max", "ms", lambda t: t.p99_ms, lambda v: v.p99_ms),
    _Check("cache_hit_rate", "cache hit", "min", "%", lambda t: t.cache_hit_rate, lambda v: v.cache_hit_rate),
    _Check(
        "cache_miss_p95_ms",
        "cache-miss p95",
        "max",
        "ms",
        lambda t: t.cache_miss_p95_ms,
        lambda v: v.cache_miss_p95_ms,
    ),
)


def _increase(canary: float | None, stable: float | None) -> float | None:
    return canary - stable if canary is not None and stable is not None else None


def _ratio(canary: float | None, stable: float | None) -> float | None:
    return canary / stable if canary is not None and stable else None


# Relative metrics: how the judged value comes from canary and stable.
_RELATIVE: dict[str, Callable[[float | None, float | None], float | None]] = {
    "error_rate_increase": _increase,
    "p95_ratio": _ratio,
}

# How a metric reads inside a sentence (labels are the short column names of the soak report).
_PHRASES = {
    "error_rate": "error rate",
    "cache_hit_rate": "cache hit rate",
    "error_rate_increase": "error rate increase over stable",
    "p95_ratio": "p95 vs stable",
}


def judge_period(figures: PeriodFigures, thresholds: Thresholds, *, min_invocations: int) -> PeriodVerdict:
    """Judge one period. Too little canary traffic makes the whole period NO_DATA, never PASS or FAIL."""
    invocations = figures.canary.invocations
    enough_traffic = invocations >= min_invocations
    metrics = [
        verdict
        for verdict in (*_absolute(figures, thresholds), *_relative(figures, thresholds))
        if verdict is not None
    ]
    if not enough_traffic:
        # Keep the figures for the report, but a handful of calls proves nothing either way.
        metrics = [m.model_copy(update={"outcome": Outcome.NO_DATA}) for m in metrics]
    failing = [m for m in metrics if m.outcome is Outcome.FAIL]
    if failing:
        outcome, reason = Outcome.FAIL, failing[0].describe()
    elif not enough_traffic:
        outcome, reason = Outcome.NO_DATA, f"{_count(invocations)} invocations < {_count(min_invocations)}"
    elif all(m.outcome is Outcome.NO_DATA for m in metrics):
        outcome, reason = Outcome.NO_DATA, "no datapoints for any judged metric"
    else:
        outcome, reason = Outcome.PASS, "all within thresholds"
    return PeriodVerdict(
        start=figures.start,
        end=figures.end,
        outcome=outcome,
        metrics=metrics,
        canary_invocations=round(invocations),
        reason=reason,
    )


def _absolute(figures: PeriodFigures, thresholds: Thresholds) -> list[MetricVerdict | None]:
    out: list[MetricVerdict | None] = []
    for check in _ABSOLUTE_CHECKS:
        limit = check.limit(thresholds)
        if limit is None:
            out.append(None)
            continue
        canary = check.canary(figures.canary)
        out.append(
            MetricVerdict(
                metric=check.metric,
                label=check.label,
                outcome=_against(canary, limit, check.comparison),
                canary=canary,
                stable=check.canary(figures.stable),
                threshold=limit,
                comparison=check.comparison,
                unit=check.unit,
            )
        )
    return out


def _relative(figures: PeriodFigures, thresholds: Thresholds) -> list[MetricVerdict | None]:
    out: list[MetricVerdict | None] = []
    pairs: tuple[tuple[str, str, Unit, float | None, float | None, float | None], ...] = (
        (
            "error_rate_increase",
            "errors vs stable",
            "%",
            thresholds.max_error_rate_increase,
            figures.canary.error_rate,
            figures.stable.error_rate,
        ),
        (
            "p95_ratio",
            "p95 vs stable",
            "x",
            thresholds.max_p95_ratio,
            figures.canary.p95_ms,
            figures.stable.p95_ms,
        ),
    )
    for metric, label, unit, limit, canary, stable in pairs:
        if limit is None:
            out.append(None)
            continue
        out.append(
            MetricVerdict(
                metric=metric,
                label=label,
                outcome=_against(_RELATIVE[metric](canary, stable), limit, "max"),
                canary=canary,
                stable=stable,
                threshold=limit,
                comparison="max",
                unit=unit,
            )
        )
    return out


def _against(value: float | None, limit: float, comparison: Comparison) -> Outcome:
    if value is None or math.isnan(value):
        return Outcome.NO_DATA
    breached = value > limit if comparison == "max" else value < limit
    return Outcome.FAIL if breached else Outcome.PASS


# ---------------------------------------------------------------- the step, period by period
def judge_step(
    figures: Sequence[PeriodFigures],
    policy: FunctionPolicy,
    *,
    looks: int,
    known: Sequence[PeriodVerdict] = (),
) -> list[PeriodVerdict]:
    """Judge every complete period of a step (oldest first), as the policy's `judge` says.

    `threshold`: each period on its own against the table (`judge_period`). `sequential`: period k's counts
    (errors of invocations, cache misses of lookups) are judged on the step's periods up to and including k,
    as binomial evidence at `policy.confidence` with a sequential test whose boundary is calibrated for
    `looks` (the whole periods the soak spans); its percentiles on period k alone, when it holds enough
    invocations for that percentile. A period's verdict depends only on periods up to it (and on `looks`: an
    extended soak recalibrates every look, a little more strictly).

    `known`: the verdicts this same function gave for the first len(known) periods of `figures` (oldest first),
    under the same policy and `looks`; they are kept as they are and only the later periods are judged
    (bot.judge_cache decides when that holds).
    """
    ordered = sorted(figures, key=lambda f: f.start)
    kept = list(known[: len(ordered)])
    if policy.judge == "threshold":
        return kept + [
            judge_period(f, policy.thresholds, min_invocations=policy.min_invocations)
            for f in ordered[len(kept) :]
        ]
    if len(kept) == len(ordered):
        return kept
    tallies = {count.metric: _Tally.of(count, ordered) for count in _COUNTS}
    return kept + [
        _judge_sequential(ordered[: k + 1], tallies, policy, looks=looks, look=k + 1)
        for k in range(len(kept), len(ordered))
    ]


@dataclass(frozen=True, slots=True)
class _Count:
    metric: str
    label: str
    comparison: Comparison
    limit: Callable[[Thresholds], float | None]
    # (events, trials) of one period: the events are the bad outcomes (errors, cache misses).
    counts: Callable[[VersionFigures], tuple[float, float] | None]


def _cache_counts(v: VersionFigures) -> tuple[float, float] | None:
    if v.cache_hits is None or v.cache_misses is None:
        return None
    return float(v.cache_misses), float(v.cache_hits + v.cache_misses)


_COUNTS: tuple[_Count, ...] = (
    _Count("error_rate", "errors", "max", lambda t: t.error_rate, lambda v: (v.errors, v.invocations)),
    _Count("cache_hit_rate", "cache hit", "min", lambda t: t.cache_hit_rate, _cache_counts),
)


@dataclass(frozen=True, slots=True)
class _Tally:
    """Running sums of one count over a step's periods: the sums of periods [i, j) are
    canary[j] - canary[i] (events, trials), computed once per step rather than once per look."""

    canary: tuple[tuple[float, float], ...]
    stable: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, count: _Count, periods: Sequence[PeriodFigures]) -> _Tally:
        def running(pick: Callable[[PeriodFigures], VersionFigures]) -> tuple[tuple[float, float], ...]:
            sums = [(0.0, 0.0)]
            for f in periods:
                events, trials = count.counts(pick(f)) or (0.0, 0.0)
                sums.append((sums[-1][0] + events, sums[-1][1] + trials))
            return tuple(sums)

        return cls(canary=running(lambda f: f.canary), stable=running(lambda f: f.stable))

    def between(self, first: int, end: int, *, stable: bool = False) -> tuple[float, float]:
        sums = self.stable if stable else self.canary
        return sums[end][0] - sums[first][0], sums[end][1] - sums[first][1]


# Percentiles: which percentile, and the count its sample size is read from.
_PERCENTILES: dict[str, tuple[float, Callable[[VersionFigures], float]]] = {
    "p95_ms": (95.0, lambda v: v.invocations),
    "p99_ms": (99.0, lambda v: v.invocations),
    "cache_miss_p95_ms": (95.0, lambda v: float(v.cache_misses or 0)),
}


def _judge_sequential(
    window: Sequence[PeriodFigures],
    tallies: dict[str, _Tally],
    policy: FunctionPolicy,
    *,
    looks: int,
    look: int,
) -> PeriodVerdict:
    latest = window[-1]
    t, confidence = policy.thresholds, policy.confidence
    metrics: list[MetricVerdict] = []
    for count in _COUNTS:
        limit = count.limit(t)
        if limit is None:
            continue
        metrics.append(
            _count_verdict(
                count,
                limit,
                window,
                tallies[count.metric],
                confidence,
                looks=looks,
                look=look,
                recent=policy.evaluation_periods,
            )
        )
    for check in _ABSOLUTE_CHECKS:
        if check.metric not in _PERCENTILES or (limit := check.limit(t)) is None:
            continue
        percentile, samples = _PERCENTILES[check.metric]
        have, need = samples(latest.canary), evidence.percentile_min_samples(percentile)
        value = check.canary(latest.canary)
        outcome, note = _against(value, limit, check.comparison), None
        if have < need:
            outcome = Outcome.NO_DATA
            what = "cache misses" if check.metric.startswith("cache") else "invocations"
            note = f"{_count(have)} {what} < {_count(need)} needed for a p{percentile:g}"
        metrics.append(
            MetricVerdict(
                metric=check.metric,
                label=check.label,
                outcome=outcome,
                canary=value,
                stable=check.canary(latest.stable),
                threshold=limit,
                comparison=check.comparison,
                unit=check.unit,
                note=note,
            )
        )
    metrics += [m for m in _relative(latest, t) if m is not None]
    failing = [m for m in metrics if m.outcome is Outcome.FAIL]
    unknown = [m for m in metrics if m.outcome is Outcome.NO_DATA]
    if failing:
        outcome, reason = Outcome.FAIL, failing[0].describe()
    elif any(m.outcome is Outcome.PASS for m in metrics):
        outcome = Outcome.PASS
        reason = "all within thresholds"
        if unknown:
            reason = "within thresholds where known; " + "; ".join(m.describe() for m in unknown)
    else:
        outcome = Outcome.NO_DATA
        reason = "; ".join(m.describe() for m in unknown) or "no datapoints for any judged metric"
    return PeriodVerdict(
        start=latest.start,
        end=latest.end,
        outcome=outcome,
        metrics=metrics,
        canary_invocations=round(latest.canary.invocations),
        reason=reason,
    )


def _count_verdict(
    count: _Count,
    limit: float,
    window: Sequence[PeriodFigures],
    tally: _Tally,
    confidence: float,
    *,
    looks: int,
    look: int,
    recent: int,
) -> MetricVerdict:
    """One count over the step so far: FAIL on a sequential breach (over the step, or in the latest period
    or the latest `recent` periods), PASS when the bound proves it within the threshold, otherwise NO_DATA
    ("not yet known")."""
    events, trials = tally.between(0, look)
    stable_events, stable_trials = tally.between(0, look, stable=True)
    # The rate of bad events: the error rate, or for cache hits the miss rate (1 - hit rate).
    bad_limit = limit if count.comparison == "max" else 1 - limit

    def shown(e: float, n: float) -> float | None:
        if n <= 0:
            return None
        return e / n if count.comparison == "max" else 1 - e / n

    rate = shown(events, trials)
    base = {
        "metric": count.metric,
        "label": count.label,
        "canary": rate,
        "stable": shown(stable_events, stable_trials),
        "threshold": limit,
        "comparison": count.comparison,
        "unit": "%",
        "sequential": True,
        "confidence": confidence,
    }
    if trials <= 0:
        return MetricVerdict(outcome=Outcome.NO_DATA, note="nothing counted yet", **base)
    if not 0 < bad_limit < 1:
        # A threshold of 0% or 100% leaves nothing to estimate: the plain comparison decides.
        return MetricVerdict(outcome=_against(rate, limit, count.comparison), **base)
    upper = evidence.upper_bound(events, trials, confidence)
    lower = evidence.lower_bound(events, trials, confidence)
    test = evidence.breach_test(
        events, trials, threshold=bad_limit, confidence=confidence, looks=looks, look=look
    )
    if test.breached:
        outcome, bad_bound, note = Outcome.FAIL, lower, None
        base["scope"] = f"over the step's {_count(trials)} {_trial_word(count)}"
    elif (hit := _recent_breach(tally, look, bad_limit, confidence, looks, recent)) is not None:
        # A breach that began mid-soak: the recent window alone proves it (simultaneous bound).
        recent_events, recent_trials, level, periods = hit
        span_text = _span_of(window[-periods:])
        base["canary"] = shown(recent_events, recent_trials)
        base["scope"] = f"over the last {span_text}'s {_count(recent_trials)} {_trial_word(count)}"
        outcome, note = Outcome.FAIL, None
        bad_bound = evidence.lower_bound(recent_events, recent_trials, level)
    elif upper <= bad_limit:
        outcome, bad_bound, note = Outcome.PASS, upper, None
    else:
        outcome, bad_bound, note = Outcome.NO_DATA, upper, "not yet known"
    bound = bad_bound if count.comparison == "max" else 1 - bad_bound
    if note:
        note += f" after {_count(trials)} {_trial_word(count)}"
    return MetricVerdict(outcome=outcome, bound=bound, note=note, **base)


def _trial_word(count: _Count) -> str:
    return "invocations" if count.metric == "error_rate" else "lookups"


def _span_of(periods: Sequence[PeriodFigures]) -> str:
    return format_duration(periods[-1].end - periods[0].start)


def _recent_breach(
    tally: _Tally, look: int, bad_limit: float, confidence: float, looks: int, recent: int
) -> tuple[float, float, float, int] | None:
    """(events, trials, level, periods) of the first recent window that proves a breach, or None."""
    sizes = sorted({1, max(recent, 1)})
    level = evidence.recent_confidence(confidence, looks=looks, windows=len(sizes))
    for size in sizes:
        if size > look:
            continue
        events, trials = tally.between(look - size, look)
        if evidence.recent_breach(events, trials, threshold=bad_limit, level=level):
            return events, trials, level, size
    return None


# ---------------------------------------------------------------- what a plan can tell
# The plan suggests a weight or soak that would pass a canary erring at this share of the threshold.
SUGGESTED_PASS = 0.5


@dataclass(frozen=True, slots=True)
class PlanPower:
    """What a planned step can prove about the error rate (judge: sequential), from the stable's traffic."""

    threshold: float
    confidence: float
    canary_invocations: float  # expected over the soak
    detectable: float | None  # smallest error rate rolled back with `confidence` by the soak's end
    passable: float | None  # largest error rate passed with `confidence`; None: not even 0% would be
    pass_needs: float  # invocations a canary with no errors needs to be proven below the threshold
    suggested_weight: float | None  # to pass SUGGESTED_PASS × threshold (None: no need, or ≥ 100%)
    suggested_soak: timedelta | None

    @property
    def can_pass(self) -> bool:
        return self.passable is not None


def plan_power(
    policy: FunctionPolicy, *, weight: float, soak: timedelta, stable_per_minute: float
) -> PlanPower | None:
    """The power of one step at `weight` for `soak`, if the stable's traffic keeps its recent pace.

    None when nothing is to be estimated (judge: threshold, no error-rate threshold, no traffic figure).
    """
    threshold = policy.thresholds.error_rate
    if policy.judge != "sequential" or threshold is None or not 0 < threshold < 1 or stable_per_minute <= 0:
        return None
    confidence = policy.confidence
    looks = max(1, int(soak // policy.period)) if policy.period > timedelta(0) else 1
    alias_per_minute = stable_per_minute / (1 - weight)  # the stable serves (1 - weight) of the alias
    trials = alias_per_minute * weight * soak.total_seconds() / 60
    passable = evidence.passable_rate(trials, threshold=threshold, confidence=confidence)
    target = SUGGESTED_PASS * threshold
    suggested_weight = suggested_soak = None
    if passable is None or passable < target:
        needed = _trials_to_pass(target, threshold, confidence, start=max(trials, 1.0))
        factor = needed / max(trials, 1.0)
        if weight * factor < 1:
            suggested_weight = math.ceil(weight * factor * 100) / 100
        suggested_soak = timedelta(minutes=math.ceil(soak.total_seconds() / 60 * factor / 15) * 15)
    return PlanPower(
        threshold=threshold,
        confidence=confidence,
        canary_invocations=trials,
        detectable=evidence.detectable_rate(trials, threshold=threshold, confidence=confidence, looks=looks),
        passable=passable,
        pass_needs=evidence.invocations_to_prove_below(0.0, threshold, confidence) or math.inf,
        suggested_weight=suggested_weight,
        suggested_soak=suggested_soak,
    )


def _trials_to_pass(rate: float, threshold: float, confidence: float, *, start: float) -> float:
    """The fewest invocations that pass a canary erring at `rate` (< threshold) with `confidence`."""

    def enough(trials: float) -> bool:
        found = evidence.passable_rate(trials, threshold=threshold, confidence=confidence)
        return found is not None and found >= rate

    low, high = 1.0, start
    while not enough(high):
        low, high = high, high * 2
    while high - low > max(1.0, high * 1e-3):
        middle = (low + high) / 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return high


# ---------------------------------------------------------------- statistics
def compare_series(
    canary: Sequence[float],
    stable: Sequence[float],
    *,
    confidence: float,
    worse: Literal["higher", "lower"] = "higher",
) -> Outcome:
    """Is the canary's per-minute series worse than stable's? One-sided Mann-Whitney U, as Kayenta does.

    FAIL when p < 1 - confidence. `worse="lower"` for metrics where less is bad (cache hit rate).
    Missing points (NaN) are dropped; fewer than MIN_SERIES_POINTS on either side is NO_DATA.
    """
    from scipy.stats import mannwhitneyu  # heavy import, only paid when the statistical check is on

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    canary_points = [x for x in canary if not math.isnan(x)]
    stable_points = [x for x in stable if not math.isnan(x)]
    if min(len(canary_points), len(stable_points)) < MIN_SERIES_POINTS:
        return Outcome.NO_DATA
    alternative = "greater" if worse == "higher" else "less"
    p_value = float(mannwhitneyu(canary_points, stable_points, alternative=alternative).pvalue)
    # NaN p (degenerate input) is no evidence that the canary is worse.
    return Outcome.FAIL if p_value < 1 - confidence else Outcome.PASS


# ---------------------------------------------------------------- decisions
class DecisionKind(StrEnum):
    CONTINUE = "continue"
    ROLLBACK = "rollback"
    ALERT = "alert"
    NEXT_STEP = "next_step"
    AWAIT_APPROVAL = "await_approval"
    PROMOTE = "promote"
    INCONCLUSIVE = "inconclusive"
    APPROVAL_TIMEOUT = "approval_timeout"


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: DecisionKind
    reason: str
    action: str | None = None  # APPROVAL_TIMEOUT only: "rollback" or "hold"
    breach_streak: int = 0
    failing: list[MetricVerdict] = Field(
        default_factory=list
    )  # failing metrics of the last period, for messages
    cause: BreachCause | None = None  # ROLLBACK and ALERT: the metric that decided it, as data


_JUDGED_STATES = frozenset({State.CANARY, State.AWAITING_APPROVAL, State.HELD})


def decide(
    d: Deployment, verdicts: Sequence[PeriodVerdict], policy: FunctionPolicy, *, now: datetime
) -> Decision:
    """What to do now, given the judged complete periods of the current step (oldest first).

    Periods that began before the step did, or have not ended by `now`, are ignored.
    """
    periods = sorted(
        (v for v in verdicts if (d.step_started_at is None or v.start >= d.step_started_at) and v.end <= now),
        key=lambda v: v.start,
    )
    streak = _trailing_failures(periods)
    failing = periods[-1].failing if periods else []

    def make(kind: DecisionKind, reason: str, action: str | None = None) -> Decision:
        return Decision(kind=kind, reason=reason, action=action, breach_streak=streak, failing=failing)

    if d.state not in _JUDGED_STATES:
        return make(DecisionKind.CONTINUE, f"nothing to judge: deployment is {d.state.value}")

    confident = [m for m in failing if m.sequential]
    if confident:
        # A count past its sequential boundary is already proof over the whole step: act now.
        kind = (
            DecisionKind.ALERT
            if d.state is State.HELD or policy.on_breach == "alert"
            else DecisionKind.ROLLBACK
        )
        decided = make(kind, confident[0].describe())
        return decided.model_copy(update={"cause": breach_cause(confident[0], periods=None)})

    if streak >= policy.evaluation_periods:
        reason = f"{periods[-1].reason} for {streak} periods"
        kind = (
            DecisionKind.ALERT
            if d.state is State.HELD or policy.on_breach == "alert"
            else DecisionKind.ROLLBACK
        )
        cause = breach_cause(failing[0], periods=streak) if failing else None
        return make(kind, reason).model_copy(update={"cause": cause})

    if d.state is State.AWAITING_APPROVAL and d.approval_deadline is not None and now >= d.approval_deadline:
        action = policy.on_approval_timeout
        reason = f"no approval by {d.approval_deadline:%H:%M} UTC; policy: {action}"
        return make(DecisionKind.APPROVAL_TIMEOUT, reason, action)

    if d.state is State.CANARY and d.soak_ends_at is not None and now >= d.soak_ends_at:
        return make(*_end_of_soak(d, periods, policy))

    return make(DecisionKind.CONTINUE, _progress(d, periods, now))


def cause_kind(metric: str) -> CauseKind:
    """What a judged metric tells about the canary: error_rate*, cache_* (hit rate, miss latency), or else
    latency (p95, p99, p95 vs stable, the Mann-Whitney p95 series)."""
    if metric.startswith("error_rate"):
        return "error_rate"
    if metric.startswith("cache"):
        return "cache"
    return "latency"


def breach_cause(m: MetricVerdict, *, periods: int | None) -> BreachCause:
    """The failing metric as a typed cause: its figure and threshold (as the reports write them) and how
    many periods in a row it failed (None: a count proven at once over the whole step)."""
    value = m.value
    shown, limit = (
        _format_pair(value, m.threshold, m.unit)
        if value is not None and not math.isnan(value)
        else (None, None)
    )
    return BreachCause(
        kind=cause_kind(m.metric),
        metric=m.metric,
        value=value,
        threshold=m.threshold,
        shown=shown,
        limit=_format(m.threshold, m.unit) if limit is None else limit,
        periods=periods,
    )


def required_passes(d: Deployment, policy: FunctionPolicy) -> int:
    """PASS periods a step needs: the breach window, or 80% of the whole periods its soak spans, if more.

    Periods are clock-aligned, so a step that starts between boundaries holds one whole period fewer than
    soak // period: count the whole aligned periods inside [step start, step start + soak).
    """
    whole = _whole_periods(d, policy.period)
    share, of = SOAK_EVIDENCE_SHARE
    return max(policy.evaluation_periods, -(-whole * share // of))  # integer ceiling: no float drift


def soak_periods(d: Deployment, period: timedelta) -> int:
    """Whole periods the current step's soak spans, as it stands (an extended soak spans more); at least 1."""
    if d.step_started_at is not None and d.soak_ends_at is not None and period > timedelta(0):
        return max(1, int((d.soak_ends_at - d.step_started_at) // period))
    return max(1, _whole_periods(d, period))


def _whole_periods(d: Deployment, period: timedelta) -> int:
    if period <= timedelta(0):
        return 0
    if d.step_started_at is None:
        return int(d.soak // period)
    epoch = datetime(1970, 1, 1, tzinfo=d.step_started_at.tzinfo)
    first = epoch + -(-(d.step_started_at - epoch) // period) * period  # first boundary at or after the start
    return max(0, int((d.step_started_at + d.soak - first) // period))


def _end_of_soak(
    d: Deployment, periods: Sequence[PeriodVerdict], policy: FunctionPolicy
) -> tuple[DecisionKind, str]:
    """Soaked when enough periods passed, no breach (evaluation_periods failing in a row) happened and the
    soak did not end on a failing period; never promote on too little evidence.

    An isolated failing period is tolerated, as the threshold table's "over 2 × 5 minutes" says: at 5% of
    traffic one error in 500 requests is 0.2%, and a single period is noise, not a breach. It stays visible
    in every report and in the reason.
    """
    passed = sum(v.outcome is Outcome.PASS for v in periods)
    failed = sum(v.outcome is Outcome.FAIL for v in periods)
    needed = required_passes(d, policy)
    breached = _longest_failure_run(periods) >= policy.evaluation_periods
    ends_failing = bool(periods) and periods[-1].outcome is Outcome.FAIL
    unproven = _unproven_counts(periods) if policy.judge == "sequential" else []
    if breached or ends_failing or passed < needed or unproven:
        why = (
            "a breach"
            if breached
            else "the last period failed"
            if ends_failing
            else "too little evidence"
            if passed < needed
            else "not yet known"
        )
        reason = (
            f"soak inconclusive ({why}): {passed} of {len(periods)} periods passed ({needed} needed), "
            f"{len(periods) - passed - failed} without enough data, {failed} failed"
        )
        if unproven:
            reason += "; " + "; ".join(_could_prove(m, d, periods, policy) for m in unproven)
        return DecisionKind.INCONCLUSIVE, reason
    isolated = f" ({failed} isolated failing period{'s' if failed > 1 else ''})" if failed else ""
    reason = (
        f"soak passed: {passed}/{len(periods)} periods within thresholds{isolated} "
        f"at {format_percent(d.weight)} for {format_duration(d.soak)}"
    )
    proven = [m for m in periods[-1].metrics if m.sequential and m.bound is not None] if periods else []
    if proven:
        shown = ", ".join(
            f"{_PHRASES.get(m.metric, m.label)} {'<' if m.comparison == 'max' else '>'} "
            f"{format_bound(m.bound, upward=m.comparison == 'max')}"
            for m in proven
            if m.bound is not None
        )
        reason += f"; {shown} with {format_confidence(policy.confidence)} confidence"
    if not d.is_last_step:
        return DecisionKind.NEXT_STEP, reason
    if policy.auto_promote:
        return DecisionKind.PROMOTE, reason
    return DecisionKind.AWAIT_APPROVAL, reason


def _unproven_counts(periods: Sequence[PeriodVerdict]) -> list[MetricVerdict]:
    """Counts (judge: sequential) the step's evidence has not yet proven within their thresholds."""
    if not periods:
        return []
    return [m for m in periods[-1].metrics if m.sequential and m.outcome is not Outcome.PASS]


def _step_trials(periods: Sequence[PeriodVerdict]) -> int:
    return sum(v.canary_invocations for v in periods)


def _could_prove(
    m: MetricVerdict, d: Deployment, periods: Sequence[PeriodVerdict], policy: FunctionPolicy
) -> str:
    """'error rate < 0.15% with 95% confidence; 0.1% needs about 40 more minutes at 5%'."""
    name = _PHRASES.get(m.metric, m.label)
    level = format_confidence(policy.confidence)
    if m.bound is None or m.canary is None:
        return f"{name}: nothing counted"
    sign = "<" if m.comparison == "max" else ">"
    proved = f"{name} {sign} {format_bound(m.bound, upward=m.comparison == 'max')} with {level} confidence"
    # How long the same traffic and the same rate would take to prove the threshold.
    bad_rate = m.canary if m.comparison == "max" else 1 - m.canary
    bad_limit = m.threshold if m.comparison == "max" else 1 - m.threshold
    trials = _step_trials(periods) if m.metric == "error_rate" else None
    needed = evidence.invocations_to_prove_below(bad_rate, bad_limit, policy.confidence)
    limit = _format(m.threshold, m.unit)
    if needed is None:
        return f"{proved}; at the rate seen so far it will not show {sign} {limit}"
    span_judged = periods[-1].end - periods[0].start
    if trials is None or trials <= 0 or span_judged <= timedelta(0):
        return proved
    more = max(needed - trials, 0.0) / trials * span_judged
    minutes = max(5, math.ceil(more.total_seconds() / 60 / 5) * 5)
    return f"{proved}; {limit} needs about {minutes} more minutes at {format_percent(d.weight)}"


def _longest_failure_run(periods: Sequence[PeriodVerdict]) -> int:
    longest = run = 0
    for verdict in periods:
        run = run + 1 if verdict.outcome is Outcome.FAIL else 0
        longest = max(longest, run)
    return longest


def _trailing_failures(periods: Sequence[PeriodVerdict]) -> int:
    streak = 0
    for verdict in reversed(periods):
        if verdict.outcome is not Outcome.FAIL:
            break
        streak += 1
    return streak


def _progress(d: Deployment, periods: Sequence[PeriodVerdict], now: datetime) -> str:
    passed = sum(v.outcome is Outcome.PASS for v in periods)
    if d.state is State.HELD:
        return f"held; {passed}/{len(periods)} periods passed this step"
    if d.state is State.AWAITING_APPROVAL:
        return "waiting for approval"
    if d.step_started_at is None or d.soak_ends_at is None:
        return "soaking"
    elapsed = format_duration(max(now - d.step_started_at, timedelta(0)))
    total = format_duration(d.soak_ends_at - d.step_started_at)
    return f"soaking {elapsed} of {total}; {passed}/{len(periods)} periods passed"


# ---------------------------------------------------------------- formatting
def _format_pair(value: float, threshold: float, unit: Unit) -> tuple[str, str]:
    """Value and threshold as people read them; more digits when the short forms would look equal."""
    shown, limit = _format(value, unit), _format(threshold, unit)
    if shown == limit and value != threshold:
        shown = _format(value, unit, precise=True)
    return shown, limit


def format_bound(rate: float, *, upward: bool) -> str:
    """A rate's confidence bound as a percentage of two significant digits, rounded away from the estimate
    (an upper bound up, a lower one down) so that the text stays true: 0.000749 -> '0.075%'."""
    pct = rate * 100
    if pct <= 0:
        return "0%"
    exponent = math.floor(math.log10(pct))
    step = 10.0 ** (exponent - 1)
    rounded = (math.ceil if upward else math.floor)(round(pct / step, 9)) * step
    text = f"{rounded:.{max(0, 1 - exponent)}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"


def format_confidence(confidence: float) -> str:
    """0.95 -> '95%', 0.975 -> '97.5%'."""
    return f"{confidence * 100:.4g}%"


def _format(value: float, unit: Unit, *, precise: bool = False) -> str:
    if unit == "%":
        return f"{value * 100:.6g}%" if precise else format_percent(value)
    text = f"{value:.6g}" if precise else f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{text} ms" if unit == "ms" else f"{text}x"


def _count(n: float) -> str:
    return f"{round(n):,}"


# ---------------------------------------------------------------- Kayenta's series comparison (statistical: on)
@dataclass(frozen=True, slots=True)
class _SeriesCheck:
    metric: str
    label: str
    unit: Literal["%", "ms"]
    figure: Callable[[VersionFigures], float | None]


_SERIES_CHECKS = (
    _SeriesCheck("p95_ms_mann_whitney", "p95 vs stable (Mann-Whitney)", "ms", lambda v: v.p95_ms),
    _SeriesCheck(
        "error_rate_mann_whitney", "error rate vs stable (Mann-Whitney)", "%", lambda v: v.error_rate
    ),
)


def with_series_checks(
    figures: Sequence[PeriodFigures], verdicts: Sequence[PeriodVerdict], policy: FunctionPolicy
) -> list[PeriodVerdict]:
    """Add Kayenta's comparison to each period: is the canary's series so far worse than stable's?

    Period k is judged on the step's periods up to and including k, so every period's verdict is fixed once
    it is complete, and `evaluation_periods` consecutive failing comparisons are needed to act, as for the
    thresholds. Each point is one period: with `period: 1m` this is Kayenta's per-minute Mann-Whitney U
    (p95 and error rate, one-sided, at `statistical.confidence`). Periods with too little canary traffic
    neither feed the series nor get the check.
    """
    confidence = policy.statistical.confidence
    out: list[PeriodVerdict] = []
    for k, verdict in enumerate(verdicts):
        if figures[k].canary.invocations < policy.min_invocations:
            out.append(verdict)
            continue
        series = [f for f in figures[: k + 1] if f.canary.invocations >= policy.min_invocations]
        checks = [m for check in _SERIES_CHECKS if (m := _compare(check, series, confidence)) is not None]
        failing = [m for m in checks if m.outcome is Outcome.FAIL]
        update: dict[str, object] = {"metrics": [*verdict.metrics, *checks]}
        if failing and verdict.outcome is not Outcome.FAIL:
            worst = failing[0]
            update["outcome"] = Outcome.FAIL
            update["reason"] = (
                f"{worst.describe()} (medians; one-sided U test at {confidence:.0%} confidence)"
            )
        out.append(verdict.model_copy(update=update))
    return out


def _compare(check: _SeriesCheck, series: Sequence[PeriodFigures], confidence: float) -> MetricVerdict | None:
    canary = [_or_nan(check.figure(f.canary)) for f in series]
    stable = [_or_nan(check.figure(f.stable)) for f in series]
    outcome = compare_series(canary, stable, confidence=confidence, worse="higher")
    if outcome is Outcome.NO_DATA:
        return None
    canary_median, stable_median = _median(canary), _median(stable)
    # The "threshold" shown is stable's median: the line the canary's series was compared against.
    return MetricVerdict(
        metric=check.metric,
        label=check.label,
        outcome=outcome,
        canary=canary_median,
        stable=stable_median,
        threshold=stable_median if stable_median is not None else math.nan,
        comparison="max",
        unit=check.unit,
    )


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _median(values: Sequence[float]) -> float | None:
    present = [v for v in values if not math.isnan(v)]
    return statistics.median(present) if present else None
