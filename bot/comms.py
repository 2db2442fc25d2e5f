"""The texts people copy out of Slack: the seed runbook's rollback messages, post-deployment summary and
post-mortem.

Pure: every figure comes from the arguments. `soak_totals` also feeds the soak report, so the numbers in the
thread and in the summary are computed one way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bot.canary import BOT_ACTOR
from bot.judge import Outcome, breach_cause, judge_period
from bot.model import (
    AliasState,
    AuditRecord,
    BreachCause,
    Deployment,
    PeriodFigures,
    State,
    Thresholds,
    VersionFigures,
)
from bot.units import format_percent

# How many failing periods the summary lists before it says "and N more".
MAX_LISTED_ISSUES = 8
# The seed's "24 hour monitoring" after promotion, and how often the bot checks in during it.
DEFAULT_WATCH = timedelta(hours=24)
WATCH_CHECK_IN_EVERY = timedelta(hours=6)


# ---------------------------------------------------------------- soak figures
class VersionTotals(BaseModel):
    """One version over a run of periods.

    Rates are invocation-weighted totals (sum of errors / sum of invocations); latency percentiles cannot be
    summed, so they are the worst period that had enough canary traffic to be judged.
    """

    model_config = ConfigDict(frozen=True)

    version: str
    invocations: float
    errors: float
    fewest_invocations: float | None  # in any one period
    error_rate: float | None
    p95_ms: float | None
    p99_ms: float | None
    cache_hit_rate: float | None
    cache_miss_p95_ms: float | None


class SoakTotals(BaseModel):
    model_config = ConfigDict(frozen=True)

    canary: VersionTotals
    stable: VersionTotals
    periods: int
    judged_periods: int  # periods whose canary traffic met min_invocations (the worst-period pool)
    start: datetime | None
    end: datetime | None


def soak_totals(figures: Sequence[PeriodFigures], *, min_invocations: int = 0) -> SoakTotals:
    """Aggregate the periods of a soak. Worst-period figures come from periods with enough canary traffic
    (a handful of calls makes a meaningless p95); when none had enough, from all of them."""
    judged = [f for f in figures if f.canary.invocations >= min_invocations] or list(figures)
    return SoakTotals(
        canary=_totals([f.canary for f in figures], [f.canary for f in judged]),
        stable=_totals([f.stable for f in figures], [f.stable for f in judged]),
        periods=len(figures),
        judged_periods=sum(f.canary.invocations >= min_invocations for f in figures),
        start=min((f.start for f in figures), default=None),
        end=max((f.end for f in figures), default=None),
    )


def _totals(every: Sequence[VersionFigures], judged: Sequence[VersionFigures]) -> VersionTotals:
    invocations = sum(v.invocations for v in every)
    errors = sum(v.errors for v in every)
    hits = [v.cache_hits for v in every if v.cache_hits is not None and v.cache_misses is not None]
    misses = [v.cache_misses for v in every if v.cache_hits is not None and v.cache_misses is not None]
    looked_up = sum(hits) + sum(misses)
    return VersionTotals(
        version=every[0].version if every else "",
        invocations=invocations,
        errors=errors,
        fewest_invocations=min((v.invocations for v in every), default=None),
        error_rate=errors / invocations if invocations else None,
        p95_ms=_worst(v.p95_ms for v in judged),
        p99_ms=_worst(v.p99_ms for v in judged),
        cache_hit_rate=sum(hits) / looked_up if looked_up else None,
        cache_miss_p95_ms=_worst(v.cache_miss_p95_ms for v in judged),
    )


def _worst(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


# ---------------------------------------------------------------- why it was rolled back
CauseKind = Literal["error_rate", "latency", "cache", "alarm", "manual"]


@dataclass(frozen=True, slots=True)
class RollbackCause:
    kind: CauseKind
    internal: str  # "Error rate exceeded 0.1% (2.5%)": for the team
    external: str  # "elevated error rates": for the status page, no internals
    next_steps: str


# How the seed's internal message names each failing metric; {v} the canary's figure, {t} the threshold.
_CAUSE_WORDS: dict[str, tuple[str, str]] = {
    "error_rate": ("Error rate exceeded {t} ({v})", "elevated error rates"),
    "error_rate_increase": ("Error rate exceeded stable's by more than {t} ({v})", "elevated error rates"),
    "error_rate_mann_whitney": ("Error rate worse than stable's ({v} vs {t})", "elevated error rates"),
    "cache_hit_rate": ("Cache hit rate below {t} ({v})", "reduced cache performance"),
    "cache_miss_p95_ms": ("Cache-miss latency above {t} ({v})", "increased response times"),
    "p95_ratio": ("P95 latency more than {t} stable's ({v})", "increased response times"),
    "p95_ms_mann_whitney": ("P95 latency worse than stable's ({v} vs {t})", "increased response times"),
    "p95_ms": ("P95 latency above {t} ({v})", "increased response times"),
    "p99_ms": ("P99 latency above {t} ({v})", "increased response times"),
}
_EXTERNAL = {
    "error_rate": "elevated error rates",
    "latency": "increased response times",
    "cache": "reduced cache performance",
}


def rollback_cause(reason: str, *, automatic: bool, cause: BreachCause | None = None) -> RollbackCause:
    """What to say about a rollback: from the typed cause the judge or the alarm handed over; a person's
    reason (or an automatic one without a metric, such as an approval timeout) is quoted as written."""
    text = reason.strip()
    if cause is not None and cause.kind == "alarm":
        name = cause.alarm or "(unnamed)"
        detail = text.removeprefix(f"alarm {name}:").strip() if text else ""
        shown = f"CloudWatch alarm {name}" + (f": {detail}" if detail else "")
        return RollbackCause("alarm", shown, "an automated health alert", _next_steps("alarm"))
    if cause is not None:
        internal, external = _CAUSE_WORDS.get(
            cause.metric or "", ("{m} outside its threshold ({v} vs {t})", _EXTERNAL[cause.kind])
        )
        shown = internal.format(v=cause.shown or "no data", t=cause.limit or "", m=cause.metric or "a metric")
        if cause.periods is not None:
            shown += f" for {cause.periods} consecutive periods"
        return RollbackCause(cause.kind, shown, external, _next_steps(cause.kind))
    if automatic:
        return RollbackCause("alarm", f"Automatic: {text}", "an automated health check", _next_steps("alarm"))
    shown = f"Manual decision ({text})" if text else "Manual decision"
    return RollbackCause("manual", shown, "a precautionary decision by our team", _next_steps("manual"))


def _next_steps(kind: CauseKind) -> str:
    return {
        "error_rate": "Root cause analysis",
        "latency": "Root cause analysis",
        "cache": "Redis debugging",
        "alarm": "Root cause analysis",
        "manual": "Root cause analysis with whoever rolled back",
    }[kind]


# ---------------------------------------------------------------- the seed's rollback messages
def internal_message(
    d: Deployment, *, reason: str, service_name: str | None, now: datetime, automatic: bool | None = None
) -> str:
    """The seed's 'Internal Communication (via Slack)' text, filled in.

    `automatic` (the bot decided, not a person) defaults to what the deployment records.
    """
    cause = rollback_cause(reason, automatic=_automatic(d) if automatic is None else automatic, cause=d.cause)
    return "\n".join(
        (
            "🔴 ROLLBACK INITIATED",
            f"- Service: {_service(d, service_name)}",
            f"- Reason: {cause.internal}",
            f"- Action: Reverted to version {d.stable_version} ({_stable_note(d)})",
            "- Status: Monitoring for stability",
            f"- Next Steps: {cause.next_steps}",
        )
    )


def fallback_internal_message(d: Deployment, *, reason: str, service_name: str | None) -> str:
    """The seed's internal rollback message for its emergency fallback (variables removed, code unchanged)."""
    gone = ", ".join(d.changes)
    note = " (in-memory cache)" if "REDIS_URL" in d.changes else ""
    return "\n".join(
        (
            "🔴 EMERGENCY FALLBACK",
            f"- Service: {_service(d, service_name)}",
            f"- Reason: {rollback_cause(reason, automatic=False).internal}",
            f"- Action: Version {d.canary_version} = version {d.stable_version} without {gone}{note}, "
            "100% of traffic",
            "- Status: Monitoring for stability",
            f"- Next Steps: Root cause analysis; revert to version {d.stable_version} once fixed",
        )
    )


def status_page_text(
    d: Deployment, *, reason: str, service_name: str | None, now: datetime, automatic: bool | None = None
) -> str:
    """The seed's 'External Communication (Status Page)' text: no versions, metrics or names."""
    cause = rollback_cause(reason, automatic=_automatic(d) if automatic is None else automatic, cause=d.cause)
    name = service_name or d.function
    return "\n".join(
        (
            f"Investigating: {name} Deployment Rollback",
            f"We rolled back a recent deployment due to {cause.external}.",
            "Service is stable on previous version. No user impact expected.",
            "Status: Monitoring",
            f"Updated: {_utc(now):%Y-%m-%d %H:%M} UTC",
        )
    )


def _service(d: Deployment, service_name: str | None) -> str:
    return f"{service_name or d.function} ({d.alias})"


def _stable_note(d: Deployment) -> str:
    """What the stable version is, as the seed says it: '(in-memory cache)' when the canary added Redis."""
    if d.changes.get("REDIS_URL"):
        return "in-memory cache"
    changed = ", ".join(f"{key} {'removed' if value is None else 'set'}" for key, value in d.changes.items())
    if changed:
        return f"without v{d.canary_version}'s change: {changed}"
    return f"the version before v{d.canary_version}"


def _automatic(d: Deployment) -> bool:
    return d.ended_by == BOT_ACTOR or (d.ended_by is None and d.state is State.ROLLING_BACK)


# ---------------------------------------------------------------- post-deployment summary
def soak_evidence(
    figures: Sequence[PeriodFigures], traffic_changes: Sequence[datetime], *, until: datetime | None = None
) -> list[PeriodFigures]:
    """The periods the soak judged: begun at or after the canary's first traffic change, not straddling a
    later one (a period cut by a weight change is evidence about neither weight) and ended by `until` (the
    promotion or rollback), oldest first — the same periods the soak reports showed, so the summary, the
    post-mortem and the last report give one set of figures."""
    first = min(traffic_changes, default=None)
    return sorted(
        (
            f
            for f in figures
            if (first is None or f.start >= first)
            and not any(f.start < change < f.end for change in traffic_changes)
            and (until is None or f.end <= until)
        ),
        key=lambda f: f.start,
    )


def deployment_evidence(
    d: Deployment, figures: Sequence[PeriodFigures], audit: Sequence[AuditRecord]
) -> list[PeriodFigures]:
    """`soak_evidence` of a deployment, its traffic changes read from its audit log."""
    changes = [r.at for r in audit if r.phase == "done" and r.action in ("start", "set_weight", "next_step")]
    return soak_evidence(figures, changes, until=d.ended_at)


def post_deployment_summary(
    d: Deployment,
    *,
    figures: Sequence[PeriodFigures],
    now: datetime,
    thresholds: Thresholds | None = None,
    min_invocations: int = 0,
    service_name: str | None = None,
    watch: timedelta = DEFAULT_WATCH,
) -> str:
    """The seed's post-mortem markdown with the canary's real figures over the whole soak."""
    limits = thresholds or Thresholds()
    totals = soak_totals(figures, min_invocations=min_invocations)
    canary = totals.canary
    soaked = d.soak * (d.step_index + 1)
    duration, outcome = f"{_long(soaked)} canary", _outcome(d)
    if totals.judged_periods == 0 and d.state is State.PROMOTED:
        # Promoted on no evidence: never "1 hour canary … Success".
        duration = f"promoted before any soak period was judged (planned: {_long(soaked)} canary)"
        outcome = f"Promoted without soak evidence (v{d.canary_version} at 100% of {d.alias})"
    lines = [
        f"# {service_name or d.function} v{d.canary_version} - {d.alias.title()} Deployment",
        "",
        f"**Date**: {_utc(d.ended_at or now):%Y-%m-%d}",
        f"**Duration**: {duration} + {_long(watch)} monitoring",
        f"**Outcome**: {outcome}",
        "",
        "## Metrics",
        f"- Error Rate: {_target(canary.error_rate, limits.error_rate, 'max', _pct)}",
        f"- Cache Hit Rate: {_target(canary.cache_hit_rate, limits.cache_hit_rate, 'min', _pct)}",
        f"- P95 Latency: {_target(canary.p95_ms, limits.p95_ms, 'max', _ms)}",
        f"- P99 Latency: {_target(canary.p99_ms, limits.p99_ms, 'max', _ms)}",
        f"- Cache Miss Latency: {_target(canary.cache_miss_p95_ms, limits.cache_miss_p95_ms, 'max', _ms)}",
        f"- Invocations: {round(canary.invocations):,} on v{d.canary_version} "
        f"({round(totals.stable.invocations):,} on v{d.stable_version}) over {totals.periods} periods",
        "",
        "_Canary version over the whole soak: rates are totals; latencies are the worst period._",
        "",
        "## Issues Encountered",
        *_issues(d, figures, limits, min_invocations),
        "",
        "## Action Items",
        *_action_items(d, watch),
    ]
    return "\n".join(lines)


def _target(value: float | None, limit: float | None, comparison: str, fmt: Callable[[float], str]) -> str:
    if value is None:
        return "no data"
    if limit is None:
        return f"{fmt(value)} (not judged)"
    sign = "<" if comparison == "max" else ">"
    within = value <= limit if comparison == "max" else value >= limit
    verdict = "within target" if within else "missed target"
    return f"{fmt(value)} ({verdict} {sign} {fmt(limit)})"


def _pct(value: float) -> str:
    return format_percent(value)


def _ms(value: float) -> str:
    shown = f"{value:.0f}" if value >= 10 else f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{shown}ms"


def _outcome(d: Deployment) -> str:
    if d.state is State.PROMOTED:
        return f"Success (v{d.canary_version} promoted to 100% of {d.alias})"
    if d.state is State.ROLLED_BACK:
        return f"Rolled back to v{d.stable_version}"
    return f"In progress ({d.state.value.replace('_', ' ')})"


def _issues(
    d: Deployment, figures: Sequence[PeriodFigures], limits: Thresholds, min_invocations: int
) -> list[str]:
    issues: list[str] = []
    if d.state is State.ROLLED_BACK and d.reason:
        issues.append(f"- Rolled back: {d.reason}")
    for period in figures:
        verdict = judge_period(period, limits, min_invocations=min_invocations)
        if verdict.outcome is Outcome.FAIL:
            failing = "; ".join(m.describe() for m in verdict.failing)
            issues.append(f"- {_utc(period.start):%H:%M}–{_utc(period.end):%H:%M} UTC: {failing}")
    if len(issues) > MAX_LISTED_ISSUES:
        issues = [*issues[:MAX_LISTED_ISSUES], f"- … and {len(issues) - MAX_LISTED_ISSUES} more"]
    return issues or ["- None"]


def _action_items(d: Deployment, watch: timedelta) -> list[str]:
    items = ["- [ ] Update runbook with actual metrics"]
    if d.state is State.ROLLED_BACK:
        cause = rollback_cause(d.reason or "", automatic=_automatic(d), cause=d.cause)
        items.insert(0, f"- [ ] {cause.next_steps} for v{d.canary_version}")
    elif watch > timedelta(0):
        items.append(
            f"- [ ] Read canary-bot's post-mortem after the {_long(watch)} watch (alias check, figures)"
        )
    else:
        items.append(f"- [ ] Confirm the alias still routes 100% v{d.canary_version}")
    if "REDIS_URL" in d.changes:
        items.append("- [ ] Document Redis debugging procedures")
    return items


# ---------------------------------------------------------------- after the promotion: the watch's post-mortem
@dataclass(frozen=True, slots=True)
class FailingRun:
    """Consecutive failing periods. A breach when at least `evaluation_periods` long; isolated otherwise."""

    start: datetime
    end: datetime
    periods: int
    reason: str  # the failing metrics of its first period: "p95 180 ms > 100 ms"
    cause: BreachCause | None = None  # its first failing metric, typed (for the action items)


def failing_runs(
    figures: Sequence[PeriodFigures], thresholds: Thresholds, *, min_invocations: int
) -> list[FailingRun]:
    """The runs of failing periods, oldest first, judged as the soak judges (a period without enough
    traffic or data ends a run, as it ends a breach streak)."""
    runs: list[FailingRun] = []
    current: FailingRun | None = None
    for period in sorted(figures, key=lambda f: f.start):
        verdict = judge_period(period, thresholds, min_invocations=min_invocations)
        if verdict.outcome is not Outcome.FAIL:
            current = None
            continue
        if current is not None and current.end == period.start:
            runs[-1] = current = FailingRun(
                current.start, period.end, current.periods + 1, current.reason, current.cause
            )
        else:
            reason = "; ".join(m.describe() for m in verdict.failing)
            cause = breach_cause(verdict.failing[0], periods=None) if verdict.failing else None
            current = FailingRun(period.start, period.end, 1, reason, cause)
            runs.append(current)
    return runs


def migration_verified(d: Deployment, alias: AliasState | None) -> bool:
    """The seed's check: FunctionVersion is the promoted version and RoutingConfig has no extra weights."""
    return alias is not None and alias.version == d.canary_version and not alias.weights


def migration_text(d: Deployment, alias: AliasState | None, error: str | None = None) -> str:
    """'Full migration verified: production routes 100% v42, no additional weights', or what it routes now."""
    if alias is None:
        return f"Alias {d.alias} could not be read ({error or 'no answer'}): the migration is not verified"
    if migration_verified(d, alias):
        return f"Full migration verified: {d.alias} routes 100% v{d.canary_version}, no additional weights"
    return (
        f"{d.alias} now routes {alias.describe()}, not 100% v{d.canary_version}: "
        "the alias was changed after the promotion"
    )


def post_mortem(
    d: Deployment,
    *,
    soak_figures: Sequence[PeriodFigures],
    watch_figures: Sequence[PeriodFigures],
    alias: AliasState | None,
    now: datetime,
    alias_error: str | None = None,
    thresholds: Thresholds | None = None,
    min_invocations: int = 0,
    evaluation_periods: int = 2,
    service_name: str | None = None,
) -> str:
    """The seed's post-mortem document after the watch: the promoted version's real figures over the watch,
    the canary's beside them, what went wrong during either, and whether the alias still routes it all."""
    limits = thresholds or Thresholds()
    watched = soak_totals(watch_figures, min_invocations=min_invocations)
    soaked = soak_totals(soak_figures, min_invocations=min_invocations).canary
    v = watched.canary
    soak_time = d.soak * (d.step_index + 1)
    watch_time = d.watch_until - d.ended_at if d.watch_until and d.ended_at else DEFAULT_WATCH
    watch_runs = failing_runs(watch_figures, limits, min_invocations=min_invocations)
    breached = any(run.periods >= evaluation_periods for run in watch_runs)
    verified = migration_verified(d, alias)
    lines = [
        f"# {service_name or d.function} v{d.canary_version} - {d.alias.title()} Deployment",
        "",
        f"**Date**: {_utc(d.ended_at or now):%Y-%m-%d}",
        f"**Duration**: {_long(soak_time)} canary + {_long(watch_time)} monitoring",
        f"**Outcome**: {_watch_outcome(d, alias, verified=verified, breached=breached)}",
        "",
        "## Metrics",
        f"- Error Rate: {_target(v.error_rate, limits.error_rate, 'max', _pct)}",
        f"- Cache Hit Rate: {_target(v.cache_hit_rate, limits.cache_hit_rate, 'min', _pct)}",
        f"- P95 Latency: {_target(v.p95_ms, limits.p95_ms, 'max', _ms)}",
        f"- P99 Latency: {_target(v.p99_ms, limits.p99_ms, 'max', _ms)}",
        f"- Cache Miss Latency: {_target(v.cache_miss_p95_ms, limits.cache_miss_p95_ms, 'max', _ms)}",
        f"- Invocations: {round(v.invocations):,} on v{d.canary_version} over {watched.periods} periods",
        f"- During the canary: error rate {_or_none(soaked.error_rate, _pct)}, cache hit rate "
        f"{_or_none(soaked.cache_hit_rate, _pct)}, p95 {_or_none(soaked.p95_ms, _ms)}",
        "",
        f"_v{d.canary_version} over the {_long(watch_time)} watch after promotion: rates are totals; "
        "latencies are the worst period with enough traffic._",
        "",
        "## Issues Encountered",
        *_watch_issues(
            d,
            soak_runs=failing_runs(soak_figures, limits, min_invocations=min_invocations),
            watch_runs=watch_runs,
            evaluation_periods=evaluation_periods,
            alias=alias,
            alias_error=alias_error,
        ),
        "",
        "## Action Items",
        *_watch_actions(d, watch_runs, evaluation_periods, alias, verified=verified),
    ]
    return "\n".join(lines)


def _watch_outcome(d: Deployment, alias: AliasState | None, *, verified: bool, breached: bool) -> str:
    if alias is not None and not verified:
        return f"Promoted, then changed by hand: {d.alias} routes {alias.describe()}"
    if breached:
        return f"Promoted; v{d.canary_version} breached its thresholds during the watch"
    if alias is None:
        return "Success, but the alias could not be verified"
    return f"Success (v{d.canary_version} serves 100% of {d.alias}, verified)"


def _watch_issues(
    d: Deployment,
    *,
    soak_runs: Sequence[FailingRun],
    watch_runs: Sequence[FailingRun],
    evaluation_periods: int,
    alias: AliasState | None,
    alias_error: str | None,
) -> list[str]:
    issues: list[str] = []
    if alias is None or not migration_verified(d, alias):
        issues.append(f"- {migration_text(d, alias, alias_error)}")
    for phase, runs in (("Canary", soak_runs), ("Watch", watch_runs)):
        for run in runs:
            if run.periods >= evaluation_periods:
                what = f"{run.reason} for {run.periods} periods (breach)"
            else:
                what = f"{run.reason} (isolated period{'s' if run.periods > 1 else ''})"
            issues.append(f"- {phase} {_utc(run.start):%Y-%m-%d %H:%M}–{_utc(run.end):%H:%M} UTC: {what}")
    if len(issues) > MAX_LISTED_ISSUES:
        issues = [*issues[:MAX_LISTED_ISSUES], f"- … and {len(issues) - MAX_LISTED_ISSUES} more"]
    return issues or ["- None"]


def _watch_actions(
    d: Deployment,
    watch_runs: Sequence[FailingRun],
    evaluation_periods: int,
    alias: AliasState | None,
    *,
    verified: bool,
) -> list[str]:
    items = ["- [ ] Update runbook with actual metrics"]
    breaches = [run for run in watch_runs if run.periods >= evaluation_periods]
    if breaches:
        cause = rollback_cause(breaches[0].reason, automatic=True, cause=breaches[0].cause)
        first = breaches[0].reason
        items.append(f"- [ ] {cause.next_steps} of the watch breach of v{d.canary_version} ({first})")
    if alias is None:
        command = f"aws lambda get-alias --function-name {d.function} --name {d.alias}"
        items.append(f"- [ ] Check the alias by hand: {command}")
    elif not verified:
        items.append(f"- [ ] Find who changed {d.alias} after the promotion (CloudTrail UpdateAlias) and why")
    if "REDIS_URL" in d.changes:
        items.append("- [ ] Document Redis debugging procedures")
    return items


def _or_none(value: float | None, fmt: Callable[[float], str]) -> str:
    return "no data" if value is None else fmt(value)


def _long(delta: timedelta) -> str:
    """'1 hour', '24 hour', '1 hour 30 minute' — the seed's '1 hour canary + 24 hour monitoring' style."""
    minutes = round(delta.total_seconds() / 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{hours} hour" if hours else "", f"{minutes} minute" if minutes else ""]
    return " ".join(p for p in parts if p) or "0 minute"


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC)
