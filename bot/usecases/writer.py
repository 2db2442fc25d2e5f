"""AliasWriter: the one guarded way a use case changes traffic or a deployment's state.

Traffic changes are intents the reconciler drives to done (lease, RevisionId and the routing the bot last
left); state-only changes are saved with their audit record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from bot import canary
from bot.actors import Actor
from bot.canary import Transition
from bot.intents import Intent, IntentKind, Routing, same_weights
from bot.model import AliasState, BreachCause, Deployment, State
from bot.ports import AliasDrift, Clock, IntentInProgress, StaleDeployment, StorePort
from bot.reconciler import DriveResult, Reconciler, new_intent_id, rollback_intent
from bot.usecases.lookup import Lookup
from bot.usecases.refusals import ActionPending, AlreadyActed
from bot.usecases.results import ActionResult

TrafficAction = Literal["promoted", "rolled_back", "weight", "next_step"]


class AliasWriter:
    def __init__(self, store: StorePort, clock: Clock, reconciler: Reconciler, lookup: Lookup) -> None:
        self._store = store
        self._clock = clock
        self._reconciler = reconciler
        self._lookup = lookup

    # ------------------------------------------------------------ traffic
    def apply(
        self,
        d: Deployment,
        actor: Actor,
        kind: IntentKind,
        target: Routing,
        *,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> DriveResult:
        """Write the intent (durable, one open per deployment, only if `d` is still current), drive it once."""
        version, weights = canary.expected_routing(d)
        intent = Intent(
            id=new_intent_id(d.id, kind),
            deployment_id=d.id,
            kind=kind,
            target=target,
            accept_from=(Routing(version=version, weights=weights),),
            expected_revision_id=d.alias_revision,
            actor=actor.label,
            actor_mention=actor.mention,
            reason=reason,
            detail=detail or {},
            created_at=self._clock.now(),
        )
        try:
            self._reconciler.submit(intent, deployment_revision=d.revision)
        except IntentInProgress as exc:
            pending = self._store.open_intent_for(d.id)
            if pending is None:  # the change that won has finished meanwhile: say what it did
                raise AlreadyActed(self._lookup.who_acted(d)) from exc
            if pending.kind != kind or not pending.target.matches(target):
                raise AlreadyActed(
                    f"{pending.kind.replace('_', ' ')} by {pending.actor} is being applied; "
                    "nothing was changed by yours"
                ) from exc
            # The same change, still being retried: asking again means "try now", not a second change.
            result = self._reconciler.drive(pending.id)
            if result.status == "busy":
                raise AlreadyActed(str(exc)) from exc
            return result
        except StaleDeployment:
            raise AlreadyActed(self._lookup.who_acted(d)) from None
        return self._reconciler.drive(intent.id, wait_for_lease=2.0)

    def request_rollback(
        self,
        d: Deployment,
        actor: Actor,
        *,
        reason: str,
        detected_at: datetime | None = None,
        wait_for_lease: float = 5.0,
        drive: bool = True,
    ) -> DriveResult | None:
        """Make the rollback of `d` durable (superseding any other open intent), then drive it once.

        One rollback per deployment: when one is already open, it is the one driven (a second alarm, a second
        click or a second replica adds nothing). Returns None when `drive` is False.
        """
        existing = self._store.open_intent_for(d.id)
        if existing is not None and existing.kind == "rollback":
            intent = existing
        else:
            intent = self._reconciler.submit(
                rollback_intent(
                    d,
                    actor=actor.label,
                    actor_mention=actor.mention,
                    reason=reason,
                    now=self._clock.now(),
                    detected_at=detected_at,
                ),
                supersede=True,
            )
        if not drive:
            return None
        return self._reconciler.drive(intent.id, wait_for_lease=wait_for_lease)

    def landed(self, result: DriveResult) -> tuple[Deployment, AliasState]:
        """The deployment and alias after a drive that landed; the caller's error otherwise."""
        if result.status == "done" and result.deployment is not None and result.alias_after is not None:
            return result.deployment, result.alias_after
        kind = result.intent.kind.replace("_", " ")
        if result.status == "drift":
            raise AliasDrift(result.error or "the alias changed outside canary-bot")
        if result.status == "pending":
            retry = result.intent.next_attempt_at
            when = f" (next attempt {retry:%H:%M:%S} UTC)" if retry else ""
            raise ActionPending(
                f"AWS did not take the {kind} yet: {result.error}. canary-bot keeps trying{when} and tells "
                "the approvers if it keeps failing; no need to click again."
            )
        if result.status == "busy":
            raise ActionPending(
                f"the {kind} is recorded and another worker is applying it; it completes within seconds"
            )
        current = self._lookup.get(result.intent.deployment_id)
        raise AlreadyActed(self._lookup.who_acted(current))

    @staticmethod
    def answer(d: Deployment, action: TrafficAction, after: AliasState) -> ActionResult:
        said = {"promoted": "promoted", "rolled_back": "rolled back", "weight": "weight changed"}
        return ActionResult(
            deployment=d,
            alias=after,
            message=f"{said.get(action, 'next step')}: {d.key} now {after.describe()}",
        )

    @staticmethod
    def check_routing(d: Deployment, alias: AliasState) -> None:
        """Raise AliasDrift when the alias is not what this deployment last left it as."""
        version, weights = canary.expected_routing(d)
        same_revision = d.alias_revision is None or alias.revision_id == d.alias_revision
        same_routing = alias.version == version and same_weights(alias.weights, weights)
        if not (same_revision and same_routing):
            raise AliasDrift(
                f"{d.key} was changed outside canary-bot: it routes {alias.describe()}, "
                f"expected {_describe(d, version, weights)}. Nothing was changed; "
                "the canary is held until someone resolves it."
            )

    # ------------------------------------------------------------ state only
    def begin_rollback(
        self, d: Deployment, actor: Actor, *, reason: str, now: datetime, cause: BreachCause | None = None
    ) -> Deployment | None:
        """Mark `d` ROLLING_BACK before its rollback intent (the soak stops acting on it; status shows what is
        happening), retrying over concurrent saves (a verdict, a thread saved). Returns the deployment as it
        now is, which may be in a state that cannot roll back; None once it is no longer live."""
        current = d
        for _ in range(5):
            if not current.is_live:
                return None
            if current.state is State.ROLLING_BACK or not canary.can(current, "begin_rollback"):
                return current
            try:
                return self.transition(
                    canary.begin_rollback(current, now=now, actor=actor.label, reason=reason, cause=cause)
                )
            except StaleDeployment:
                current = self._store.get(d.id) or current
        return current

    def transition(
        self, t: Transition, *, before: AliasState | None = None, after: AliasState | None = None
    ) -> Deployment:
        """Save the core's transition (guarded by the deployment's revision) and its audit record."""
        saved = self._store.save(t.deployment)
        self._store.append_audit(
            t.audit.model_copy(
                update={
                    "phase": "done" if after is not None else t.audit.phase,
                    "alias_before": before.routing() if before else t.audit.alias_before,
                    "alias_after": after.routing() if after else t.audit.alias_after,
                }
            )
        )
        return saved


def _describe(d: Deployment, version: str, weights: Mapping[str, float]) -> str:
    return AliasState(
        function=d.function, alias=d.alias, version=version, weights=dict(weights), revision_id=""
    ).describe()
