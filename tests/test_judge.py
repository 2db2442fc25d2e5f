"""The threshold judge: each metric at, just under and just over its threshold; traffic floor; statistics."""

from __future__ import annotations

from typing import Any

import pytest

from bot.judge import MetricVerdict, Outcome, PeriodVerdict, compare_series, judge_period
from bot.model import Thresholds
from tests.support.canary_core import T0, period, version

SEED = Thresholds()  # the seed runbook's table
ALL_KEYS = ["error_rate", "p95_ms", "p99_ms", "cache_hit_rate", "cache_miss_p95_ms"]


def judge(thresholds: Thresholds = SEED, *, min_invocations: int = 200, **canary: Any) -> PeriodVerdict:
    """Judge one period in which the canary has healthy figures except those given."""
    return judge_period(
        period(T0, canary=version("42", **canary)), thresholds, min_invocations=min_invocations
    )


def metric(verdict: PeriodVerdict, key: str) -> MetricVerdict:
    (found,) = [m for m in verdict.metrics if m.metric == key]
    return found


# (metric key, canary figures, expected outcome). 10,000 invocations so error counts give exact rates.
BOUNDARIES = [
    ("error_rate", {"invocations": 10_000, "errors": 10}, Outcome.PASS),  # 0.1%: at
    ("error_rate", {"invocations": 10_000, "errors": 9}, Outcome.PASS),  # 0.09%: under
    ("error_rate", {"invocations": 10_000, "errors": 11}, Outcome.FAIL),  # 0.11%: over
    ("p95_ms", {"p95_ms": 100.0}, Outcome.PASS),
    ("p95_ms", {"p95_ms": 99.9}, Outcome.PASS),
    ("p95_ms", {"p95_ms": 100.1}, Outcome.FAIL),
    ("p99_ms", {"p99_ms": 300.0}, Outcome.PASS),
    ("p99_ms", {"p99_ms": 299.9}, Outcome.PASS),
    ("p99_ms", {"p99_ms": 300.1}, Outcome.FAIL),
    ("cache_hit_rate", {"cache_hits": 800, "cache_misses": 200}, Outcome.PASS),  # 80%: at
    ("cache_hit_rate", {"cache_hits": 799, "cache_misses": 201}, Outcome.FAIL),  # 79.9%: under fails
    ("cache_hit_rate", {"cache_hits": 801, "cache_misses": 199}, Outcome.PASS),  # 80.1%: over
    ("cache_miss_p95_ms", {"cache_miss_p95_ms": 300.0}, Outcome.PASS),
    ("cache_miss_p95_ms", {"cache_miss_p95_ms": 299.9}, Outcome.PASS),
    ("cache_miss_p95_ms", {"cache_miss_p95_ms": 300.1}, Outcome.FAIL),
]


@pytest.mark.parametrize(("key", "figures", "expected"), BOUNDARIES)
def test_each_metric_fails_only_beyond_its_threshold(
    key: str, figures: dict[str, Any], expected: Outcome
) -> None:
    verdict = judge(**figures)
    assert metric(verdict, key).outcome is expected
    assert verdict.outcome is expected  # every other metric is healthy
    others = [m.outcome for m in verdict.metrics if m.metric != key]
    assert others == [Outcome.PASS] * 4


def test_metric_verdicts_carry_labels_units_and_both_versions() -> None:
    verdict = judge(p95_ms=42.0)
    assert [m.metric for m in verdict.metrics] == ALL_KEYS
    assert [m.label for m in verdict.metrics] == ["errors", "p95", "p99", "cache hit", "cache-miss p95"]
    assert [m.unit for m in verdict.metrics] == ["%", "ms", "ms", "%", "ms"]
    assert [m.comparison for m in verdict.metrics] == ["max", "max", "max", "min", "max"]
    p95 = metric(verdict, "p95_ms")
    assert (p95.canary, p95.stable, p95.threshold) == (42.0, 42.0, 100.0)


@pytest.mark.parametrize(
    ("figures", "reason"),
    [
        ({"invocations": 1000, "errors": 25}, "error rate 2.5% > 0.1%"),
        ({"p95_ms": 140.0}, "p95 140 ms > 100 ms"),
        ({"cache_hits": 72, "cache_misses": 28}, "cache hit rate 72% < 80%"),
        ({"cache_miss_p95_ms": 350.0}, "cache-miss p95 350 ms > 300 ms"),
        ({"p95_ms": 100.04}, "p95 100.04 ms > 100 ms"),  # more digits rather than "100 ms > 100 ms"
    ],
)
def test_failure_reason_names_metric_value_and_threshold(figures: dict[str, Any], reason: str) -> None:
    verdict = judge(**figures)
    assert (verdict.outcome, verdict.reason) == (Outcome.FAIL, reason)


def test_reason_is_the_first_failing_metric_and_all_failures_are_listed() -> None:
    verdict = judge(invocations=1000, errors=25, p99_ms=900.0)
    assert verdict.reason == "error rate 2.5% > 0.1%"
    assert [m.metric for m in verdict.failing] == ["error_rate", "p99_ms"]


def test_metric_set_to_none_is_not_judged() -> None:
    verdict = judge(Thresholds(p99_ms=None, cache_hit_rate=None), p99_ms=900.0, cache_hits=1, cache_misses=99)
    assert [m.metric for m in verdict.metrics] == ["error_rate", "p95_ms", "cache_miss_p95_ms"]
    assert verdict.outcome is Outcome.PASS


def test_metric_without_datapoint_is_no_data_not_pass() -> None:
    verdict = judge(cache_hits=None, cache_misses=None, cache_miss_p95_ms=None)
    assert metric(verdict, "cache_hit_rate").outcome is Outcome.NO_DATA
    assert metric(verdict, "cache_miss_p95_ms").outcome is Outcome.NO_DATA
    assert verdict.outcome is Outcome.PASS  # the metrics with data passed


def test_period_with_no_datapoint_at_all_is_no_data() -> None:
    verdict = judge(
        min_invocations=0,
        invocations=0,
        p95_ms=None,
        p99_ms=None,
        cache_hits=None,
        cache_misses=None,
        cache_miss_p95_ms=None,
    )
    assert verdict.outcome is Outcome.NO_DATA
    assert {m.outcome for m in verdict.metrics} == {Outcome.NO_DATA}


# ---------------------------------------------------------------- traffic floor
@pytest.mark.parametrize(
    ("invocations", "expected"), [(199, Outcome.NO_DATA), (200, Outcome.PASS), (201, Outcome.PASS)]
)
def test_min_invocations_boundary(invocations: int, expected: Outcome) -> None:
    verdict = judge(invocations=invocations)
    assert (verdict.outcome, verdict.canary_invocations) == (expected, invocations)


def test_too_little_traffic_is_no_data_even_when_figures_look_bad() -> None:
    verdict = judge(invocations=142, errors=40, p95_ms=900.0)
    assert (verdict.outcome, verdict.reason) == (Outcome.NO_DATA, "142 invocations < 200")
    assert {m.outcome for m in verdict.metrics} == {Outcome.NO_DATA}
    assert metric(verdict, "p95_ms").canary == 900.0  # figures kept for the report


def test_too_little_traffic_is_never_pass_even_when_figures_look_good() -> None:
    assert judge(invocations=150).outcome is Outcome.NO_DATA


# ---------------------------------------------------------------- relative to stable
def judge_pair(thresholds: Thresholds, canary: dict[str, Any], stable: dict[str, Any]) -> PeriodVerdict:
    figures = period(T0, canary=version("42", **canary), stable=version("41", **stable))
    return judge_period(figures, thresholds, min_invocations=200)


INCREASE_ONLY = Thresholds(error_rate=None, max_error_rate_increase=0.25)
RATIO_ONLY = Thresholds(p95_ms=None, max_p95_ratio=1.5)


@pytest.mark.parametrize(
    ("canary_errors", "expected"),
    [(5_000, Outcome.PASS), (4_999, Outcome.PASS), (5_001, Outcome.FAIL)],  # 50% vs 25%: +25% at threshold
)
def test_error_rate_increase_over_stable(canary_errors: int, expected: Outcome) -> None:
    verdict = judge_pair(
        INCREASE_ONLY,
        {"invocations": 10_000, "errors": canary_errors},
        {"invocations": 10_000, "errors": 2_500},
    )
    increase = metric(verdict, "error_rate_increase")
    assert (increase.outcome, increase.unit, increase.stable) == (expected, "%", 0.25)
    assert increase.value == pytest.approx(canary_errors / 10_000 - 0.25)


@pytest.mark.parametrize(
    ("canary_p95", "expected"), [(150.0, Outcome.PASS), (149.0, Outcome.PASS), (151.0, Outcome.FAIL)]
)
def test_p95_ratio_to_stable(canary_p95: float, expected: Outcome) -> None:
    verdict = judge_pair(RATIO_ONLY, {"p95_ms": canary_p95}, {"p95_ms": 100.0})
    ratio = metric(verdict, "p95_ratio")
    assert (ratio.outcome, ratio.unit, ratio.label) == (expected, "x", "p95 vs stable")
    assert verdict.outcome is expected


def test_p95_ratio_reason_reads_as_a_ratio() -> None:
    verdict = judge_pair(RATIO_ONLY, {"p95_ms": 180.0}, {"p95_ms": 100.0})
    assert verdict.reason == "p95 vs stable 1.8x > 1.5x"


@pytest.mark.parametrize("stable_p95", [None, 0.0])
def test_p95_ratio_without_stable_baseline_is_no_data(stable_p95: float | None) -> None:
    verdict = judge_pair(RATIO_ONLY, {"p95_ms": 500.0}, {"p95_ms": stable_p95})
    assert metric(verdict, "p95_ratio").outcome is Outcome.NO_DATA


def test_error_rate_increase_without_stable_traffic_is_no_data() -> None:
    verdict = judge_pair(INCREASE_ONLY, {"errors": 900}, {"invocations": 0})
    assert metric(verdict, "error_rate_increase").outcome is Outcome.NO_DATA


def test_relative_thresholds_are_off_by_default() -> None:
    assert [m.metric for m in judge().metrics] == ALL_KEYS


# ---------------------------------------------------------------- Mann-Whitney
STABLE_MS = [100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0]


def shifted(series: list[float], by: float) -> list[float]:
    return [x + by for x in series]


def test_clearly_worse_canary_series_fails() -> None:
    assert compare_series(shifted(STABLE_MS, 40), STABLE_MS, confidence=0.98) is Outcome.FAIL


def test_same_distribution_passes() -> None:
    interleaved = [100.5, 101.5, 102.5, 103.5, 104.5, 105.5, 106.5, 107.5]
    assert compare_series(STABLE_MS, STABLE_MS, confidence=0.98) is Outcome.PASS
    assert compare_series(interleaved, STABLE_MS, confidence=0.98) is Outcome.PASS


def test_better_canary_passes_one_sided_test() -> None:
    assert compare_series(shifted(STABLE_MS, -40), STABLE_MS, confidence=0.98) is Outcome.PASS


def test_confidence_sets_how_much_evidence_fails() -> None:
    slightly_worse = shifted(STABLE_MS, 2)  # one-sided p ≈ 0.077
    assert compare_series(slightly_worse, STABLE_MS, confidence=0.98) is Outcome.PASS
    assert compare_series(slightly_worse, STABLE_MS, confidence=0.90) is Outcome.FAIL


def test_lower_is_worse_for_hit_rates() -> None:
    stable_hits = [0.90, 0.91, 0.92, 0.93, 0.94, 0.95]
    lower = [x - 0.3 for x in stable_hits]
    assert compare_series(lower, stable_hits, confidence=0.98, worse="lower") is Outcome.FAIL
    assert compare_series(lower, stable_hits, confidence=0.98) is Outcome.PASS


@pytest.mark.parametrize(("canary_points", "stable_points"), [(4, 8), (8, 4), (0, 0)])
def test_fewer_than_five_points_is_no_data(canary_points: int, stable_points: int) -> None:
    worse = shifted(STABLE_MS, 40)[:canary_points]
    assert compare_series(worse, STABLE_MS[:stable_points], confidence=0.98) is Outcome.NO_DATA


def test_missing_points_do_not_count_towards_five() -> None:
    nan = float("nan")
    worse = [140.0, 141.0, 142.0, 143.0, nan, nan]
    assert compare_series(worse, STABLE_MS, confidence=0.98) is Outcome.NO_DATA
    assert compare_series([*worse, 144.0], STABLE_MS, confidence=0.98) is Outcome.FAIL


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5])
def test_confidence_outside_open_interval_is_rejected(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        compare_series(STABLE_MS, STABLE_MS, confidence=confidence)


@pytest.mark.parametrize(
    ("figures", "key", "text"),
    [
        ({"p95_ms": 42.0}, "p95_ms", "p95 42 ms ≤ 100 ms"),
        ({"cache_hits": 94, "cache_misses": 6}, "cache_hit_rate", "cache hit rate 94% ≥ 80%"),
        ({"p99_ms": None}, "p99_ms", "p99 no data"),
        ({"invocations": 100, "errors": 4}, "error_rate", "error rate 4% > 0.1%"),  # NO_DATA, figures stated
    ],
)
def test_describe_states_the_figures_against_the_threshold(
    figures: dict[str, Any], key: str, text: str
) -> None:
    assert metric(judge(**figures), key).describe() == text
