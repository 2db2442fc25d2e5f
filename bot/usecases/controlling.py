"""Controlling a live canary: promote, roll back, weight, hold, resume, extend (people, buttons and the bot).

A button passes the deployment and revision it was rendered for (`deployment_id`, `expected_revision`): a click
from an ended deployment's message, or from before a later change, is refused by `_actionable`.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from bot import canary, locks
from bot.actors import Action, Actor, Authorizer
from bot.events import StateNoted
from bot.intents import Routing
from bot.model import BreachCause, Deployment, State
from bot.ports import Clock, StorePort, TrafficPort
from bot.units import format_duration, format_percent
from bot.usecases.announcer import Announcer
from bot.usecases.lookup import Lookup, state_words
from bot.usecases.refusals import AlreadyActed, Refused
from bot.usecases.results import ActionResult
from bot.usecases.writer import AliasWriter


class Controlling:
    def __init__(
        self,
        *,
        traffic: TrafficPort,
        store: StorePort,
        clock: Clock,
        lookup: Lookup,
        writer: AliasWriter,
        authorizer: Authorizer,
        announcer: Announcer,
    ) -> None:
        self._traffic = traffic
        self._store = store
        self._clock = clock
        self._lookup = lookup
        self._writer = writer
        self._authorizer = authorizer
        self._announcer = announcer

    def promote(
        self,
        function: str,
        alias: str | None,
        actor: Actor,
        *,
        deployment_id: str | None = None,
        expected_revision: int | None = None,
    ) -> ActionResult:
        d = self._actionable(
            function,
            alias,
            actor,
            "promote",
            "promote",
            deployment_id=deployment_id,
            revision=expected_revision,
        )
        locks.check_unlocked(self._store, d.function, d.alias, "promote")  # deploy locks (bot.locks)
        result = self._writer.apply(d, actor, "promote", Routing(version=d.canary_version, weights={}))
        d, after = self._writer.landed(result)
        return self._writer.answer(d, "promoted", after)

    def rollback(
        self,
        function: str,
        alias: str | None,
        actor: Actor,
        *,
        reason: str,
        deployment_id: str | None = None,
        expected_revision: int | None = None,
        detected_at: datetime | None = None,
        cause: BreachCause | None = None,
    ) -> ActionResult:
        """Revert the alias to 100% stable. A plan that never routed traffic is cancelled instead.

        A Roll back button drawn for an earlier revision of the same deployment still rolls it back while it
        is live: saving its thread or a new verdict bumps the revision, and refusing a rollback for that would
        cost minutes in an emergency. The deployment id guards against acting on another canary, and the
        reconciler's drift check against writing over someone else's change.
        """
        d = self._lookup.target(function, alias, deployment_id)
        if d.state is State.PLANNED:
            self._lookup.check_click(d, expected_revision)
        self._authorizer.check(actor, self._lookup.policy_for(d.function), "rollback", d)
        if d.state is State.PLANNED and self._store.open_intent_for(d.id) is None:
            d = self._writer.transition(
                canary.cancel(d, now=self._clock.now(), actor=actor.label, reason=reason)
            )
            return ActionResult(
                deployment=d, message=f"plan for {d.key} cancelled; the alias was not touched"
            )
        if d.state is State.PLANNED:
            # Its Start is still being applied: roll back what it may have written, then cancel the plan.
            result = self._writer.request_rollback(d, actor, reason=reason, detected_at=detected_at)
            assert result is not None
            d, after = self._writer.landed(result)
            return ActionResult(
                deployment=d, alias=after, message=f"plan for {d.key} cancelled; {after.describe()}"
            )
        marked = self._writer.begin_rollback(d, actor, reason=reason, now=self._clock.now(), cause=cause)
        if marked is None or marked.state is not State.ROLLING_BACK:
            raise AlreadyActed(self._lookup.who_acted(marked or d))
        result = self._writer.request_rollback(
            marked, actor, reason=reason, detected_at=detected_at, wait_for_lease=5.0
        )
        assert result is not None
        d, after = self._writer.landed(result)
        return self._writer.answer(d, "rolled_back", after)

    def set_weight(
        self,
        function: str,
        alias: str | None,
        actor: Actor,
        *,
        weight: float,
        expected_revision: int | None = None,
    ) -> ActionResult:
        d = self._actionable(function, alias, actor, "weight", "set_weight", revision=expected_revision)
        locks.check_unlocked(self._store, d.function, d.alias, "weight")  # deploy locks (bot.locks)
        if math.isclose(weight, d.weight):
            raise Refused(f"{d.key} already routes {format_percent(weight)} to v{d.canary_version}")
        result = self._writer.apply(
            d,
            actor,
            "weight",
            Routing(version=d.stable_version, weights={d.canary_version: weight}),
            detail={"weight": weight},
        )
        d, after = self._writer.landed(result)
        return self._writer.answer(d, "weight", after)

    def hold(
        self,
        function: str,
        alias: str | None,
        actor: Actor,
        *,
        reason: str | None,
        deployment_id: str | None = None,
        expected_revision: int | None = None,
    ) -> ActionResult:
        d = self._actionable(
            function, alias, actor, "hold", "hold", deployment_id=deployment_id, revision=expected_revision
        )
        why = reason or f"held by {actor.name}"
        d = self._writer.transition(canary.hold(d, now=self._clock.now(), actor=actor.label, reason=why))
        self._announcer.announce(self._noted(d, actor, "held", why))
        return ActionResult(
            deployment=d, message=f"held: {d.key}; traffic stays {format_percent(d.weight)} on the canary"
        )

    def resume(
        self,
        function: str,
        alias: str | None,
        actor: Actor,
        *,
        deployment_id: str | None = None,
        expected_revision: int | None = None,
    ) -> ActionResult:
        d = self._actionable(
            function,
            alias,
            actor,
            "resume",
            "resume",
            deployment_id=deployment_id,
            revision=expected_revision,
        )
        locks.check_unlocked(self._store, d.function, d.alias, "resume")  # deploy locks (bot.locks)
        self._writer.check_routing(d, self._traffic.get_alias(d.function, d.alias))
        d = self._writer.transition(canary.resume(d, now=self._clock.now(), actor=actor.label))
        self._announcer.announce(self._noted(d, actor, "resumed", None))
        return ActionResult(deployment=d, message=f"resumed: {d.key} is {state_words(d.state)} again")

    def extend(
        self,
        function: str,
        alias: str | None,
        actor: Actor,
        *,
        by: timedelta,
        deployment_id: str | None = None,
        expected_revision: int | None = None,
    ) -> ActionResult:
        d = self._actionable(
            function,
            alias,
            actor,
            "extend",
            "extend",
            deployment_id=deployment_id,
            revision=expected_revision,
        )
        d = self._writer.transition(canary.extend(d, by=by, now=self._clock.now(), actor=actor.label))
        self._announcer.announce(self._noted(d, actor, "extended", f"+{format_duration(by)}"))
        ends = f" at {d.soak_ends_at:%H:%M} UTC" if d.soak_ends_at else " later"
        return ActionResult(deployment=d, message=f"extended: the soak of {d.key} now ends{ends}")

    # ------------------------------------------------------------ internals
    def _actionable(
        self,
        function: str,
        alias: str | None,
        actor: Actor,
        rule: Action,
        transition: str,
        *,
        deployment_id: str | None = None,
        revision: int | None = None,
    ) -> Deployment:
        """The deployment a person acts on, once the click is current, they may, and its state allows it."""
        d = self._lookup.target(function, alias, deployment_id)
        self._lookup.check_click(d, revision)
        self._authorizer.check(actor, self._lookup.policy_for(d.function), rule, d)
        if not canary.can(d, transition):
            raise Refused(
                f"cannot {transition.replace('_', ' ')} {d.key}: the canary is {state_words(d.state)}"
            )
        return d

    def _noted(self, d: Deployment, actor: Actor, what: str, reason: str | None) -> StateNoted:
        return StateNoted(
            deployment=d,
            at=self._clock.now(),
            actor=actor.label,
            actor_mention=actor.mention,
            what=what,
            reason=reason,
        )
