"""bot.evidence: the statistics the sequential judge stands on, against known values and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from bot import evidence

THRESHOLD = 0.001


# ---------------------------------------------------------------- Clopper-Pearson bounds
@pytest.mark.parametrize(
    ("events", "trials", "upper"),
    [
        # One-sided 95% upper limits from binomial tables (Clopper-Pearson).
        (0, 10, 0.2589),
        (1, 10, 0.3942),
        (2, 10, 0.5069),
    ],
)
def test_upper_bound_matches_the_textbook_table(events: int, trials: int, upper: float) -> None:
    assert evidence.upper_bound(events, trials, 0.95) == pytest.approx(upper, abs=5e-5)


def test_no_errors_in_n_trials_gives_the_closed_form_bound() -> None:
    # With zero events the exact bound is 1 - alpha^(1/n): about 3/n, the "rule of three".
    for trials in (10, 300, 3000):
        assert evidence.upper_bound(0, trials, 0.95) == pytest.approx(1 - 0.05 ** (1 / trials))
    assert evidence.upper_bound(0, 3000, 0.95) < THRESHOLD < evidence.upper_bound(0, 2900, 0.95)


@pytest.mark.parametrize(("events", "trials"), [(1, 1000), (7, 12000), (25, 1000), (400, 2000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_bounds_are_the_one_sided_ends_of_scipys_exact_interval(
    events: int, trials: int, confidence: float
) -> None:
    # A one-sided bound at c is one end of the two-sided exact interval at 2c - 1.
    interval = stats.binomtest(events, trials).proportion_ci(
        confidence_level=2 * confidence - 1, method="exact"
    )
    assert evidence.upper_bound(events, trials, confidence) == pytest.approx(interval.high, rel=1e-9)
    assert evidence.lower_bound(events, trials, confidence) == pytest.approx(interval.low, rel=1e-9)


def test_bounds_at_the_edges() -> None:
    assert evidence.lower_bound(0, 1000, 0.95) == 0.0
    assert evidence.upper_bound(1000, 1000, 0.95) == 1.0
    assert evidence.upper_bound(0, 0, 0.95) == 1.0 and evidence.lower_bound(0, 0, 0.95) == 0.0
    with pytest.raises(ValueError, match="confidence"):
        evidence.upper_bound(1, 10, 1.0)


@given(
    events=st.integers(min_value=0, max_value=60),
    extra=st.integers(min_value=0, max_value=20_000),
    scale=st.integers(min_value=1, max_value=20),
)
def test_a_larger_sample_at_the_same_rate_never_weakens_a_confident_verdict(
    events: int, extra: int, scale: int
) -> None:
    trials = events + 100 + extra
    small_upper = evidence.upper_bound(events, trials, 0.95)
    small_lower = evidence.lower_bound(events, trials, 0.95)
    large_upper = evidence.upper_bound(events * scale, trials * scale, 0.95)
    large_lower = evidence.lower_bound(events * scale, trials * scale, 0.95)
    # Same observed rate, more evidence: the interval only narrows, so "below" and "above" stay proven.
    assert large_upper <= small_upper + 1e-12
    assert large_lower >= small_lower - 1e-12


# ---------------------------------------------------------------- percentiles
def test_a_p99_needs_far_more_invocations_than_a_p95() -> None:
    assert evidence.percentile_min_samples(95) == 200
    assert evidence.percentile_min_samples(99) == 1000
    assert evidence.percentile_min_samples(50) == 20
    with pytest.raises(ValueError):
        evidence.percentile_min_samples(100)


# ---------------------------------------------------------------- the sequential test
CUMULATIVE_BUDGET = 0.05 * (1 - evidence.RECENT_SHARE)


def _simulated_false_breaches(looks: int, per_look: int, rate: float, confidence: float, soaks: int) -> float:
    """Share of simulated soaks at `rate` that either test ever calls a breach (the cumulative SPRT, or the
    latest one or two periods), counted independently of the calibration: numpy binomials, each look's
    limits asked afresh, the recent windows' limit found by scanning counts."""
    rng = np.random.default_rng(7)
    per_period = rng.binomial(per_look, rate, size=(soaks, looks))
    counts = per_period.cumsum(axis=1)
    level = evidence.recent_confidence(confidence, looks=looks, windows=2)

    def recent_limit(trials: int) -> int:
        return next(
            k
            for k in range(trials + 1)
            if evidence.recent_breach(k, trials, threshold=THRESHOLD, level=level)
        )

    one, two = recent_limit(per_look), recent_limit(2 * per_look)
    breached = np.zeros(soaks, dtype=bool)
    for j in range(looks):
        trials = per_look * (j + 1)
        test = evidence.breach_test(
            0.0, trials, threshold=THRESHOLD, confidence=confidence, looks=looks, look=j + 1
        )
        breached |= counts[:, j] >= evidence.breach_count(trials, test.boundary, THRESHOLD)
        breached |= per_period[:, j] >= one
        if j:
            breached |= per_period[:, j] + per_period[:, j - 1] >= two
    return float(breached.mean())


@pytest.mark.parametrize(("looks", "per_look"), [(12, 1000), (12, 500), (4, 2000), (1, 3000)])
def test_a_canary_exactly_at_the_threshold_is_called_a_breach_at_most_one_time_in_twenty(
    looks: int, per_look: int
) -> None:
    share = _simulated_false_breaches(looks, per_look, THRESHOLD, 0.95, soaks=40_000)
    # 40,000 soaks: the standard error at 5% is 0.11 points.
    assert share <= 0.05 + 0.004


def test_the_calibrated_boundary_spends_its_error_budget_rather_than_wasting_it() -> None:
    # Ville's bound log(1/alpha) is valid for any number of looks but slow; calibration for 12 looks must
    # be strictly lower, and lowering it further must exceed the cumulative test's budget.
    boundary = evidence.breach_test(0, 1000, threshold=THRESHOLD, confidence=0.95, looks=12, look=1).boundary
    assert boundary < math.log(1 / CUMULATIVE_BUDGET)
    looser = boundary - 0.2
    counts_now = [evidence.breach_count(1000 * j, boundary, THRESHOLD) for j in range(1, 13)]
    counts_looser = [evidence.breach_count(1000 * j, looser, THRESHOLD) for j in range(1, 13)]
    assert counts_looser != counts_now
    assert evidence._crossing_probability(12, 1000, THRESHOLD, looser) > CUMULATIVE_BUDGET
    assert evidence._crossing_probability(12, 1000, THRESHOLD, boundary) <= CUMULATIVE_BUDGET


def test_a_ten_times_breach_is_proven_by_one_period_of_a_thousand_invocations() -> None:
    test = evidence.breach_test(10, 1000, threshold=THRESHOLD, confidence=0.95, looks=12, look=1)
    assert test.breached
    # ... and the fewest errors that prove it sit where the test says.
    limit = evidence.breach_count(1000, test.boundary, THRESHOLD)
    assert evidence.breach_test(limit, 1000, threshold=THRESHOLD, confidence=0.95, looks=12, look=1).breached
    assert not evidence.breach_test(
        limit - 1, 1000, threshold=THRESHOLD, confidence=0.95, looks=12, look=1
    ).breached


def test_large_expected_counts_fall_back_to_villes_bound() -> None:
    # Cache misses: 200 a period at the threshold, far past what the recursion is used for.
    test = evidence.breach_test(200, 1000, threshold=0.2, confidence=0.95, looks=12, look=1)
    assert test.boundary == pytest.approx(math.log(1 / CUMULATIVE_BUDGET))


# ---------------------------------------------------------------- what a soak can prove
def test_invocations_to_prove_below_is_where_the_bound_first_reaches_the_threshold() -> None:
    needed = evidence.invocations_to_prove_below(0.0005, THRESHOLD, 0.95)
    assert needed is not None
    assert evidence.upper_bound(0.0005 * needed, needed, 0.95) <= THRESHOLD
    assert evidence.upper_bound(0.0005 * needed * 0.99, needed * 0.99, 0.95) > THRESHOLD
    assert evidence.invocations_to_prove_below(THRESHOLD, THRESHOLD, 0.95) is None


def test_detectable_rate_is_caught_with_the_confidence_asked_and_a_smaller_one_is_not() -> None:
    trials, looks = 12_000, 12
    rate = evidence.detectable_rate(trials, threshold=THRESHOLD, confidence=0.95, looks=looks)
    assert rate is not None and THRESHOLD < rate < 5 * THRESHOLD
    boundary = evidence.breach_test(0, trials, threshold=THRESHOLD, confidence=0.95, looks=looks, look=looks)
    needed = evidence.breach_count(trials, boundary.boundary, THRESHOLD)
    assert stats.poisson.sf(needed - 1, rate * trials) >= 0.95
    assert stats.poisson.sf(needed - 1, rate * 0.97 * trials) < 0.95
    # Ten times the traffic tells a much smaller rate from the threshold.
    tenfold = evidence.detectable_rate(trials * 10, threshold=THRESHOLD, confidence=0.95, looks=looks)
    assert tenfold is not None and tenfold < rate
