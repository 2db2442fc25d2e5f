"""What the soak loop and the post-promotion watch share: the outcome of one tick, and clock-aligned periods.

A neutral home, so bot.soak and bot.watch are peers that import neither each other's internals nor in a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.judge import DecisionKind

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TickOutcome:
    """What one tick made of one deployment. `kind` is None when it could not be judged (see `error`)."""

    deployment_id: str
    kind: DecisionKind | None
    reason: str
    error: str | None = None


def align_down(moment: datetime, period: timedelta) -> datetime:
    """The latest clock multiple of `period` at or before `moment` (Logs Insights bins are clock-aligned)."""
    return moment - (moment - _EPOCH) % period


__all__ = ["TickOutcome", "align_down"]
