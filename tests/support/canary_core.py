"""Builders for the pure canary core: deployments in any state (through the real transitions) and figures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot import canary
from bot.model import Deployment, PeriodFigures, State, VersionFigures

T0 = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
PERIOD = timedelta(minutes=5)


def planned(
    *,
    steps: Sequence[float] = (0.05,),
    soak: timedelta = timedelta(hours=1),
    now: datetime = T0,
    id: str = "d-1",
) -> Deployment:
    return canary.plan(
        id=id,
        function="production-lego-api",
        alias="production",
        stable_version="41",
        canary_version="42",
        steps=steps,
        soak=soak,
        actor="U_MARIA",
        now=now,
    ).deployment


def started(
    *,
    steps: Sequence[float] = (0.05,),
    soak: timedelta = timedelta(hours=1),
    now: datetime = T0,
) -> Deployment:
    return canary.start(
        planned(steps=steps, soak=soak, now=now), now=now, actor="U_MARIA", alias_revision="rev-1"
    ).deployment


def in_state(
    state: State,
    *,
    steps: Sequence[float] = (0.05, 0.25),
    soak: timedelta = timedelta(hours=1),
    now: datetime = T0,
) -> Deployment:
    """A deployment brought to `state` by real transitions, everything happening at `now`."""
    if state is State.PLANNED:
        return planned(steps=steps, soak=soak, now=now)
    if state is State.CANCELLED:
        return canary.cancel(
            planned(steps=steps, soak=soak, now=now), now=now, actor="U_MARIA", reason="no"
        ).deployment
    d = started(steps=steps, soak=soak, now=now)
    if state is State.CANARY:
        return d
    if state is State.AWAITING_APPROVAL:
        return canary.await_approval(d, now=now, deadline=now + timedelta(minutes=30)).deployment
    if state is State.HELD:
        return canary.hold(d, now=now, actor="U_SRE", reason="looking at logs").deployment
    if state is State.PROMOTED:
        return canary.promote(d, now=now, actor="U_SRE", alias_revision="rev-2").deployment
    rolling = canary.begin_rollback(d, now=now, actor="canary-bot", reason="error rate").deployment
    if state is State.ROLLING_BACK:
        return rolling
    assert state is State.ROLLED_BACK
    return canary.finish_rollback(rolling, now=now, actor="canary-bot", alias_revision="rev-2").deployment


def version(
    name: str,
    *,
    invocations: float = 1000,
    errors: float = 0,
    p95_ms: float | None = 42.0,
    p99_ms: float | None = 95.0,
    cache_hits: int | None = 940,
    cache_misses: int | None = 60,
    cache_miss_p95_ms: float | None = 120.0,
) -> VersionFigures:
    """Healthy figures unless told otherwise."""
    return VersionFigures(
        version=name,
        invocations=invocations,
        errors=errors,
        p95_ms=p95_ms,
        p99_ms=p99_ms,
        cache_hits=cache_hits,
        cache_misses=cache_misses,
        cache_miss_p95_ms=cache_miss_p95_ms,
    )


def period(
    start: datetime,
    *,
    canary: VersionFigures | None = None,
    stable: VersionFigures | None = None,
    length: timedelta = PERIOD,
) -> PeriodFigures:
    return PeriodFigures(
        start=start,
        end=start + length,
        canary=canary or version("42"),
        stable=stable or version("41", invocations=19000),
    )
