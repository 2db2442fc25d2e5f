"""What the soak loop and the post-promotion watch share: the outcome of one tick, and clock-aligned periods.

A neutral home, so bot.soak and bot.watch are peers that import neither each other's internals nor in a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.config import FunctionPolicy
from bot.judge import DecisionKind
from bot.model import Deployment
from bot.ports import WindowRequest

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


def window_request(d: Deployment, policy: FunctionPolicy, start: datetime, end: datetime) -> WindowRequest:
    """The figures of `d`'s canary and stable versions over [start, end), in the policy's periods, with its
    cache figures from Logs Insights when it names a log group: the one way soak and watch ask for them."""
    return WindowRequest(
        deployment_id=d.id,
        function=d.function,
        alias=d.alias,
        canary_version=d.canary_version,
        stable_version=d.stable_version,
        start=start,
        end=end,
        period_seconds=int(policy.period.total_seconds()),
        log_group=policy.log_group,
        cache_query=policy.cache_query,
    )


__all__ = ["TickOutcome", "align_down", "window_request"]
