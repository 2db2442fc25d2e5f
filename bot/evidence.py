"""How much a count proves: confidence bounds, a sequential breach test, and what a plan can detect.

Pure (figures in, numbers out; no I/O, no clock). The distributions come from scipy's special functions
rather than hand-written numerics: the exact binomial bounds are beta quantiles (`betaincinv`), the Poisson
tails are `pdtr`/`pdtrc`, and getting their tails right at 0, 1 or n events is what a well-kept library is
for. They are the very functions scipy.stats' beta and poisson evaluate, without importing scipy.stats
(over a second of the bot's start-up, and tens of MB resident: see bench/README.md). numpy and scipy are
imported on first use, not at import: the bot answers /healthz and acks Slack without them.

The judge asks two questions of a count (errors of invocations, cache misses of lookups):

* **Breach** — is the rate above the threshold? Asked after every period, so asked many times, and the
  chance that a canary *exactly at* the threshold is ever called a breach over the planned soak is kept
  under 1 - confidence, split in two:
  - over the step's cumulative counts (80% of the budget): a one-sided sequential probability ratio test
    (Wald's SPRT of p = threshold against p = `BREACH_RATIO` × threshold, never accepting early), its
    boundary calibrated by exact recursion over Poisson counts; Ville's inequality (boundary log(1/α)) is the
    fallback where the recursion would be large, and is valid for any number of looks;
  - over the recent windows (20%): the latest period and the latest `evaluation_periods`, each an exact
    one-sided test at a Bonferroni share, so a breach that starts mid-soak is not diluted by the healthy
    hour before it.
* **Pass** — is the rate below the threshold? Asked once, when the soak ends: the one-sided exact
  (Clopper-Pearson) upper bound at the configured confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# The alternative the sequential test is tuned to catch fastest: three times the threshold.
BREACH_RATIO = 3.0
# Beyond this many expected events at the threshold over the whole soak, calibrating by recursion costs
# more than it gains: the test uses Ville's bound log(1/alpha) instead (valid, a little slower to act).
MAX_CALIBRATED_EVENTS = 400.0
# A percentile is a figure only with this many invocations beyond it (p95: 200, p99: 1,000).
TAIL_SAMPLES = 10
# Share of the error budget (1 - confidence) spent on the recent windows (a breach that starts mid-soak);
# the rest goes to the sequential test over the whole step. The two add up (union bound).
RECENT_SHARE = 0.2


# ---------------------------------------------------------------- distributions
@lru_cache(maxsize=1)
def _special() -> Any:
    from scipy import special

    return special


@lru_cache(maxsize=1)
def _np() -> Any:
    import numpy

    return numpy


def _poisson_pmf(k: np.ndarray, mu: float) -> np.ndarray:
    """P(X = k), X ~ Poisson(mu): scipy.stats.poisson.pmf's own formula."""
    pmf: np.ndarray = _np().exp(_special().xlogy(k, mu) - _special().gammaln(k + 1) - mu)
    return pmf


def _poisson_sf(k: int, mu: float) -> float:
    """P(X > k), X ~ Poisson(mu); 1 below the support, as scipy.stats.poisson.sf."""
    return 1.0 if k < 0 else float(_special().pdtrc(k, mu))


# ---------------------------------------------------------------- bounds
# Cached: every tick judges the step's periods again, on the same cumulative counts.
@lru_cache(maxsize=8192)
def upper_bound(events: float, trials: float, confidence: float) -> float:
    """One-sided exact (Clopper-Pearson) upper confidence bound of a rate: 1.0 with no trials."""
    _check(confidence)
    if trials <= 0:
        return 1.0
    k = min(max(events, 0.0), trials)
    if k >= trials:
        return 1.0
    return float(_special().betaincinv(k + 1, trials - k, confidence))


@lru_cache(maxsize=8192)
def lower_bound(events: float, trials: float, confidence: float) -> float:
    """One-sided exact (Clopper-Pearson) lower confidence bound of a rate: 0.0 with no events."""
    _check(confidence)
    if trials <= 0:
        return 0.0
    k = min(max(events, 0.0), trials)
    if k <= 0:
        return 0.0
    return float(_special().betaincinv(k, trials - k + 1, 1 - confidence))


def percentile_min_samples(percentile: float) -> int:
    """Invocations a period needs before its p`percentile` means anything: TAIL_SAMPLES beyond it.

    >>> percentile_min_samples(95), percentile_min_samples(99)
    (200, 1000)
    """
    if not 0 < percentile < 100:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    return math.ceil(round(TAIL_SAMPLES * 100 / (100 - percentile), 9))


# ---------------------------------------------------------------- the sequential breach test
@dataclass(frozen=True, slots=True)
class BreachTest:
    """The SPRT's state at one look: its log-likelihood ratio and the boundary it must reach."""

    llr: float
    boundary: float

    @property
    def breached(self) -> bool:
        return self.llr >= self.boundary


def log_likelihood_ratio(events: float, trials: float, threshold: float) -> float:
    """log P(counts | rate = BREACH_RATIO × threshold) / P(counts | rate = threshold), binomial."""
    p0, p1 = threshold, min(threshold * BREACH_RATIO, 1 - 1e-9)
    k = min(max(events, 0.0), trials)
    return k * math.log(p1 / p0) + (trials - k) * math.log((1 - p1) / (1 - p0))


def breach_test(
    events: float, trials: float, *, threshold: float, confidence: float, looks: int, look: int
) -> BreachTest:
    """The sequential test at look `look` (1-based) of `looks` planned, on the cumulative counts so far.

    The boundary assumes the remaining looks see as many trials each as the looks so far did on average;
    it depends only on counts up to this look, so a look's verdict never changes afterwards.
    """
    _check(confidence)
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be a rate in (0, 1), got {threshold}")
    looks = max(looks, look, 1)
    per_look = trials / max(look, 1)
    boundary = _calibrated_boundary(looks, round(per_look), threshold, _cumulative_alpha(confidence))
    return BreachTest(llr=log_likelihood_ratio(events, trials, threshold), boundary=boundary)


def recent_confidence(confidence: float, *, looks: int, windows: int) -> float:
    """The level of each fixed-sample test of a recent window (the latest period, the latest few): their
    share of the error budget split evenly over every look and window (Bonferroni)."""
    _check(confidence)
    return 1 - (1 - confidence) * RECENT_SHARE / (max(looks, 1) * max(windows, 1))


def recent_breach(events: float, trials: float, *, threshold: float, level: float) -> bool:
    """Is a recent window's rate above `threshold` by an exact one-sided test at `level`?"""
    return trials > 0 and lower_bound(events, trials, level) > threshold


def _cumulative_alpha(confidence: float) -> float:
    return (1 - confidence) * (1 - RECENT_SHARE)


def breach_count(trials: float, boundary: float, threshold: float) -> int:
    """The fewest events among `trials` that reach `boundary` (how many errors would prove a breach)."""
    p0, p1 = threshold, min(threshold * BREACH_RATIO, 1 - 1e-9)
    per_event = math.log(p1 / p0) - math.log((1 - p1) / (1 - p0))
    base = trials * math.log((1 - p1) / (1 - p0))
    return max(0, math.ceil(round((boundary - base) / per_event, 9)))


def _calibrated_boundary(looks: int, per_look: int, threshold: float, alpha: float) -> float:
    """The smallest boundary whose chance of ever being reached by a rate at the threshold is ≤ alpha.

    Looks are taken as equal, of `per_look` trials, rounded to two significant digits: the boundary barely
    moves with a few invocations more or less, and the rounding lets ticks share the cached answer.
    """
    return _calibrated(looks, _two_digits(per_look), threshold, alpha)


def _two_digits(n: int) -> int:
    if n < 100:
        return max(n, 0)
    scale = int(10 ** (len(str(n)) - 2))
    return round(n / scale) * scale


@lru_cache(maxsize=4096)
def _calibrated(looks: int, per_look: int, threshold: float, alpha: float) -> float:
    ville = math.log(1 / alpha)
    if per_look <= 0 or per_look * looks * threshold > MAX_CALIBRATED_EVENTS:
        return ville
    # Each look's events: Poisson(per_look × threshold), up to the largest limit any boundary below
    # Ville's can set (for small rates the binomial's twin; its wider tail only makes the boundary cautious).
    increment = _poisson_pmf(
        _np().arange(breach_count(per_look * looks, ville, threshold) + 1), per_look * threshold
    )
    low, high = 0.0, ville
    if _crossing_probability(looks, per_look, threshold, low, increment) <= alpha:
        return low
    for _ in range(30):
        middle = (low + high) / 2
        if _crossing_probability(looks, per_look, threshold, middle, increment) <= alpha:
            high = middle
        else:
            low = middle
    return high


def _crossing_probability(
    looks: int,
    per_look: int,
    threshold: float,
    boundary: float,
    increment: np.ndarray | None = None,
) -> float:
    """P(the SPRT reaches `boundary` at some look | rate = threshold), looks of `per_look` trials each:
    exact recursion over the cumulative event count."""
    limits = [breach_count(per_look * j, boundary, threshold) for j in range(1, looks + 1)]
    size = max(limits) + 1
    if increment is None or len(increment) < size:
        increment = _poisson_pmf(_np().arange(size), per_look * threshold)
    step = increment[:size]
    alive = _np().zeros(size)
    alive[0] = 1.0
    for limit in limits:
        # Counts at or past a look's limit have crossed; so has every count beyond `size` (cut off here).
        alive = _np().convolve(alive, step)[:size]
        alive[limit:] = 0.0
    return min(1.0, max(0.0, 1.0 - float(alive.sum())))


# ---------------------------------------------------------------- what a soak can prove
def invocations_to_prove_below(rate: float, threshold: float, confidence: float) -> float | None:
    """Invocations needed before a canary erring at `rate` shows 'below threshold' with `confidence`
    (expected counts); None when it never will (rate at or above the threshold)."""
    _check(confidence)
    if rate >= threshold:
        return None
    low, high = 1.0, 1.0
    while upper_bound(rate * high, high, confidence) > threshold:
        high *= 2
        if high > 1e12:
            return None
    while high - low > max(1.0, high * 1e-4):
        middle = (low + high) / 2
        if upper_bound(rate * middle, middle, confidence) > threshold:
            low = middle
        else:
            high = middle
    return high


def detectable_rate(trials: float, *, threshold: float, confidence: float, looks: int) -> float | None:
    """The smallest rate a soak of `trials` invocations (over `looks` periods) rolls back with probability
    ≥ confidence by its end; None when no rate below 100% would be caught."""
    _check(confidence)
    if trials <= 0:
        return None
    boundary = _calibrated_boundary(
        max(looks, 1), round(trials / max(looks, 1)), threshold, _cumulative_alpha(confidence)
    )
    needed = breach_count(trials, boundary, threshold)
    if needed > trials:
        return None

    def caught(rate: float) -> bool:
        return _poisson_sf(needed - 1, rate * trials) >= confidence

    low, high = threshold, 1.0
    if not caught(high):
        return None
    for _ in range(50):
        middle = (low + high) / 2
        if caught(middle):
            high = middle
        else:
            low = middle
    return high


def passable_rate(trials: float, *, threshold: float, confidence: float) -> float | None:
    """The largest rate a soak of `trials` invocations proves below `threshold` with probability ≥ confidence
    (its errors Poisson); None when not even a canary without errors would be."""
    _check(confidence)
    if trials <= 0 or upper_bound(0, trials, confidence) > threshold:
        return None
    most = 0
    while upper_bound(most + 1, trials, confidence) <= threshold:
        most += 1

    def passes(rate: float) -> bool:
        return float(_special().pdtr(most, rate * trials)) >= confidence

    low, high = 0.0, threshold
    for _ in range(50):
        middle = (low + high) / 2
        if passes(middle):
            low = middle
        else:
            high = middle
    return low


def _check(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
