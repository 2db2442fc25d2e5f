"""In-memory MetricsPort: tests and the demo record what each version did; fetch shapes it like CloudWatch.

Shaping rules shared with bot.aws.metrics.CloudWatchMetrics (the contract suite holds both to them):
one PeriodFigures per whole period of [start, end), oldest first; counts with nothing recorded are 0,
percentiles with nothing recorded are None; cache figures exist only for requests with a log group
(all None otherwise, or when the function's cache figures are made unavailable), and are 0/0 in a period
with no cache traffic.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.aws.metrics import period_index, period_starts
from bot.model import PeriodFigures, VersionFigures
from bot.ports import WindowRequest


@dataclass(frozen=True, slots=True)
class _Sample:
    at: datetime
    invocations: float
    errors: float
    throttles: float
    durations_ms: tuple[float, ...]
    p50: float | None
    p95: float | None
    p99: float | None
    cache_hits: int
    cache_misses: int
    cache_miss_latencies: tuple[float, ...]


class FakeMetrics:
    """MetricsPort double. `calls` counts fetch rounds; `requests` keeps what each round asked for."""

    def __init__(self) -> None:
        self._samples: dict[tuple[str, str, str], list[_Sample]] = defaultdict(list)
        self._cache_unavailable: set[str] = set()
        self._failure: Exception | None = None
        self._outage: Exception | None = None
        self.calls = 0
        self.requests: list[list[WindowRequest]] = []

    # -------------------------------------------------------------- arrange
    def record(
        self,
        function: str,
        alias: str,
        version: str,
        at: datetime,
        *,
        invocations: float = 0,
        errors: float = 0,
        throttles: float = 0,
        durations_ms: Iterable[float] = (),
        p50: float | None = None,
        p95: float | None = None,
        p99: float | None = None,
        cache_hits: int = 0,
        cache_misses: int = 0,
        cache_miss_latencies: Iterable[float] = (),
    ) -> None:
        """What `version` did through `function:alias` at `at` (aware). Durations and latencies in ms.

        Percentiles of a period come from an explicit p50/p95/p99 when one was recorded in it (the latest
        wins), else from all `durations_ms` recorded in it (nearest rank).
        """
        if at.tzinfo is None:
            raise ValueError("`at` must be timezone-aware")
        self._samples[(function, alias, version)].append(
            _Sample(
                at,
                invocations,
                errors,
                throttles,
                tuple(durations_ms),
                p50,
                p95,
                p99,
                cache_hits,
                cache_misses,
                tuple(cache_miss_latencies),
            )
        )

    def make_cache_unavailable(self, function: str, unavailable: bool = True) -> None:
        """Simulate a Logs Insights query that fails or times out: cache figures read None."""
        if unavailable:
            self._cache_unavailable.add(function)
        else:
            self._cache_unavailable.discard(function)

    def fail_next(self, error: Exception) -> None:
        """The next fetch raises `error` (e.g. bot.ports.AwsFailure)."""
        self._failure = error

    def fail_always(self, error: Exception | None) -> None:
        """Every fetch raises `error` until called with None (an outage, not a blip)."""
        self._outage = error

    # -------------------------------------------------------------- MetricsPort
    def fetch(self, requests: Sequence[WindowRequest]) -> dict[str, list[PeriodFigures]]:
        self.calls += 1
        self.requests.append(list(requests))
        if self._failure is not None:
            error, self._failure = self._failure, None
            raise error
        if self._outage is not None:
            raise self._outage
        ids = [r.deployment_id for r in requests]
        if len(set(ids)) != len(ids):
            raise ValueError(f"each deployment may be requested once per round: {sorted(ids)}")
        return {r.deployment_id: self._periods(r) for r in requests}

    def _periods(self, request: WindowRequest) -> list[PeriodFigures]:
        starts = period_starts(request)
        step = timedelta(seconds=request.period_seconds)
        with_cache = request.log_group is not None and request.function not in self._cache_unavailable
        figures: dict[str, list[VersionFigures]] = {}
        for version in (request.canary_version, request.stable_version):
            buckets: list[list[_Sample]] = [[] for _ in starts]
            for sample in self._samples[(request.function, request.alias, version)]:
                slot = period_index(request, sample.at)
                if slot is not None:
                    buckets[slot].append(sample)
            figures[version] = [_aggregate(version, bucket, with_cache) for bucket in buckets]
        return [
            PeriodFigures(start=start, end=start + step, canary=canary, stable=stable)
            for start, canary, stable in zip(
                starts, figures[request.canary_version], figures[request.stable_version], strict=True
            )
        ]


def _aggregate(version: str, samples: Sequence[_Sample], with_cache: bool) -> VersionFigures:
    durations = [d for s in samples for d in s.durations_ms]
    latencies = [latency for s in samples for latency in s.cache_miss_latencies]

    def percentile(explicit: list[float | None], rank: float) -> float | None:
        given = [value for value in explicit if value is not None]
        return given[-1] if given else nearest_rank(durations, rank)

    return VersionFigures(
        version=version,
        invocations=float(sum(s.invocations for s in samples)),
        errors=float(sum(s.errors for s in samples)),
        throttles=float(sum(s.throttles for s in samples)),
        p50_ms=percentile([s.p50 for s in samples], 50),
        p95_ms=percentile([s.p95 for s in samples], 95),
        p99_ms=percentile([s.p99 for s in samples], 99),
        cache_hits=sum(s.cache_hits for s in samples) if with_cache else None,
        cache_misses=sum(s.cache_misses for s in samples) if with_cache else None,
        cache_miss_p95_ms=nearest_rank(latencies, 95) if with_cache else None,
    )


def nearest_rank(values: Sequence[float], rank: float) -> float | None:
    """The nearest-rank percentile (the smallest value with at least rank% of values at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]
