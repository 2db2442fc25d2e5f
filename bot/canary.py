"""The canary state machine: pure transitions of a Deployment, each with its audit record.

Every transition takes the deployment and `now` and returns a new deployment plus exactly one audit record, or
raises IllegalTransition. Nothing here reads the clock, touches AWS or talks to Slack; the service applies the
effect (alias write, store save, message) around the transition. `revision` belongs to the store and is never
touched here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from bot.model import ROUTED_STATES, TERMINAL_STATES, AuditRecord, BreachCause, Deployment, State
from bot.ports import CanaryError
from bot.units import format_duration, format_percent

BOT_ACTOR = "canary-bot"

AliasRouting = Mapping[str, Any]


class IllegalTransition(CanaryError):
    """The deployment's state does not allow this transition."""


class InvalidPlan(CanaryError):
    """A plan, weight or duration that cannot be used."""


@dataclass(frozen=True, slots=True)
class Transition:
    deployment: Deployment
    audit: AuditRecord


_ADJUSTABLE = frozenset({State.CANARY, State.AWAITING_APPROVAL, State.HELD})

# Transition name -> states it may start from. `plan` creates a deployment, so it has no source state.
LEGAL: dict[str, frozenset[State]] = {
    "start": frozenset({State.PLANNED}),
    "cancel": frozenset({State.PLANNED}),
    "set_weight": _ADJUSTABLE,
    "next_step": frozenset({State.CANARY}),
    "await_approval": frozenset({State.CANARY}),
    "extend": _ADJUSTABLE,
    "hold": frozenset({State.CANARY, State.AWAITING_APPROVAL}),
    "resume": frozenset({State.HELD}),
    "promote": _ADJUSTABLE,
    "begin_rollback": _ADJUSTABLE,
    "finish_rollback": frozenset({State.ROLLING_BACK}),
    "note_verdict": _ADJUSTABLE,
    # After the canary: a promotion undone (`revert`), and the emergency fallback recorded (`fallback`).
    "revert": frozenset({State.PROMOTED}),
    "fallback": frozenset({State.PLANNED}),
}

# How each transition reads in "cannot …: deployment d-1 is promoted".
_VERBS: dict[str, str] = {
    "start": "start",
    "cancel": "cancel",
    "set_weight": "change the weight",
    "next_step": "go to the next step",
    "await_approval": "ask for approval",
    "extend": "extend",
    "hold": "hold",
    "resume": "resume",
    "promote": "promote",
    "begin_rollback": "roll back",
    "finish_rollback": "finish the rollback",
    "note_verdict": "record a verdict",
    "revert": "revert",
    "fallback": "record the fallback",
}


def can(d: Deployment, action: str) -> bool:
    """True when `action` is allowed now (state, and for next_step, a step left to go to)."""
    if action not in LEGAL:
        raise ValueError(f"unknown transition {action!r}; known: {', '.join(sorted(LEGAL))}")
    if d.state not in LEGAL[action]:
        return False
    return not (action == "next_step" and d.is_last_step)


def expected_routing(d: Deployment) -> tuple[str, dict[str, float]]:
    """What the alias carries in this state: (primary version, additional version weights).

    The shape TrafficPort.update_routing takes, and what a drift check compares the live alias against.
    """
    if d.state in ROUTED_STATES:
        return d.stable_version, {d.canary_version: d.weight}
    if d.state is State.PROMOTED:
        return d.canary_version, {}
    return d.stable_version, {}


# ---------------------------------------------------------------- creating
def plan(
    *,
    id: str,
    function: str,
    alias: str,
    stable_version: str,
    canary_version: str,
    steps: Sequence[float],
    soak: timedelta,
    actor: str,
    now: datetime,
    changes: dict[str, str | None] | None = None,
    channel: str | None = None,
) -> Transition:
    """A previewed, unconfirmed canary: nothing routed yet."""
    _check_plan(stable_version, canary_version, steps, soak)
    d = Deployment(
        id=id,
        function=function,
        alias=alias,
        stable_version=stable_version,
        canary_version=canary_version,
        steps=tuple(steps),
        weight=steps[0],
        soak=soak,
        state=State.PLANNED,
        created_by=actor,
        created_at=now,
        updated_at=now,
        changes=dict(changes or {}),
        channel=channel,
    )
    audit = AuditRecord(
        deployment_id=id,
        at=now,
        actor=actor,
        action="plan",
        from_state=None,
        to_state=State.PLANNED,
        detail={"steps": list(d.steps), "soak_seconds": soak.total_seconds()},
    )
    return Transition(d, audit)


def _check_plan(stable: str, canary: str, steps: Sequence[float], soak: timedelta) -> None:
    if canary == stable:
        raise InvalidPlan(f"canary version {canary} is the stable version: nothing to compare")
    if not steps:
        raise InvalidPlan("a plan needs at least one step (e.g. 5%)")
    for weight in steps:
        _check_weight(weight)
    if any(later <= earlier for earlier, later in pairwise(steps)):
        shown = ", ".join(format_percent(w) for w in steps)
        raise InvalidPlan(f"steps must rise (e.g. 5%, 25%, 50%), got {shown}")
    if soak <= timedelta(0):
        raise InvalidPlan(f"soak must be longer than zero, got {format_duration(soak)}")


def _check_weight(weight: float) -> None:
    # `not 0 < w < 1` also rejects NaN.
    if not 0 < weight < 1:
        raise InvalidPlan(f"canary weight must be strictly between 0% and 100%, got {format_percent(weight)}")


# ---------------------------------------------------------------- PLANNED
def start(
    d: Deployment,
    *,
    now: datetime,
    actor: str,
    alias_revision: str,
    reason: str | None = None,
    alias_before: AliasRouting | None = None,
    alias_after: AliasRouting | None = None,
) -> Transition:
    """Route the first step's weight to the canary and start its soak."""
    _require(d, "start")
    new = _update(
        d,
        now,
        state=State.CANARY,
        step_index=0,
        weight=d.steps[0],
        step_started_at=now,
        soak_ends_at=now + d.soak,
        alias_revision=alias_revision,
        breach_streak=0,
    )
    return _record(d, new, "start", actor, reason, alias_before, alias_after, {"weight": new.weight})


def cancel(d: Deployment, *, now: datetime, actor: str, reason: str) -> Transition:
    """Drop a plan that was never confirmed."""
    _require(d, "cancel")
    new = _update(d, now, state=State.CANCELLED, reason=reason, ended_by=actor, ended_at=now)
    return _record(d, new, "cancel", actor, reason)


# ---------------------------------------------------------------- while routed
def set_weight(
    d: Deployment,
    *,
    weight: float,
    now: datetime,
    actor: str,
    alias_revision: str,
    reason: str | None = None,
    alias_before: AliasRouting | None = None,
    alias_after: AliasRouting | None = None,
) -> Transition:
    """Change the canary weight by hand.

    Evidence gathered at the old weight says little about the new one, so the soak window restarts from `now`
    (and a deployment awaiting approval goes back to soaking). A held deployment stays held, will resume to
    soaking, and its restarted window counts held time from `now`.
    """
    _require(d, "set_weight")
    _check_weight(weight)
    state = State.CANARY if d.state is State.AWAITING_APPROVAL else d.state
    held_from = State.CANARY if d.held_from is not None else None
    new = _update(
        d,
        now,
        state=state,
        held_from=held_from,
        weight=weight,
        step_started_at=now,
        soak_ends_at=now + d.soak,
        approval_deadline=None,
        held_at=now if d.state is State.HELD else d.held_at,
        alias_revision=alias_revision,
        breach_streak=0,
    )
    detail = {"weight_before": d.weight, "weight_after": weight}
    return _record(d, new, "set_weight", actor, reason, alias_before, alias_after, detail)


def next_step(
    d: Deployment,
    *,
    now: datetime,
    actor: str,
    alias_revision: str,
    reason: str | None = None,
    alias_before: AliasRouting | None = None,
    alias_after: AliasRouting | None = None,
) -> Transition:
    """Move to the next step's weight and soak it afresh."""
    _require(d, "next_step")
    if d.is_last_step:
        raise IllegalTransition(
            f"cannot go to the next step: deployment {d.id} is on its last step "
            f"({format_percent(d.steps[d.step_index])})"
        )
    index = d.step_index + 1
    new = _update(
        d,
        now,
        step_index=index,
        weight=d.steps[index],
        step_started_at=now,
        soak_ends_at=now + d.soak,
        alias_revision=alias_revision,
        breach_streak=0,
    )
    detail = {"step_index": index, "weight_before": d.weight, "weight_after": new.weight}
    return _record(d, new, "next_step", actor, reason, alias_before, alias_after, detail)


def await_approval(
    d: Deployment, *, now: datetime, deadline: datetime, reason: str | None = None
) -> Transition:
    """The soak passed: stop and wait for a person to promote, until `deadline`."""
    _require(d, "await_approval")
    new = _update(d, now, state=State.AWAITING_APPROVAL, approval_deadline=deadline)
    detail = {"approval_deadline": deadline.isoformat()}
    return _record(d, new, "await_approval", BOT_ACTOR, reason, detail=detail)


def extend(
    d: Deployment, *, by: timedelta, now: datetime, actor: str, reason: str | None = None
) -> Transition:
    """Give the soak more time.

    Awaiting approval, it goes back to soaking for `by` from now. Held, both clocks (soak and any approval
    deadline) move by `by`, so the extension is still there on resume.
    """
    _require(d, "extend")
    if by <= timedelta(0):
        raise InvalidPlan(f"extend by a positive duration (e.g. 30m), got {format_duration(by)}")
    if d.state is State.AWAITING_APPROVAL:
        new = _update(d, now, state=State.CANARY, soak_ends_at=now + by, approval_deadline=None)
    else:
        new = _update(
            d,
            now,
            soak_ends_at=_shift(d.soak_ends_at, by),
            approval_deadline=_shift(d.approval_deadline, by),
        )
    return _record(d, new, "extend", actor, reason, detail={"by_seconds": by.total_seconds()})


def hold(d: Deployment, *, now: datetime, actor: str, reason: str) -> Transition:
    """Pause: traffic stays as it is, no automatic step, promotion or timeout until resumed."""
    _require(d, "hold")
    new = _update(d, now, state=State.HELD, held_from=d.state, held_at=now, reason=reason)
    return _record(d, new, "hold", actor, reason)


def resume(d: Deployment, *, now: datetime, actor: str, reason: str | None = None) -> Transition:
    """Return to the state held from; the time spent held is added to the clocks so a hold eats no soak."""
    _require(d, "resume")
    back_to = d.held_from or State.CANARY
    held_for = max(now - d.held_at, timedelta(0)) if d.held_at else timedelta(0)
    new = _update(
        d,
        now,
        state=back_to,
        held_from=None,
        held_at=None,
        reason=None,
        soak_ends_at=_shift(d.soak_ends_at, held_for),
        approval_deadline=_shift(d.approval_deadline, held_for),
    )
    return _record(d, new, "resume", actor, reason, detail={"held_seconds": held_for.total_seconds()})


# ---------------------------------------------------------------- ending
def promote(
    d: Deployment,
    *,
    now: datetime,
    actor: str,
    alias_revision: str,
    reason: str | None = None,
    alias_before: AliasRouting | None = None,
    alias_after: AliasRouting | None = None,
    watch_until: datetime | None = None,
) -> Transition:
    """The canary takes all of the alias. `weight` keeps the last canary weight, for the record.

    `watch_until`: the promoted version is watched (judged, never acted on) until then; None = no watch.
    """
    _require(d, "promote")
    new = _update(
        d,
        now,
        state=State.PROMOTED,
        held_from=None,
        held_at=None,
        alias_revision=alias_revision,
        ended_by=actor,
        ended_at=now,
        reason=reason,
        watch_until=watch_until,
    )
    return _record(d, new, "promote", actor, reason, alias_before, alias_after)


def begin_rollback(
    d: Deployment, *, now: datetime, actor: str, reason: str, cause: BreachCause | None = None
) -> Transition:
    """Decide to roll back; the alias still carries the canary until finish_rollback. `cause`: why the bot
    decided it (the judge's metric or the alarm), None when a person did."""
    _require(d, "begin_rollback")
    new = _update(d, now, state=State.ROLLING_BACK, held_from=None, held_at=None, reason=reason, cause=cause)
    return _record(d, new, "begin_rollback", actor, reason)


def finish_rollback(
    d: Deployment,
    *,
    now: datetime,
    actor: str,
    alias_revision: str,
    alias_before: AliasRouting | None = None,
    alias_after: AliasRouting | None = None,
) -> Transition:
    """Stable carries all of the alias again."""
    _require(d, "finish_rollback")
    new = _update(
        d, now, state=State.ROLLED_BACK, alias_revision=alias_revision, ended_by=actor, ended_at=now
    )
    return _record(d, new, "finish_rollback", actor, d.reason, alias_before, alias_after)


def revert(d: Deployment, *, now: datetime, actor: str, reason: str, alias_revision: str) -> Transition:
    """A promotion undone: the stable version (the one that served before) carries all of the alias again.

    The deployment ends ROLLED_BACK, and its watch ends with it (watch_until cleared)."""
    _require(d, "revert")
    new = _update(
        d,
        now,
        state=State.ROLLED_BACK,
        alias_revision=alias_revision,
        ended_by=actor,
        ended_at=now,
        reason=reason,
        watch_until=None,
    )
    return _record(d, new, "revert", actor, reason)


def fallback(d: Deployment, *, now: datetime, actor: str, version: str, alias_revision: str) -> Transition:
    """The emergency fallback landed: `version` (the serving code without some variables) takes all of the
    alias at once, with no soak. Recorded as a promotion of that version, so `revert` can undo it."""
    _require(d, "fallback")
    new = _update(
        d,
        now,
        state=State.PROMOTED,
        canary_version=version,
        weight=1.0,
        alias_revision=alias_revision,
        ended_by=actor,
        ended_at=now,
        watch_until=None,
    )
    return _record(d, new, "fallback", actor, d.reason, detail={"version": version})


# ---------------------------------------------------------------- bookkeeping
def note_verdict(d: Deployment, *, now: datetime, verdict: str, breach_streak: int) -> Deployment:
    """Remember the latest judgement (not a state change, so no audit record)."""
    _require(d, "note_verdict")
    if breach_streak < 0:
        raise ValueError(f"breach_streak cannot be negative, got {breach_streak}")
    return _update(d, now, last_verdict=verdict, breach_streak=breach_streak)


# ---------------------------------------------------------------- helpers
def _require(d: Deployment, action: str) -> None:
    allowed = LEGAL[action]
    if d.state in allowed:
        return
    state = "soaking" if d.state is State.CANARY else d.state.value.replace("_", " ")
    message = f"cannot {_VERBS[action]}: deployment {d.id} is {state}"
    if d.state in TERMINAL_STATES:
        message += " (it has ended)"
    else:
        message += f" (only from {', '.join(sorted(s.value for s in allowed))})"
    raise IllegalTransition(message)


def _update(d: Deployment, now: datetime, **changes: Any) -> Deployment:
    """`d` with `changes`, validated as a new Deployment: a misspelt field or a weight of 7.5 raises here,
    in the core, instead of being saved (model_copy would take both silently)."""
    unknown = sorted(set(changes) - set(Deployment.model_fields))
    if unknown:
        raise TypeError(f"no such Deployment field: {', '.join(unknown)}")
    return Deployment.model_validate({**dict(d), **changes, "updated_at": now})


def _shift(moment: datetime | None, by: timedelta) -> datetime | None:
    return moment + by if moment is not None else None


def _record(
    before: Deployment,
    after: Deployment,
    action: str,
    actor: str,
    reason: str | None,
    alias_before: AliasRouting | None = None,
    alias_after: AliasRouting | None = None,
    detail: dict[str, Any] | None = None,
) -> Transition:
    audit = AuditRecord(
        deployment_id=before.id,
        at=after.updated_at,
        actor=actor,
        action=action,
        phase="event",
        from_state=before.state,
        to_state=after.state,
        reason=reason,
        alias_before=dict(alias_before) if alias_before is not None else None,
        alias_after=dict(alias_after) if alias_after is not None else None,
        detail=detail or {},
    )
    return Transition(after, audit)
