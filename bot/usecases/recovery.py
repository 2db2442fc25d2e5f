"""The seed's rollback procedures at any time, not only while a canary is live.

- Revert: after a promotion (during its watch or later), 100% of the alias back to the version that served
  before (the last promoted deployment's stable version). The seed's `rollback-canary.sh`.
- Fallback: the emergency fallback ("remove REDIS_URL and the code falls back to the in-memory cache"):
  publish the code of the version now serving without some environment variables, and route 100% to it.

Both are traffic changes: an Intent the reconciler drives (lease, RevisionId guard and the routing the bot
expects, one transaction to record, the announcement). Approvers only, checked when asked (at click time for
a button). Neither is ever refused by a deploy lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from bot import canary
from bot.actors import Actor, Authorizer
from bot.canary import InvalidPlan
from bot.config import FunctionPolicy, Policy
from bot.intents import Intent, Routing
from bot.model import AliasState, Deployment, State
from bot.ports import AliasDrift, Clock, IntentInProgress, StaleDeployment, StorePort, TrafficPort
from bot.reconciler import DriveResult, Reconciler, new_intent_id, rollback_intent
from bot.usecases.lookup import person, policy_of
from bot.usecases.refusals import ActionPending, AlreadyActed, Refused
from bot.usecases.results import ActionResult

FALLBACK_ID_PREFIX = "f-"


@dataclass(frozen=True)
class RevertPreview:
    deployment: Deployment
    alias: AliasState

    @property
    def after(self) -> str:
        return f"100% v{self.deployment.stable_version}"


class _RecoveryBase:
    def __init__(
        self,
        *,
        store: StorePort,
        traffic: TrafficPort,
        reconciler: Reconciler,
        clock: Clock,
        policy: Policy,
        authorizer: Authorizer,
    ) -> None:
        self.store = store
        self.traffic = traffic
        self.reconciler = reconciler
        self.clock = clock
        self.policy = policy
        self.authorizer = authorizer

    def _policy(self, function: str) -> FunctionPolicy:
        return policy_of(self.policy, function)

    def _drive(self, intent: Intent, *, wait_for_lease: float = 2.0) -> tuple[Deployment, AliasState]:
        return _landed(self.reconciler.drive(intent.id, wait_for_lease=wait_for_lease))

    def _submit_or_join(self, intent: Intent, d: Deployment) -> Intent:
        """Make the intent durable; the same change asked again (a second click) joins the open one."""
        try:
            return self.reconciler.submit(intent, deployment_revision=d.revision)
        except IntentInProgress as exc:
            pending = self.store.open_intent_for(d.id)
            if pending is None or pending.kind != intent.kind:
                what = pending.kind.replace("_", " ") if pending else "another change"
                raise AlreadyActed(f"{what} of {d.key} is being applied; nothing was changed") from exc
            return pending
        except StaleDeployment:
            raise AlreadyActed(f"{d.key} changed while you asked; look again") from None


class Revert(_RecoveryBase):
    """Undo a promotion: 100% back to the version that served before it."""

    def deployment(self, deployment_id: str) -> Deployment:
        """The deployment a Revert button was drawn for."""
        d = self.store.get(deployment_id)
        if d is None:
            raise Refused(f"no deployment {deployment_id}")
        return d

    def target(self, function: str, alias: str | None = None) -> Deployment:
        """The promotion a revert of function:alias would undo; Refused when there is none to undo."""
        policy = self._policy(function)
        alias = alias or policy.alias
        for d in self.store.history(function, alias, 20):
            if d.state is State.CANCELLED:
                continue  # a plan that never routed traffic
            if d.is_live:
                raise Refused(
                    f"a canary is live on {d.key} ({d.id}, {d.state.value.replace('_', ' ')}): "
                    f"use `rollback {function} --reason TEXT` to end it"
                )
            if d.state is State.PROMOTED:
                return d
            raise Refused(
                f"nothing to revert on {d.key}: its last deployment {d.id} (v{d.stable_version} → "
                f"v{d.canary_version}) was rolled back, so v{d.stable_version} already serves"
            )
        raise Refused(f"nothing to revert on {function}:{alias}: canary-bot recorded no promotion of it")

    def preview(self, function: str, alias: str | None = None) -> RevertPreview:
        d = self.target(function, alias)
        current = self.traffic.get_alias(d.function, d.alias)
        self._check_alias(d, current)
        return RevertPreview(deployment=d, alias=current)

    def revert(
        self,
        function: str,
        alias: str | None,
        actor: Actor,
        *,
        reason: str,
        deployment_id: str | None = None,
        expected_revision: int | None = None,
    ) -> ActionResult:
        """Authorized (approvers only) when asked; a second click of the same button changes nothing more."""
        policy = self._policy(function)
        if deployment_id is not None:
            d = self.store.get(deployment_id)
            if d is None:
                raise Refused(f"no deployment {deployment_id}")
            self.authorizer.check(actor, policy, "revert", d)
            if d.state is State.ROLLED_BACK:
                # No reason here: it is someone's text, and this answer is not escaped for Slack.
                by = f" by {person(d.ended_by)}" if d.ended_by else ""
                when = f" at {d.ended_at:%H:%M} UTC" if d.ended_at else ""
                raise AlreadyActed(f"{d.key} was already reverted{by}{when}: v{d.stable_version} serves")
            latest = self.target(d.function, d.alias)
            if latest.id != d.id:
                raise Refused(
                    f"{d.key} was promoted again since ({latest.id}: v{latest.canary_version}); "
                    f"`revert {d.function}` undoes that one"
                )
            if expected_revision is not None and d.revision != expected_revision:
                raise AlreadyActed(f"this message is out of date: {d.key} changed since; look again")
        else:
            d = self.target(function, alias)
            self.authorizer.check(actor, policy, "revert", d)
        pending = self.store.open_intent_for(d.id)
        if pending is None:
            self._check_alias(d, self.traffic.get_alias(d.function, d.alias))
        intent = Intent(
            id=new_intent_id(d.id, "revert"),
            deployment_id=d.id,
            kind="revert",
            target=Routing(version=d.stable_version, weights={}),
            accept_from=(Routing(version=d.canary_version, weights={}),),
            expected_revision_id=d.alias_revision,
            actor=actor.label,
            actor_mention=actor.mention,
            reason=reason,
            created_at=self.clock.now(),
        )
        intent = self._submit_or_join(intent, d)
        d, after = self._drive(intent)
        return ActionResult(
            deployment=d, alias=after, message=f"reverted: {d.key} now {after.describe()} ({d.id})"
        )

    def _check_alias(self, d: Deployment, alias: AliasState) -> None:
        """Never overwrite an alias someone else changed: refuse, saying what is there."""
        same_routing = alias.version == d.canary_version and not alias.weights
        same_revision = d.alias_revision is None or d.alias_revision == alias.revision_id
        if not (same_routing and same_revision):
            raise Refused(
                f"{d.key} was changed outside canary-bot since {d.id} promoted v{d.canary_version}: it routes "
                f"{alias.describe()} (revision {alias.revision_id}). Nothing was changed; look before going back."
            )


class Fallback(_RecoveryBase):
    """The emergency fallback: the serving code without some variables, 100% at once."""

    def authorize(self, actor: Actor, function: str) -> None:
        """Approvers only: checked when the button is clicked, before anything else."""
        self.authorizer.check(actor, self._policy(function), "fallback", None)

    def preview(self, function: str, alias: str | None) -> tuple[AliasState, Deployment | None]:
        """The alias now, and the live canary a fallback would roll back first (if any)."""
        alias = alias or self._policy(function).alias
        return self.traffic.get_alias(function, alias), self.store.live_for(function, alias)

    def fallback(
        self,
        function: str,
        alias: str | None,
        actor: Actor,
        *,
        unset: Sequence[str],
        reason: str | None = None,
    ) -> ActionResult:
        policy = self._policy(function)
        alias = alias or policy.alias
        self.authorizer.check(actor, policy, "fallback", None)
        if not unset:
            raise Refused("say which variables to remove (--unset KEY)")
        why = f"fallback without {', '.join(unset)}" + (f": {reason}" if reason else "")
        live = self.store.live_for(function, alias)
        if live is not None:
            pending = self.store.open_intent_for(live.id)
            if live.id.startswith(FALLBACK_ID_PREFIX) and pending is not None and pending.kind == "fallback":
                d, after = self._drive(pending)  # the same fallback asked again: finish it, nothing new
                return self._answer(d, after)
        self._refuse_if_changing(function, alias, live)
        self._refuse_absent_keys(self.traffic.get_alias(function, alias), unset)
        if live is not None:
            self._end_live_canary(live, actor, why)
        current = self.traffic.get_alias(function, alias)
        if live is not None and not self.traffic.environment_keys(function, current.version) & set(unset):
            # Rolling the canary back took the variables out of the traffic path: nothing to publish.
            ended = self.store.get(live.id) or live
            return ActionResult(
                deployment=ended,
                alias=current,
                message=(
                    f"fallback: rolled back {live.id}; {function}:{alias} now {current.describe()}, and "
                    f"v{current.version} runs without {', '.join(unset)} already: nothing was published"
                ),
            )
        if current.weights:
            raise Refused(
                f"{function}:{alias} routes {current.describe()} outside canary-bot: nothing was changed. "
                "Settle the split first (or fall back by hand)"
            )
        now = self.clock.now()
        d = Deployment(
            id=f"{FALLBACK_ID_PREFIX}{now:%Y%m%d}-{uuid.uuid4().hex[:6]}",
            function=function,
            alias=alias,
            stable_version=current.version,
            canary_version=current.version,  # the published version replaces it when recorded
            steps=(1.0,),
            weight=1.0,
            soak=timedelta(0),
            created_by=actor.label,
            created_at=now,
            updated_at=now,
            alias_revision=current.revision_id,
            reason=why,
            changes={key: None for key in unset},
            channel=policy.channel,
        )
        d = self.store.create(d)
        intent = Intent(
            id=new_intent_id(d.id, "fallback"),
            deployment_id=d.id,
            kind="fallback",
            target=Routing(version=current.version, weights={}),  # the published version, once known
            accept_from=(Routing(version=current.version, weights={}),),
            expected_revision_id=current.revision_id,
            actor=actor.label,
            actor_mention=actor.mention,
            reason=why,
            detail={"from_version": current.version, "unset": list(unset)},
            created_at=now,
        )
        intent = self._submit_or_join(intent, d)
        d, after = self._drive(intent, wait_for_lease=5.0)
        return self._answer(d, after)

    def check_keys(self, function: str, alias: str | None, unset: Sequence[str]) -> None:
        """Bad input (nothing changed) when a key to remove is not set on the version now serving."""
        alias = alias or self._policy(function).alias
        self._refuse_absent_keys(self.traffic.get_alias(function, alias), unset)

    def _refuse_absent_keys(self, serving: AliasState, unset: Sequence[str]) -> None:
        """Every key must be set on some version the alias serves now (stable, or a canary beside it)."""
        versions = [serving.version, *serving.weights]
        present: set[str] = set()
        for version in versions:
            present |= self.traffic.environment_keys(serving.function, version)
        absent = [key for key in unset if key not in present]
        if absent:
            on = " or ".join(f"v{v}" for v in versions)
            raise InvalidPlan(
                f"{', '.join(absent)} {'is' if len(absent) == 1 else 'are'} not set on {on} of "
                f"{serving.function}, which serve{'s' if len(versions) == 1 else ''} now: nothing to remove, "
                "nothing was changed"
            )

    def _refuse_if_changing(self, function: str, alias: str, live: Deployment | None) -> None:
        """A traffic change still being applied on this alias (a revert AWS throttled, say) is finished
        first: falling back over it would build on the code it is taking away."""
        for intent in self.store.unfinished_intents():
            if intent.status != "open":
                continue  # recorded: the alias already has it, only its announcement is pending
            d = self.store.get(intent.deployment_id)
            if d is None or (d.function, d.alias) != (function, alias):
                continue
            if (
                live is not None
                and d.id == live.id
                and intent.kind in ("rollback", "start", "next_step", "weight")
            ):
                continue  # the live canary is rolled back first, superseding its open change
            raise Refused(
                f"a {intent.kind.replace('_', ' ')} of {d.key} by {person(intent.actor)} is still being applied "
                "(canary-bot keeps retrying it): nothing was changed. `status` shows it; fall back once it "
                "has finished, or if it cannot finish"
            )

    def _answer(self, d: Deployment, after: AliasState) -> ActionResult:
        gone = ", ".join(d.changes)
        return ActionResult(
            deployment=d,
            alias=after,
            message=(
                f"fallback: {d.key} now {after.describe()} (v{d.canary_version} = v{d.stable_version}'s code "
                f"without {gone}; {d.id})"
            ),
        )

    def _end_live_canary(self, d: Deployment, actor: Actor, reason: str) -> None:
        """A live canary is rolled back first (a plan that never routed is cancelled)."""
        now = self.clock.now()
        pending = self.store.open_intent_for(d.id)
        if d.state is State.PLANNED and pending is None:
            t = canary.cancel(d, now=now, actor=actor.label, reason=reason)
            self.store.save(t.deployment)
            self.store.append_audit(t.audit)
            return
        if canary.can(d, "begin_rollback"):
            t = canary.begin_rollback(d, now=now, actor=actor.label, reason=reason)
            d = self.store.save(t.deployment)
            self.store.append_audit(t.audit)
        if pending is not None and pending.kind == "rollback":
            intent = pending
        else:
            intent = self.reconciler.submit(
                rollback_intent(d, actor=actor.label, actor_mention=actor.mention, reason=reason, now=now),
                supersede=True,
            )
        self._drive(intent, wait_for_lease=5.0)


def _landed(result: DriveResult) -> tuple[Deployment, AliasState]:
    if result.status == "done" and result.deployment is not None and result.alias_after is not None:
        return result.deployment, result.alias_after
    kind = result.intent.kind
    if result.status == "drift":
        raise AliasDrift(result.error or "the alias changed outside canary-bot; nothing was changed")
    if result.status == "pending":
        raise ActionPending(
            f"AWS did not take the {kind} yet: {result.error}. canary-bot keeps trying and tells the "
            "approvers if it keeps failing; no need to ask again."
        )
    if result.status == "busy":
        raise ActionPending(f"the {kind} is recorded and another worker is applying it")
    raise Refused(f"the {kind} was not applied: {result.error or 'it was superseded'}")


__all__ = ["FALLBACK_ID_PREFIX", "Fallback", "Revert", "RevertPreview"]
