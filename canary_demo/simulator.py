"""Production traffic, compressed: ONE model of how each version behaves, shared by the demo, tests and bench.

Each simulated minute (or stretch of minutes) splits a volume of invocations between the versions at the
alias weights read from the traffic port, so a rollback or a step shows in the traffic at once. Every version
has its own `Behaviour`: error rate, latency (p50/p95/p99), cache hit rate and cache-miss p95. A `Mode` turns a
behaviour and a volume into figures:

* `Steady`: exactly the expected figures every minute (fractional counts, the behaviour's own percentiles),
  so a test can count on them;
* `Sampled`: seeded random traffic: jittered volume, binomial errors and cache hits (a normal approximation
  from 1,000 requests on, or exact numpy draws), log-normal latencies through the behaviour's p50 and p95
  (and its p99, when one is given).

What each version served goes to pluggable sinks: `MetricsSink` records it in FakeMetrics (what the soak judge
reads in tests, bench and demo); canary_demo.cloudwatch_sinks writes CloudWatch datapoints and log lines into
moto and evaluates the canary alarms as CloudWatch would.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from bot.ports import TrafficPort
from canary_demo.fakes.metrics import FakeMetrics

SAMPLES_PER_MINUTE = 120  # latency samples kept per version-minute (Sampled): enough for a stable p99
MISS_SAMPLES = 60  # cache-miss latency samples kept per version-minute (Sampled)
_Z95, _Z99 = 1.645, 2.326  # standard normal quantiles


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one version behaves. Rates are fractions, latencies ms. The defaults are a healthy Redis-backed
    version (0.02% errors, p95 42 ms, 94% cache hits) with figures that hold exactly in `Steady` mode."""

    error_rate: float = 0.0002
    p50_ms: float | None = None  # None: half the p95
    p95_ms: float = 42.0
    p99_ms: float | None = 95.0  # None: where the log-normal through p50 and p95 puts it
    cache_hit_rate: float | None = 0.94  # None: the version has no shared cache (no cache traffic at all)
    cache_miss_p95_ms: float = 120.0  # its median is half of it
    error_message: str = "Internal error"  # what the error log lines say (moto logs)

    @property
    def median_ms(self) -> float:
        return self.p50_ms if self.p50_ms is not None else self.p95_ms / 2

    @property
    def sigma(self) -> float:
        """The spread of the log-normal with this median and p95."""
        return _sigma(self.median_ms, self.p95_ms, _Z95)

    @property
    def tail_ms(self) -> float:
        if self.p99_ms is not None:
            return self.p99_ms
        return self.median_ms * math.exp(_Z99 * self.sigma)

    @property
    def cache_miss_median_ms(self) -> float:
        return self.cache_miss_p95_ms / 2

    def latency(self, rng: random.Random) -> float:
        """One request's duration: log-normal through p50 and p95; above the p95, a steeper (or gentler)
        log-normal through the p99 when one is given."""
        z = rng.normalvariate(0.0, 1.0)
        if z > _Z95 and self.p99_ms is not None and self.p99_ms > self.p95_ms:
            tail = _sigma(self.p95_ms, self.p99_ms, _Z99 - _Z95)
            return math.exp(math.log(self.p95_ms) + (z - _Z95) * tail)
        return math.exp(math.log(self.median_ms) + z * self.sigma)

    def cache_miss_latency(self, rng: random.Random) -> float:
        median = self.cache_miss_median_ms
        return rng.lognormvariate(math.log(median), _sigma(median, self.cache_miss_p95_ms, _Z95))


def _sigma(low: float, high: float, z: float) -> float:
    return max(math.log(high / low) / z, 0.01)


HEALTHY = (
    Behaviour()
)  # the tests' and bench's steady version: p50 21, p95 42, p99 95 ms, cache-miss p95 120 ms
REDIS = Behaviour(p50_ms=18.0, p99_ms=None, cache_miss_p95_ms=170.0)  # the demo's v2 (Redis cache)
IN_MEMORY_CACHE = replace(REDIS, p50_ms=24.0, p95_ms=55.0, cache_hit_rate=None)  # the demo's v1: no Redis


@dataclass(frozen=True, slots=True)
class Figures:
    """What a version did in a stretch of traffic, as a mode drew it."""

    invocations: float
    errors: float
    durations_ms: tuple[float, ...] = ()  # sampled durations (Sampled)
    p50_ms: float | None = None  # exact percentiles (Steady)
    p95_ms: float | None = None
    p99_ms: float | None = None
    cache_hits: int = 0
    cache_misses: int = 0
    cache_miss_latencies: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Served:
    """What one version served through function:alias over [at, at + minutes)."""

    function: str
    alias: str
    version: str
    at: datetime
    minutes: int
    behaviour: Behaviour
    figures: Figures


class Sink(Protocol):
    def served(self, s: Served) -> None: ...


class Mode(Protocol):
    def draw(self, expected: float, b: Behaviour) -> Figures | None:
        """What `expected` invocations of a version behaving as `b` did; None when none were served."""
        ...


class Steady:
    """The expected figures exactly: fractional invocations and errors, the behaviour's own percentiles,
    cache hits and misses rounded, the cache-miss p95 as the one miss latency."""

    def draw(self, expected: float, b: Behaviour) -> Figures | None:
        if expected <= 0:
            return None
        hits = misses = 0
        if b.cache_hit_rate is not None:
            hits = round(expected * b.cache_hit_rate)
            misses = round(expected) - hits
        return Figures(
            invocations=expected,
            errors=expected * b.error_rate,
            p50_ms=b.median_ms,
            p95_ms=b.p95_ms,
            p99_ms=b.tail_ms,
            cache_hits=hits,
            cache_misses=misses,
            cache_miss_latencies=(b.cache_miss_p95_ms,) if misses else (),
        )


class Sampled:
    """Seeded random traffic: the volume jittered ±10%, binomial errors and cache hits, log-normal latencies
    (SAMPLES_PER_MINUTE per version-stretch). Counts use a normal approximation from 1,000 requests on (fine
    for a demo); `exact_counts` draws them from numpy's binomial instead, which keeps the tail of rare errors
    (what the judge benchmark measures)."""

    def __init__(self, seed: int, *, exact_counts: bool = False) -> None:
        self.rng = random.Random(seed)
        self._binomial: Callable[[int, float], int] = self._approximate
        if exact_counts:
            import numpy as np

            counts = np.random.default_rng(seed)
            self._binomial = lambda n, p: int(counts.binomial(n, min(max(p, 0.0), 1.0)))

    def draw(self, expected: float, b: Behaviour) -> Figures | None:
        rng = self.rng
        invocations = max(0, round(expected * rng.uniform(0.9, 1.1)))
        if invocations <= 0:
            return None
        errors = self.binomial(invocations, b.error_rate)
        durations = tuple(b.latency(rng) for _ in range(min(invocations, SAMPLES_PER_MINUTE)))
        hits = misses = 0
        if b.cache_hit_rate is not None:
            hits = self.binomial(invocations, b.cache_hit_rate)
            misses = invocations - hits
        latencies = tuple(b.cache_miss_latency(rng) for _ in range(min(misses, MISS_SAMPLES)))
        return Figures(
            invocations=invocations,
            errors=errors,
            durations_ms=durations,
            cache_hits=hits,
            cache_misses=misses,
            cache_miss_latencies=latencies,
        )

    def binomial(self, n: int, p: float) -> int:
        """How many of n requests did something with probability p."""
        return self._binomial(n, p) if n > 0 and p > 0 else 0

    def _approximate(self, n: int, p: float) -> int:
        if n < 1000:
            return sum(1 for _ in range(n) if self.rng.random() < p)
        mean = n * p
        return min(n, max(0, round(self.rng.gauss(mean, (mean * (1 - p)) ** 0.5))))


@dataclass
class TrafficModel:
    """The traffic of one function:alias: `per_minute` invocations split by the alias weights, each version
    behaving as `behaviours` says (`default` for any other), drawn by `mode`, handed to every sink."""

    traffic: TrafficPort
    function: str
    alias: str
    per_minute: float = 2000
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    default: Behaviour = HEALTHY
    mode: Mode = field(default_factory=Steady)
    sinks: list[Sink] = field(default_factory=list)

    def behave(self, version: str, **changes: Any) -> None:
        """Change how `version` behaves from the next minute on (e.g. error_rate=0.025)."""
        self.behaviours[version] = replace(self.behaviour(version), **changes)

    def behaviour(self, version: str) -> Behaviour:
        return self.behaviours.get(version, self.default)

    def minute(self, at: datetime, minutes: int = 1) -> dict[str, float]:
        """Serve [at, at + minutes) (recorded at `at`); returns the invocations per version."""
        alias = self.traffic.get_alias(self.function, self.alias)
        shares = {alias.version: 1 - sum(alias.weights.values()), **alias.weights}
        served: dict[str, float] = {}
        for version, share in shares.items():
            b = self.behaviour(version)
            figures = self.mode.draw(self.per_minute * minutes * share, b)
            if figures is None:
                continue
            s = Served(self.function, self.alias, version, at, minutes, b, figures)
            served[version] = figures.invocations
            for sink in self.sinks:
                sink.served(s)
        return served


@dataclass
class MetricsSink:
    """Records what each version served in FakeMetrics, where the soak judge reads it."""

    metrics: FakeMetrics

    def served(self, s: Served) -> None:
        f = s.figures
        self.metrics.record(
            s.function,
            s.alias,
            s.version,
            s.at,
            invocations=f.invocations,
            errors=f.errors,
            durations_ms=f.durations_ms,
            p50=f.p50_ms,
            p95=f.p95_ms,
            p99=f.p99_ms,
            cache_hits=f.cache_hits,
            cache_misses=f.cache_misses,
            cache_miss_latencies=f.cache_miss_latencies,
        )


def metrics_models(
    traffic: TrafficPort, metrics: FakeMetrics, targets: Iterable[tuple[str, str]], **kwargs: Any
) -> dict[str, TrafficModel]:
    """One Steady model per function:alias (keyed by function), all recording into `metrics`."""
    sink = MetricsSink(metrics)
    return {
        function: TrafficModel(traffic, function, alias, sinks=[sink], **kwargs)
        for function, alias in targets
    }
