"""The seed runbook's rollback texts and post-deployment summary, filled in with real figures."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.comms import (
    failing_runs,
    internal_message,
    migration_verified,
    post_deployment_summary,
    post_mortem,
    rollback_cause,
    soak_totals,
    status_page_text,
)
from bot.judge import breach_cause, judge_period
from bot.model import AliasState, BreachCause, Deployment, PeriodFigures, State, Thresholds, VersionFigures
from tests.support.canary_core import PERIOD, T0, in_state, period, version

NOW = datetime(2026, 11, 28, 14, 41, 5, tzinfo=T0.tzinfo)


def ended(state: State, **update: Any) -> Deployment:
    return in_state(state, steps=(0.05,)).model_copy(update=update)


def judged(periods: int | None = 2, thresholds: Thresholds | None = None, **canary: Any) -> BreachCause:
    """The typed cause the judge hands over for a period with these canary figures."""
    verdict = judge_period(
        period(T0, canary=version("42", **canary)), thresholds or Thresholds(), min_invocations=0
    )
    return breach_cause(verdict.failing[0], periods=periods)


# ---------------------------------------------------------------- internal message
def test_internal_message_has_the_seeds_lines_in_order() -> None:
    d = ended(State.ROLLED_BACK, ended_by="canary-bot", cause=judged(errors=25))
    text = internal_message(d, reason="whatever the judge wrote", service_name="LEGO API", now=NOW)
    assert text.splitlines() == [
        "🔴 ROLLBACK INITIATED",
        "- Service: LEGO API (production)",
        "- Reason: Error rate exceeded 0.1% (2.5%) for 2 consecutive periods",
        "- Action: Reverted to version 41 (the version before v42)",
        "- Status: Monitoring for stability",
        "- Next Steps: Root cause analysis",
    ]


def test_cache_breach_of_a_redis_canary_points_to_redis_debugging_and_the_in_memory_cache() -> None:
    d = ended(
        State.ROLLED_BACK,
        ended_by="canary-bot",
        changes={"REDIS_URL": "redis://cache:6379"},
        cause=judged(cache_hits=720, cache_misses=280),
    )
    text = internal_message(
        d, reason="cache hit rate 72% < 80% for 2 periods", service_name="LEGO API", now=NOW
    )
    assert "- Reason: Cache hit rate below 80% (72%) for 2 consecutive periods" in text
    assert "- Action: Reverted to version 41 (in-memory cache)" in text
    assert "- Next Steps: Redis debugging" in text
    assert "redis://cache" not in text


def test_manual_rollback_reads_as_a_manual_decision() -> None:
    d = ended(State.ROLLED_BACK, ended_by="slack:U0SRE (sre)")
    text = internal_message(d, reason="odd logs in v42", service_name=None, now=NOW)
    assert "- Service: production-lego-api (production)" in text
    assert "- Reason: Manual decision (odd logs in v42)" in text


@pytest.mark.parametrize(
    ("cause", "kind", "internal"),
    [
        (judged(p95_ms=250.0), "latency", "P95 latency above 100 ms (250 ms) for 2 consecutive periods"),
        (judged(None, p99_ms=400.0), "latency", "P99 latency above 300 ms (400 ms)"),
        (judged(cache_miss_p95_ms=350.0), "cache", "Cache-miss latency above 300 ms (350 ms)"),
        (
            judged(thresholds=Thresholds(error_rate=None, max_error_rate_increase=0.001), errors=3),
            "error_rate",
            "Error rate exceeded stable's by more than 0.1% (0.3%)",
        ),
        (
            BreachCause(kind="alarm", alarm="canary-bot/fn/production/v42/error-rate"),
            "alarm",
            "CloudWatch alarm",
        ),
    ],
)
def test_the_rollback_message_renders_the_judges_and_alarms_typed_cause(
    cause: BreachCause, kind: str, internal: str
) -> None:
    said = rollback_cause("text nobody parses", automatic=True, cause=cause)
    assert said.kind == kind
    assert said.internal.startswith(internal)


def test_an_automatic_reason_without_a_cause_is_quoted_not_parsed() -> None:
    said = rollback_cause("p95 250 ms > 100 ms for 2 periods", automatic=True)
    assert said.internal == "Automatic: p95 250 ms > 100 ms for 2 periods"


# ---------------------------------------------------------------- status page
def test_status_page_text_has_the_seeds_shape_and_no_internals() -> None:
    d = ended(State.ROLLED_BACK, ended_by="canary-bot", cause=judged(errors=25))
    text = status_page_text(
        d, reason="error rate 2.5% > 0.1% for 2 periods", service_name="LEGO API", now=NOW
    )
    assert text.splitlines() == [
        "Investigating: LEGO API Deployment Rollback",
        "We rolled back a recent deployment due to elevated error rates.",
        "Service is stable on previous version. No user impact expected.",
        "Status: Monitoring",
        "Updated: 2026-11-28 14:41 UTC",
    ]
    assert "v42" not in text and "2.5%" not in text


def test_status_page_for_a_manual_rollback_does_not_guess_a_metric() -> None:
    d = ended(State.ROLLED_BACK, ended_by="slack:U0SRE (sre)")
    text = status_page_text(d, reason="saw odd logs", service_name="LEGO API", now=NOW)
    assert "due to a precautionary decision by our team." in text
    assert "odd logs" not in text


# ---------------------------------------------------------------- summary
def clean_soak(errors_first: float = 1) -> list[PeriodFigures]:
    """Ten 5-minute periods of 1,000 canary calls; `errors_first` errors in the first, one in the second."""
    figures = [
        period(T0 + PERIOD * i, canary=version("42", invocations=1000, cache_hits=950, cache_misses=50))
        for i in range(10)
    ]
    figures[0] = period(T0, canary=version("42", invocations=1000, errors=errors_first))
    figures[1] = period(T0 + PERIOD, canary=version("42", invocations=1000, errors=1))
    return figures


def test_summary_carries_the_real_figures_of_the_soak() -> None:
    d = ended(State.PROMOTED, ended_at=NOW)
    text = post_deployment_summary(d, figures=clean_soak(), now=NOW, service_name="LEGO API")
    assert text.startswith("# LEGO API v42 - Production Deployment\n")
    assert "**Date**: 2026-11-28" in text
    assert "**Duration**: 1 hour canary + 24 hour monitoring" in text
    assert "**Outcome**: Success" in text
    # 2 errors in 10 × 1,000 invocations (no single period above 0.1%).
    assert "- Error Rate: 0.02% (within target < 0.1%)" in text
    # 2 × 940 + 8 × 950 hits of 10,000 lookups.
    assert "- Cache Hit Rate: 94.8% (within target > 80%)" in text
    assert "- P95 Latency: 42ms (within target < 100ms)" in text
    assert "## Issues Encountered\n- None" in text
    assert "- [ ] Update runbook with actual metrics" in text


def test_summary_lists_breaching_periods_and_a_missed_target() -> None:
    figures = clean_soak(errors_first=30)
    d = ended(State.ROLLED_BACK, ended_at=NOW, reason="error rate 3% > 0.1% for 2 periods")
    text = post_deployment_summary(d, figures=figures, now=NOW, thresholds=Thresholds())
    assert "**Outcome**: Rolled back to v41" in text
    assert "- Error Rate: 0.31% (missed target < 0.1%)" in text
    assert "- Rolled back: error rate 3% > 0.1% for 2 periods" in text
    assert "- 14:00–14:05 UTC: error rate 3% > 0.1%" in text
    assert "- [ ] Root cause analysis for v42" in text


def test_summary_of_a_promotion_before_any_judged_period_says_so_never_success() -> None:
    d = in_state(State.PROMOTED, steps=(0.05, 0.25), soak=timedelta(minutes=30)).model_copy(
        update={"step_index": 1}
    )
    text = post_deployment_summary(d, figures=[], now=NOW)
    assert "**Duration**: promoted before any soak period was judged (planned: 1 hour canary)" in text
    assert "**Outcome**: Promoted without soak evidence" in text and "Success" not in text
    assert "- Error Rate: no data" in text


# ---------------------------------------------------------------- totals
def test_soak_totals_weight_rates_by_invocations_and_take_the_worst_judged_period() -> None:
    figures = [
        period(T0, canary=version("42", invocations=1000, errors=0, p95_ms=40.0)),
        period(T0 + PERIOD, canary=version("42", invocations=3000, errors=6, p95_ms=80.0)),
        # Too little traffic to judge: its wild p95 does not become the step's p95.
        period(T0 + PERIOD * 2, canary=version("42", invocations=5, errors=0, p95_ms=900.0)),
        period(T0 + PERIOD * 3, canary=version("42", invocations=1000, p95_ms=None, cache_hits=None)),
    ]
    totals = soak_totals(figures, min_invocations=200)
    assert totals.canary.error_rate == pytest.approx(6 / 5005)
    assert totals.canary.p95_ms == 80.0
    assert totals.canary.fewest_invocations == 5
    assert totals.periods == 4 and totals.judged_periods == 3
    assert totals.start == T0 and totals.end == T0 + PERIOD * 4


def test_soak_totals_of_nothing_are_empty_not_zero() -> None:
    totals = soak_totals([])
    assert totals.canary.error_rate is None and totals.canary.p95_ms is None
    assert totals.periods == 0 and totals.start is None


# ---------------------------------------------------------------- post-mortem after the watch
PROMOTED_AT = T0 + timedelta(hours=1)
WATCHED = AliasState(function="production-lego-api", alias="production", version="42", revision_id="r9")


def watched(**update: Any) -> Deployment:
    return ended(State.PROMOTED).model_copy(
        update={"ended_at": PROMOTED_AT, "watch_until": PROMOTED_AT + timedelta(hours=24), **update}
    )


def watch_day(**at_period: VersionFigures) -> list[PeriodFigures]:
    """288 five-minute periods of v42 alone (stable idle); `at_period={'p12': version(...)}` replaces one."""
    return [
        period(
            PROMOTED_AT + PERIOD * i,
            canary=at_period.get(f"p{i}")
            or version("42", invocations=10_000, errors=1, cache_hits=9_500, cache_misses=500),
            stable=version("41", invocations=0, p95_ms=None, p99_ms=None, cache_hits=0, cache_misses=0),
        )
        for i in range(288)
    ]


def test_post_mortem_has_the_seeds_shape_with_the_watchs_real_figures() -> None:
    text = post_mortem(
        watched(),
        soak_figures=clean_soak(),
        watch_figures=watch_day(),
        alias=WATCHED,
        now=NOW,
        service_name="LEGO API",
    )
    assert text.splitlines()[:5] == [
        "# LEGO API v42 - Production Deployment",
        "",
        "**Date**: 2024-05-01",
        "**Duration**: 1 hour canary + 24 hour monitoring",
        "**Outcome**: Success (v42 serves 100% of production, verified)",
    ]
    # 288 errors in 2,880,000 calls; 95% of cache lookups hit.
    assert "- Error Rate: 0.01% (within target < 0.1%)" in text
    assert "- Cache Hit Rate: 95% (within target > 80%)" in text
    assert "- P95 Latency: 42ms (within target < 100ms)" in text
    assert "- Invocations: 2,880,000 on v42 over 288 periods" in text
    assert "- During the canary: error rate 0.02%, cache hit rate 94.8%, p95 42ms" in text
    assert "## Issues Encountered\n- None\n" in text
    assert "## Action Items\n- [ ] Update runbook with actual metrics" in text


def test_post_mortem_p95_is_the_worst_period_with_enough_traffic() -> None:
    figures = watch_day(
        p10=version("42", invocations=10_000, p95_ms=70.0),
        p11=version("42", invocations=50, p95_ms=900.0),  # too little traffic to count
    )
    text = post_mortem(
        watched(), soak_figures=[], watch_figures=figures, alias=WATCHED, now=NOW, min_invocations=200
    )
    assert "- P95 Latency: 70ms (within target < 100ms)" in text
    assert "- During the canary: error rate no data, cache hit rate no data, p95 no data" in text


def test_post_mortem_lists_breaches_and_isolated_periods_of_the_soak_and_the_watch() -> None:
    slow = version("42", invocations=10_000, p95_ms=180.0)
    figures = watch_day(p36=slow, p37=slow, p38=slow, p100=version("42", invocations=10_000, errors=50))
    text = post_mortem(
        watched(), soak_figures=clean_soak(errors_first=30), watch_figures=figures, alias=WATCHED, now=NOW
    )
    assert "**Outcome**: Promoted; v42 breached its thresholds during the watch" in text
    assert "- P95 Latency: 180ms (missed target < 100ms)" in text
    issues = text.split("## Issues Encountered\n")[1].split("\n\n")[0].splitlines()
    assert issues == [
        "- Canary 2024-05-01 14:00–14:05 UTC: error rate 3% > 0.1% (isolated period)",
        "- Watch 2024-05-01 18:00–18:15 UTC: p95 180 ms > 100 ms for 3 periods (breach)",
        "- Watch 2024-05-01 23:20–23:25 UTC: error rate 0.5% > 0.1% (isolated period)",
    ]
    assert "- [ ] Root cause analysis of the watch breach of v42 (p95 180 ms > 100 ms)" in text


def test_post_mortem_says_when_the_alias_no_longer_routes_the_promoted_version() -> None:
    reverted = WATCHED.model_copy(update={"version": "41"})
    text = post_mortem(watched(), soak_figures=[], watch_figures=watch_day(), alias=reverted, now=NOW)
    assert "**Outcome**: Promoted, then changed by hand: production routes 100% v41" in text
    assert "- production now routes 100% v41, not 100% v42: the alias was changed after the promotion" in text
    assert "- [ ] Find who changed production after the promotion (CloudTrail UpdateAlias) and why" in text


def test_post_mortem_without_an_alias_reading_does_not_claim_success() -> None:
    text = post_mortem(
        watched(), soak_figures=[], watch_figures=[], alias=None, alias_error="throttled", now=NOW
    )
    assert "**Outcome**: Success, but the alias could not be verified" in text
    assert "- Alias production could not be read (throttled): the migration is not verified" in text
    assert "- Error Rate: no data" in text
    assert "aws lambda get-alias --function-name production-lego-api --name production" in text


@pytest.mark.parametrize(
    ("alias", "verified"),
    [
        (WATCHED, True),
        (WATCHED.model_copy(update={"weights": {"41": 0.05}}), False),  # a leftover split
        (WATCHED.model_copy(update={"version": "41"}), False),
        (None, False),
    ],
)
def test_migration_is_verified_only_at_100_percent_of_the_promoted_version(
    alias: AliasState | None, verified: bool
) -> None:
    assert migration_verified(watched(), alias) is verified


def test_failing_runs_group_consecutive_failing_periods_and_a_no_data_period_ends_a_run() -> None:
    bad = version("42", errors=10)
    figures = [
        period(T0, canary=bad),
        period(T0 + PERIOD, canary=bad),
        period(T0 + PERIOD * 2, canary=version("42", invocations=10, errors=10)),  # too little traffic
        period(T0 + PERIOD * 3, canary=bad),
        period(T0 + PERIOD * 4),
    ]
    runs = failing_runs(figures, Thresholds(), min_invocations=200)
    assert [(r.start, r.periods, r.reason) for r in runs] == [
        (T0, 2, "error rate 1% > 0.1%"),
        (T0 + PERIOD * 3, 1, "error rate 1% > 0.1%"),
    ]
