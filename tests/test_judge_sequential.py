"""judge: sequential — counts as evidence, percentiles with enough samples, and the decisions they lead to."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import evidence
from bot.config import FunctionPolicy, PolicyError, load_policy
from bot.judge import (
    DecisionKind,
    Outcome,
    PeriodVerdict,
    decide,
    format_bound,
    judge_period,
    judge_step,
)
from bot.model import PeriodFigures
from tests.support.canary_core import PERIOD, T0, in_state, period, started, version

HOUR = timedelta(hours=1)
LOOKS = 12  # a 1 h soak of 5-minute periods


def policy(**overrides: Any) -> FunctionPolicy:
    return FunctionPolicy(**{"judge": "sequential", **overrides})


def figures(errors: list[float], *, invocations: float = 1000, **canary: Any) -> list[PeriodFigures]:
    """One 5-minute period per entry, back to back from T0, with that many canary errors."""
    return [
        period(T0 + i * PERIOD, canary=version("42", invocations=invocations, errors=e, **canary))
        for i, e in enumerate(errors)
    ]


def error_verdict(verdict: PeriodVerdict) -> Any:
    [metric] = [m for m in verdict.metrics if m.metric == "error_rate"]
    return metric


def limit_at(trials: int, look: int) -> int:
    """The fewest cumulative errors that prove a breach at this look (from the test itself)."""
    test = evidence.breach_test(0, trials, threshold=0.001, confidence=0.95, looks=LOOKS, look=look)
    return evidence.breach_count(trials, test.boundary, 0.001)


# ---------------------------------------------------------------- one period's counts
def test_a_ten_times_breach_rolls_back_after_one_period() -> None:
    verdicts = judge_step(figures([10]), policy(), looks=LOOKS)
    decision = decide(started(), verdicts, policy(), now=T0 + PERIOD)

    assert verdicts[0].outcome is Outcome.FAIL
    assert decision.kind is DecisionKind.ROLLBACK
    assert decision.reason.startswith("error rate 1% > 0.1% (≥ 0.")
    assert decision.reason.endswith("at 95%) over the step's 1,000 invocations")


def test_the_reason_names_the_window_that_proved_the_breach() -> None:
    [verdict] = judge_step(figures([10]), policy(), looks=LOOKS)
    metric = error_verdict(verdict)

    assert metric.scope == "over the step's 1,000 invocations"
    assert metric.describe() == f"error rate 1% > 0.1% ({metric.evidence}) over the step's 1,000 invocations"


@pytest.mark.parametrize(("offset", "kind"), [(0, DecisionKind.ROLLBACK), (-1, DecisionKind.CONTINUE)])
def test_the_breach_decision_sits_exactly_at_the_tests_boundary(offset: int, kind: DecisionKind) -> None:
    errors = limit_at(2000, look=2) + offset
    verdicts = judge_step(figures([errors / 2, errors / 2]), policy(), looks=LOOKS)

    assert decide(started(), verdicts, policy(), now=T0 + 2 * PERIOD).kind is kind


def test_a_ten_times_breach_that_starts_mid_soak_is_not_diluted_by_the_clean_half_hour() -> None:
    verdicts = judge_step(figures([0] * 6 + [10]), policy(), looks=LOOKS)
    decision = decide(started(), verdicts, policy(), now=T0 + 7 * PERIOD)

    assert decision.kind is DecisionKind.ROLLBACK
    assert decision.reason.startswith("error rate 1% > 0.1% (≥ 0.")
    assert decision.reason.endswith("at 95%) over the last 5m's 1,000 invocations")


def test_one_error_in_a_period_is_not_yet_known_not_a_failure() -> None:
    [verdict] = judge_step(figures([1]), policy(), looks=LOOKS)
    metric = error_verdict(verdict)

    assert metric.outcome is Outcome.NO_DATA
    assert metric.describe().startswith("error rate 0.1% ≤ 0.1% (≤ 0.")
    assert metric.describe().endswith("at 95%): not yet known after 1,000 invocations")
    # The other metrics passed: the period passes where known and says what is not known yet.
    assert verdict.outcome is Outcome.PASS
    assert "error rate 0.1% ≤ 0.1%" in verdict.reason and "not yet known" in verdict.reason


def test_the_count_is_judged_over_the_steps_cumulative_window() -> None:
    verdicts = judge_step(figures([0] * 4), policy(), looks=LOOKS)

    # 1,000 clean invocations prove nothing; 3,000 prove < 0.1% at 95% (rule of three).
    assert [error_verdict(v).outcome for v in verdicts] == [Outcome.NO_DATA] * 2 + [Outcome.PASS] * 2
    assert error_verdict(verdicts[-1]).describe() == "error rate 0% ≤ 0.1% (≤ 0.075% at 95%)"


def test_cache_hit_rate_is_judged_on_the_misses_it_counted() -> None:
    bad = judge_step(figures([0], cache_hits=400, cache_misses=600), policy(), looks=LOOKS)
    [cache] = [m for m in bad[0].metrics if m.metric == "cache_hit_rate"]

    assert cache.outcome is Outcome.FAIL
    assert cache.describe().startswith("cache hit rate 40% < 80% (≤ ")
    assert decide(started(), bad, policy(), now=T0 + PERIOD).kind is DecisionKind.ROLLBACK


# ---------------------------------------------------------------- percentiles
@pytest.mark.parametrize(
    ("invocations", "p99_outcome"),
    [(999, Outcome.NO_DATA), (1000, Outcome.FAIL)],
)
def test_a_p99_from_too_few_invocations_is_no_data(invocations: int, p99_outcome: Outcome) -> None:
    [verdict] = judge_step(figures([0], invocations=invocations, p99_ms=450.0), policy(), looks=LOOKS)
    [p99] = [m for m in verdict.metrics if m.metric == "p99_ms"]
    [p95] = [m for m in verdict.metrics if m.metric == "p95_ms"]

    assert p99.outcome is p99_outcome
    assert p95.outcome is Outcome.PASS  # 200 invocations are enough for a p95
    if p99_outcome is Outcome.NO_DATA:
        assert p99.describe() == "p99 450 ms > 300 ms: 999 invocations < 1,000 needed for a p99"


def test_a_percentile_breach_still_needs_evaluation_periods_in_a_row() -> None:
    slow = figures([0, 0], p95_ms=250.0)
    one = judge_step(slow[:1], policy(), looks=LOOKS)
    two = judge_step(slow, policy(), looks=LOOKS)

    assert decide(started(), one, policy(), now=T0 + PERIOD).kind is DecisionKind.CONTINUE
    assert decide(started(), two, policy(), now=T0 + 2 * PERIOD).kind is DecisionKind.ROLLBACK


# ---------------------------------------------------------------- the end of the soak
def _max_passing_errors(trials: int) -> int:
    return max(k for k in range(0, 40) if evidence.upper_bound(k, trials, 0.95) <= 0.001)


@pytest.mark.parametrize(
    ("extra", "kind"), [(0, DecisionKind.AWAIT_APPROVAL), (1, DecisionKind.INCONCLUSIVE)]
)
def test_the_soak_passes_only_when_the_bound_proves_the_threshold(extra: int, kind: DecisionKind) -> None:
    total = _max_passing_errors(12_000) + extra
    errors = [total / 12] * 12
    verdicts = judge_step(figures(errors), policy(), looks=LOOKS)

    assert decide(started(), verdicts, policy(), now=T0 + HOUR).kind is kind


def test_a_passed_soak_says_what_it_proved() -> None:
    verdicts = judge_step(figures([0] * 12), policy(), looks=LOOKS)
    decision = decide(started(), verdicts, policy(), now=T0 + HOUR)

    errors = format_bound(evidence.upper_bound(0, 12_000, 0.95), upward=True)
    hits = format_bound(1 - evidence.upper_bound(720, 12_000, 0.95), upward=False)
    assert decision.kind is DecisionKind.AWAIT_APPROVAL
    assert decision.reason.endswith(f"; error rate < {errors}, cache hit rate > {hits} with 95% confidence")


def test_an_unproven_soak_says_what_it_could_prove_and_how_long_the_rest_would_take() -> None:
    # 6,000 invocations at 0.05%: below the threshold, but not yet provably so.
    verdicts = judge_step(figures([0.25] * 12, invocations=500), policy(), looks=LOOKS)
    decision = decide(started(), verdicts, policy(), now=T0 + HOUR)

    assert decision.kind is DecisionKind.INCONCLUSIVE
    bound = format_bound(evidence.upper_bound(3, 6000, 0.95), upward=True)
    needed = evidence.invocations_to_prove_below(0.0005, 0.001, 0.95)
    assert needed is not None
    minutes = -(-((needed - 6000) / 6000 * 60) // 5) * 5
    assert decision.reason.startswith("soak inconclusive (not yet known): ")
    assert decision.reason.endswith(
        f"error rate < {bound} with 95% confidence; 0.1% needs about {minutes:.0f} more minutes at 5%"
    )


def test_an_unproven_soak_at_the_threshold_says_it_will_not_prove_it() -> None:
    verdicts = judge_step(figures([1] * 12), policy(), looks=LOOKS)
    decision = decide(started(), verdicts, policy(), now=T0 + HOUR)

    assert decision.kind is DecisionKind.INCONCLUSIVE
    assert decision.reason.endswith("at the rate seen so far it will not show < 0.1%")


# ---------------------------------------------------------------- who acts
def test_a_confident_breach_only_alerts_under_on_breach_alert_or_when_held() -> None:
    verdicts = judge_step(figures([10]), policy(), looks=LOOKS)

    assert decide(started(), verdicts, policy(on_breach="alert"), now=T0 + PERIOD).kind is DecisionKind.ALERT
    from bot.model import State

    held = in_state(State.HELD, steps=(0.05,))
    assert decide(held, verdicts, policy(), now=T0 + PERIOD).kind is DecisionKind.ALERT


def test_judge_threshold_is_the_plain_rule_period_by_period() -> None:
    rules = policy(judge="threshold")
    data = figures([2, 2, 0])

    assert judge_step(data, rules, looks=LOOKS) == [
        judge_period(f, rules.thresholds, min_invocations=rules.min_invocations) for f in data
    ]


@pytest.mark.parametrize(
    ("rate", "upward", "shown"),
    [
        (0.000749, True, "0.075%"),
        (0.00129, True, "0.13%"),
        (0.00611, False, "0.61%"),
        (0.0199, False, "1.9%"),
    ],
)
def test_bounds_are_shown_rounded_away_from_the_estimate(rate: float, upward: bool, shown: str) -> None:
    assert format_bound(rate, upward=upward) == shown


def test_the_policy_reads_judge_and_confidence_and_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("defaults: {judge: threshold, confidence: 99%}\nfunctions: {fn: {}}\n")
    rules = load_policy(good).for_function("fn")
    assert rules is not None and (rules.judge, rules.confidence) == ("threshold", 0.99)
    assert FunctionPolicy().judge == "sequential" and FunctionPolicy().confidence == 0.95

    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: {judge: bayesian}\nfunctions: {fn: {}}\n")
    with pytest.raises(PolicyError, match=r"defaults\.judge"):
        load_policy(bad)
    bad.write_text("defaults: {confidence: 100%}\nfunctions: {fn: {}}\n")
    with pytest.raises(PolicyError, match=r"defaults\.confidence"):
        load_policy(bad)


# ---------------------------------------------------------------- properties
@settings(max_examples=60, deadline=None)
@given(
    per_period=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=6),
    scale=st.integers(min_value=2, max_value=4),
)
def test_a_larger_sample_at_the_same_rates_never_weakens_a_confident_verdict(
    per_period: list[int], scale: int
) -> None:
    small = judge_step(figures([float(e) for e in per_period]), policy(), looks=LOOKS)
    large = judge_step(
        figures([float(e * scale) for e in per_period], invocations=1000 * scale), policy(), looks=LOOKS
    )
    for before, after in zip(small, large, strict=True):
        was, now = error_verdict(before).outcome, error_verdict(after).outcome
        if was is not Outcome.NO_DATA:
            assert now is was, (per_period, scale, was, now)
