"""Domain values shared by the core, the adapters and the surfaces. Pure data: no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.units import Percent, Weight


class State(StrEnum):
    PLANNED = "planned"  # previewed, not confirmed: the alias is untouched
    CANARY = "canary"  # canary version routed at `weight`, soaking step `step_index`
    AWAITING_APPROVAL = "awaiting_approval"  # last step soaked clean; a human decides
    HELD = "held"  # paused by a person, by drift, or by an inconclusive soak; traffic unchanged
    ROLLING_BACK = "rolling_back"  # decided; the alias is being reverted
    PROMOTED = "promoted"  # canary is 100% of the alias
    ROLLED_BACK = "rolled_back"  # stable is 100% of the alias again
    CANCELLED = "cancelled"  # the plan was never confirmed, or expired


TERMINAL_STATES = frozenset({State.PROMOTED, State.ROLLED_BACK, State.CANCELLED})
LIVE_STATES = frozenset(set(State) - TERMINAL_STATES)
# States in which the alias carries canary traffic.
ROUTED_STATES = frozenset({State.CANARY, State.AWAITING_APPROVAL, State.HELD, State.ROLLING_BACK})


class AliasState(BaseModel):
    """An alias as Lambda reports it: the primary version, extra weights and the revision that guards writes."""

    model_config = ConfigDict(frozen=True)

    function: str
    alias: str
    version: str
    weights: dict[str, float] = Field(default_factory=dict)
    revision_id: str

    def describe(self) -> str:
        """'100% v1' or '95% v1 · 5% v2'."""
        extra = sum(self.weights.values())
        parts = [f"{_pct(1 - extra)} v{self.version}"]
        parts += [f"{_pct(w)} v{v}" for v, w in sorted(self.weights.items())]
        return " · ".join(parts)

    def routing(self) -> dict[str, Any]:
        """Plain dict for the audit log."""
        return {"version": self.version, "weights": dict(self.weights), "revision_id": self.revision_id}


def _pct(fraction: float) -> str:
    from bot.units import format_percent

    return format_percent(fraction)


class Thresholds(BaseModel):
    """Rollback thresholds (the seed's table). A metric set to None is not judged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Percentages are fractions inside (0.001 = 0.1%); the policy file writes them with % ("0.1%").
    error_rate: Percent | None = 0.001  # fail when > this fraction
    p95_ms: float | None = 100.0  # fail when >
    p99_ms: float | None = 300.0  # fail when >
    cache_hit_rate: Percent | None = 0.80  # fail when <
    cache_miss_p95_ms: float | None = 300.0  # fail when >
    # Optional, relative to stable in the same window (Kayenta-style); None = off.
    max_error_rate_increase: Percent | None = None  # canary - stable, absolute fraction
    max_p95_ratio: float | None = None  # canary p95 / stable p95


CauseKind = Literal["error_rate", "latency", "cache", "alarm"]


class BreachCause(BaseModel):
    """Why the bot rolled a canary back, as data: the judge's failing metric (with its figure, threshold and
    how many periods it failed) or the CloudWatch alarm. Messages render it; nobody parses the reason text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: CauseKind
    metric: str | None = None  # the judge's metric id: "error_rate", "p95_ms", "cache_hit_rate", …
    value: float | None = None
    threshold: float | None = None
    shown: str | None = None  # value and threshold as the judge writes them: "2.5%", "0.1%", "180 ms"
    limit: str | None = None
    periods: int | None = None  # consecutive failing periods; None: proven at once over the whole step
    alarm: str | None = None  # the alarm's name, for kind "alarm"


class Deployment(BaseModel):
    """One canary of one alias, from plan to its end. Transitions live in bot.canary."""

    model_config = ConfigDict(frozen=True)

    id: str
    function: str
    alias: str
    stable_version: str
    canary_version: str
    steps: tuple[Weight, ...]  # canary weight of each step, each in (0, 1), rising
    step_index: int = 0
    weight: Weight  # canary weight now (the planned first weight before start)
    soak: timedelta  # soak of each step
    state: State = State.PLANNED
    held_from: State | None = None  # where `resume` returns to
    held_at: datetime | None = None  # when the hold began; `resume` adds the time held to the clocks
    created_by: str
    created_at: datetime
    updated_at: datetime
    step_started_at: datetime | None = None
    soak_ends_at: datetime | None = None
    approval_deadline: datetime | None = None
    alias_revision: str | None = None  # RevisionId after our last write
    breach_streak: int = 0
    last_verdict: str | None = None
    reason: str | None = None  # why it ended (or was held)
    cause: BreachCause | None = None  # why the bot rolled it back (None: a person did, or not rolled back)
    ended_by: str | None = None
    ended_at: datetime | None = None
    changes: dict[str, str | None] = Field(default_factory=dict)  # env published: KEY -> value, None = unset
    channel: str | None = None
    thread_ts: str | None = None
    # After a promotion: the promoted version is watched (figures judged, never acted on) until then.
    watch_until: datetime | None = None
    revision: int = 0  # bumped by the store on every save (optimistic concurrency)

    @property
    def key(self) -> str:
        return f"{self.function}:{self.alias}"

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def is_last_step(self) -> bool:
        return self.step_index >= len(self.steps) - 1


AuditPhase = Literal["intent", "done", "failed", "event"]


class AuditRecord(BaseModel):
    """One line of the append-only audit log: who did what, when, why, and the alias before and after."""

    model_config = ConfigDict(frozen=True)

    deployment_id: str
    at: datetime
    actor: str
    action: str
    phase: AuditPhase = "event"
    from_state: State | None = None
    to_state: State | None = None
    reason: str | None = None
    alias_before: dict[str, Any] | None = None
    alias_after: dict[str, Any] | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class VersionFigures(BaseModel):
    """What one version did in one window. None = no datapoint (not zero)."""

    model_config = ConfigDict(frozen=True)

    version: str
    invocations: float = 0.0
    errors: float = 0.0
    throttles: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    cache_hits: int | None = None
    cache_misses: int | None = None
    cache_miss_p95_ms: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.invocations if self.invocations else None

    @property
    def cache_hit_rate(self) -> float | None:
        if self.cache_hits is None or self.cache_misses is None:
            return None
        total = self.cache_hits + self.cache_misses
        return self.cache_hits / total if total else None


class PeriodFigures(BaseModel):
    """Canary beside stable over one evaluation period [start, end)."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime
    canary: VersionFigures
    stable: VersionFigures


class DeployLock(BaseModel):
    """A deploy lock on function:alias. `version` None: a person's lock (start, promote, weight and resume are
    refused); a version: left by a rollback of that version (new canaries of it are refused)."""

    model_config = ConfigDict(frozen=True)

    function: str
    alias: str
    version: str | None = None
    locked_by: str  # audit label ('slack:U1 (maria)', 'cli:root@host', 'canary-bot')
    reason: str
    since: datetime
    deployment_id: str | None = None  # the rollback that left it, for a version lock

    @property
    def key(self) -> str:
        return f"{self.function}#{self.alias}#{self.version or '*'}"
