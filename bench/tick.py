"""Soak tick: the cost of SoakRunner.tick as live canaries add up, beside the metrics fetch it cannot avoid.

A policy lists 50 functions; for each size (1, 10, 50) that many of them are started through CanaryService
against a FakeTraffic holding all 50, with a file store in a temporary directory (WAL, as in production). Each
canary has one hour of per-minute FakeMetrics data (canary and stable), and the clock stands at the end of that
hour, mid-soak, so every timed tick judges 12 complete 5-minute periods per canary and decides CONTINUE: the
steady state a live canary spends most of its life in. One untimed tick first posts the due report and notes
the verdict; ticks at the same moment after it change nothing (the loop is idempotent).

Baseline: FakeMetrics.fetch alone for the very requests the tick sent. Our part is the tick minus the time it
spent inside fetch (timed inside the same tick): storing the figures, judging, deciding, noting.
Targets: judge+decide ≤ 10× the fetch; the 50-canary tick ≤ 60× the 1-canary tick (roughly linear); and
exactly one metrics fetch per tick whatever the number of canaries (one GetMetricData round for all).
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from bench.harness import Check, median, ms
from bot.actors import cli_actor
from bot.clock import ManualClock
from bot.composition import soak_runner
from bot.config import Policy
from bot.judge import DecisionKind
from bot.model import Deployment, PeriodFigures, Thresholds
from bot.ports import StorePort, TrafficPort, WindowRequest
from bot.service import CanaryService
from bot.soak import SoakRunner
from bot.store import SqliteStore, open_store
from bot.verbs import StartArgs
from canary_demo.fakes.metrics import FakeMetrics
from canary_demo.fakes.traffic import FakeTraffic
from canary_demo.simulator import metrics_models

FUNCTIONS = 500
SIZES = (1, 50, 500)
ALIAS = "production"
DATA = timedelta(hours=1)
PER_MINUTE = 2000  # invocations of the alias per minute, split by the canary's weight
MAX_OVERHEAD_RATIO = 10.0
LINEAR_SLACK = 1.2  # n canaries may cost up to 1.2 × n times one: 60× for 50
CPU_PER_CANARY_MS = 0.2  # CPU of one tick per canary, the fetch excepted (issue "Speed against real peers")
_ACTOR = cli_actor("bench")


@dataclass(frozen=True, slots=True)
class TickFigures:
    canaries: int
    tick_s: float  # median tick
    overhead_s: float  # median of (tick - its fetch)
    cpu_s: float  # median CPU time of (tick - its fetch)
    fetch_s: float  # median of FakeMetrics.fetch alone, same requests: the baseline
    fetches_per_tick: tuple[int, ...]  # for every timed tick


def run(*, sizes: Sequence[int] = SIZES, repeats: int = 11) -> list[Check]:
    with tempfile.TemporaryDirectory(prefix="canary-bench-tick-") as tmp:
        subjects: list[_Subject] = []
        try:
            subjects.extend(_Subject.build(n, Path(tmp) / f"tick-{n}.db") for n in sizes)
            measured = measure(subjects, repeats=repeats)
        finally:
            for subject in subjects:
                subject.store.close()
    checks = [overhead_check(m) for m in measured]
    checks += [cpu_check(m) for m in measured]
    checks.append(scaling_check(measured[0], measured[-1]))
    checks.append(fetch_calls_check(measured))
    return checks


# ---------------------------------------------------------------- checks
def overhead_check(m: TickFigures) -> Check:
    return Check(
        name=f"tick, {m.canaries} canar{'y' if m.canaries == 1 else 'ies'}: judge+decide",
        ours=ms(m.overhead_s),
        baseline=ms(m.fetch_s),
        unit="ms",
        target=f"≤ {MAX_OVERHEAD_RATIO:g}× fetch",
        passed=m.overhead_s <= MAX_OVERHEAD_RATIO * m.fetch_s,
        note=f"tick {ms(m.tick_s):.2f} ms = {ms(m.tick_s / m.canaries):.2f} ms per canary",
    )


def cpu_check(m: TickFigures) -> Check:
    per_canary = ms(m.cpu_s) / m.canaries
    return Check(
        name=f"tick CPU per canary, {m.canaries} canar{'y' if m.canaries == 1 else 'ies'}",
        ours=per_canary,
        baseline=None,
        unit="ms",
        target=f"≤ {CPU_PER_CANARY_MS:g} ms",
        passed=per_canary <= CPU_PER_CANARY_MS,
        note=f"process CPU of the tick minus its fetch, median of the ticks; {ms(m.cpu_s):.1f} ms a tick",
    )


def scaling_check(small: TickFigures, large: TickFigures) -> Check:
    allowed = LINEAR_SLACK * large.canaries / small.canaries
    return Check(
        name=f"tick, {large.canaries} vs {small.canaries} canar{'y' if small.canaries == 1 else 'ies'}",
        ours=ms(large.tick_s),
        baseline=ms(small.tick_s),
        unit="ms",
        target=f"≤ {allowed:g}× (linear)",
        passed=large.tick_s <= allowed * small.tick_s,
        note=f"per canary {ms(small.tick_s / small.canaries):.2f} → {ms(large.tick_s / large.canaries):.2f} ms",
    )


def fetch_calls_check(measured: Sequence[TickFigures]) -> Check:
    worst = max(measured, key=lambda m: (max(m.fetches_per_tick), m.canaries))
    per_size = ", ".join(f"{m.canaries}: {sorted(set(m.fetches_per_tick))}" for m in measured)
    return Check(
        name=f"metric fetches per tick, {worst.canaries} canaries",
        ours=max(worst.fetches_per_tick),
        baseline=worst.canaries,  # one call per canary, the naive loop
        unit="calls",
        target="exactly 1 at every size",
        passed=all(set(m.fetches_per_tick) == {1} for m in measured),
        note=f"fetches per tick by canaries {per_size}",
    )


# ---------------------------------------------------------------- measuring
class _TimedMetrics:
    """The metrics port as the tick sees it, timing (and counting) every fetch."""

    def __init__(self, inner: FakeMetrics) -> None:
        self.inner = inner
        self.calls = 0
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def fetch(self, requests: Sequence[WindowRequest]) -> dict[str, list[PeriodFigures]]:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return self.inner.fetch(requests)
        finally:
            self.seconds += time.perf_counter() - started
            self.cpu_seconds += time.process_time() - cpu
            self.calls += 1


@dataclass
class _Subject:
    """One world of `canaries` soaking canaries, its runner, and what its timed ticks took."""

    canaries: int
    store: SqliteStore
    metrics: FakeMetrics
    timed: _TimedMetrics
    runner: SoakRunner
    ticks: list[float] = field(default_factory=list)
    overheads: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    fetches: list[int] = field(default_factory=list)
    fetch_alone: list[float] = field(default_factory=list)

    @classmethod
    def build(cls, canaries: int, db: Path) -> _Subject:
        store = open_store(f"sqlite:///{db}")
        service, metrics = soaking_world(canaries, store)
        timed = _TimedMetrics(metrics)
        runner = soak_runner(service, timed, chart=_no_chart)
        _expect_steady(runner.tick(), canaries)  # posts the due report, notes the verdict
        return cls(canaries, store, metrics, timed, runner)

    def tick(self) -> None:
        calls, in_fetch, cpu_in_fetch = self.timed.calls, self.timed.seconds, self.timed.cpu_seconds
        started, cpu = time.perf_counter(), time.process_time()
        outcomes = self.runner.tick()
        elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
        self.cpu.append(cpu_used - (self.timed.cpu_seconds - cpu_in_fetch))
        _expect_steady(outcomes, self.canaries)
        self.ticks.append(elapsed)
        self.overheads.append(elapsed - (self.timed.seconds - in_fetch))
        self.fetches.append(self.timed.calls - calls)

    def fetch(self) -> None:
        """The baseline: the metrics fake alone, given what the last tick asked it for."""
        requests = self.metrics.requests[-1]
        started = time.perf_counter()
        self.metrics.fetch(requests)
        self.fetch_alone.append(time.perf_counter() - started)

    def figures(self) -> TickFigures:
        return TickFigures(
            canaries=self.canaries,
            tick_s=median(self.ticks),
            overhead_s=median(self.overheads),
            cpu_s=median(self.cpu),
            fetch_s=median(self.fetch_alone),
            fetches_per_tick=tuple(self.fetches),
        )


def measure(subjects: Sequence[_Subject], *, repeats: int) -> list[TickFigures]:
    """Tick every world in turn, `repeats` rounds: whatever else the machine does falls on every size alike."""
    gc.collect()
    for _ in range(repeats):
        for subject in subjects:
            subject.tick()
            subject.fetch()
    return [s.figures() for s in subjects]


def _expect_steady(outcomes: Sequence[object], canaries: int) -> None:
    """Every canary judged, without error, and left soaking: otherwise we would time something else."""
    kinds = [getattr(o, "kind", None) for o in outcomes]
    errors = [getattr(o, "error", None) for o in outcomes if getattr(o, "error", None)]
    if len(outcomes) != canaries or errors or set(kinds) != {DecisionKind.CONTINUE}:
        raise RuntimeError(f"the tick did not judge {canaries} soaking canaries: {outcomes}")


def _no_chart(d: Deployment, figures: list[PeriodFigures], thresholds: Thresholds) -> bytes | None:
    return None  # rendering the report's chart is matplotlib's cost, once per report, not the tick's


# ---------------------------------------------------------------- the world
def function_names(count: int = FUNCTIONS) -> list[str]:
    return [f"bench-fn-{i:02d}" for i in range(count)]


def bench_policy(names: Sequence[str]) -> Policy:
    """Every function with the seed's defaults, a log group (so cache figures count) and a soak longer than
    the hour of data, so the timed ticks stay mid-soak."""
    functions = {name: {"alias": ALIAS, "log_group": f"/aws/lambda/{name}", "soak": "2h"} for name in names}
    return Policy.model_validate({"defaults": {}, "functions": functions})


def soaking_world(canaries: int, store: StorePort) -> tuple[CanaryService, FakeMetrics]:
    names = function_names()
    traffic = FakeTraffic()
    for name in names:
        traffic.add_function(name, versions=["1", "2"])
        traffic.add_alias(name, ALIAS, "1")
    clock = ManualClock()
    service = CanaryService(traffic=traffic, store=store, policy=bench_policy(names), clock=clock)
    started: list[Deployment] = []
    for name in names[:canaries]:
        plan = service.plan(StartArgs(function=name, version="2"), _ACTOR)
        started.append(service.confirm(plan.deployment.id, _ACTOR).deployment)
    metrics = FakeMetrics()
    record_hour(metrics, traffic, started, clock)
    clock.advance(DATA)
    return service, metrics


def record_hour(
    metrics: FakeMetrics, traffic: TrafficPort, deployments: Sequence[Deployment], clock: ManualClock
) -> None:
    """A healthy hour, minute by minute, for both versions of every deployment: the shared traffic model in
    steady mode (exact figures), split by the alias weights."""
    targets = [(d.function, d.alias) for d in deployments]
    models = metrics_models(traffic, metrics, targets, per_minute=PER_MINUTE).values()
    t0 = clock.now()
    for minute in range(int(DATA / timedelta(minutes=1))):
        for model in models:
            model.minute(t0 + timedelta(minutes=minute))
