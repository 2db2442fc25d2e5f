"""Durable intents: every traffic change is written down before any AWS call, then driven to done.

An Intent names the deployment, the routing it wants (primary version + extra weights), the routings it may
write over (what the deployment last left the alias as, and the targets of intents it superseded), who asked
and why. The reconciler (bot.reconciler) reads the alias and either finds the target already there (the write
landed though its answer was lost), writes it with the alias's RevisionId, or stops on drift. Pure data and
pure helpers here: no I/O, no clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.model import AliasState
from bot.units import Weight

IntentKind = Literal["start", "next_step", "weight", "promote", "rollback", "revert", "fallback"]
# open → recorded (the alias write is recorded; what follows it is not yet done) → done.
IntentStatus = Literal["open", "recorded", "done", "drift", "superseded", "cancelled"]

# Lower runs first: a rollback never waits behind anything else.
PRIORITY: dict[str, int] = {
    "rollback": 0,
    "revert": 0,
    "fallback": 0,
    "promote": 1,
    "next_step": 2,
    "weight": 2,
    "start": 3,
}

BACKOFF_BASE = timedelta(seconds=1)
BACKOFF_CAP = timedelta(seconds=60)


class Routing(BaseModel):
    """An alias's routing without its revision: the primary version and the extra versions' weights."""

    model_config = ConfigDict(frozen=True)

    version: str
    weights: dict[str, Weight] = Field(default_factory=dict)

    @classmethod
    def of(cls, alias: AliasState) -> Routing:
        return cls(version=alias.version, weights=dict(alias.weights))

    def matches(self, alias: AliasState | Routing) -> bool:
        return alias.version == self.version and same_weights(alias.weights, self.weights)


class Intent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    deployment_id: str
    kind: IntentKind
    target: Routing
    # Routings the bot itself left (or was about to leave) on the alias: writing over these is ours to do.
    accept_from: tuple[Routing, ...]
    # The RevisionId the deployment last saw; None = not known (then the routing alone must match).
    expected_revision_id: str | None = None
    actor: str
    actor_mention: str = ""
    reason: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    status: IntentStatus = "open"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    escalated: bool = False
    done_at: datetime | None = None
    alias_before: dict[str, Any] | None = None
    alias_after: dict[str, Any] | None = None

    @property
    def priority(self) -> int:
        return PRIORITY[self.kind]

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    def due(self, now: datetime) -> bool:
        return self.is_open and (self.next_attempt_at is None or self.next_attempt_at <= now)

    def is_ours_to_write(self, alias: AliasState) -> bool:
        """The alias is as the bot left it, so this intent may write over it.

        As the deployment left it: the same routing, and the same RevisionId when one is known (a rewrite by
        someone else bumps it even if the routing looks the same). As a superseded intent of ours may have
        left it: that routing.
        """
        own, *superseded = self.accept_from
        if own.matches(alias) and (self.expected_revision_id in (None, alias.revision_id)):
            return True
        return any(r.matches(alias) for r in superseded)


def same_weights(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], abs_tol=1e-6) for k in a)


def backoff(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """Full-jitter exponential backoff (AWS Architecture Blog): uniform in [base, min(cap, base * 2^n)]."""
    ceiling = min(BACKOFF_CAP.total_seconds(), BACKOFF_BASE.total_seconds() * 2 ** max(0, attempts - 1))
    draw = (rng or random).uniform(BACKOFF_BASE.total_seconds(), max(BACKOFF_BASE.total_seconds(), ceiling))
    return timedelta(seconds=draw)


def order(intents: list[Intent]) -> list[Intent]:
    """Rollbacks first, then by age."""
    return sorted(intents, key=lambda i: (i.priority, i.created_at))


__all__ = ["Intent", "IntentKind", "IntentStatus", "Routing", "backoff", "order", "same_weights"]
