"""The one guarded alias writer: drives every open traffic intent to done, across crashes, retries and replicas.

Level-triggered, like a Kubernetes controller: for each open intent (rollbacks first) it holds the
deployment's lease, reads the alias, and
- finds the target already there (an earlier write landed though its answer was lost) → records it;
- finds the alias as the bot left it → one UpdateAlias guarded by the RevisionId it just read → records it;
- finds anything else → drift: nothing is written, the canary is held (a plan is cancelled) and people told.
An AWS failure leaves the intent open with a backoff (full jitter); after `escalate_after` failed attempts the
approvers are told, and the loop keeps trying. Recording is one store transaction (deployment, audit, intent
recorded); what follows it (alarms, dashboard, the announcement) is redone until the intent is done, so a crash
at any point ends in the same state with no action applied twice.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from bot import canary
from bot.actors import BOT
from bot.canary import IllegalTransition, Transition
from bot.config import FunctionPolicy, Policy
from bot.events import AnyEvent, StateNoted
from bot.follow_up import FollowUps
from bot.intents import Intent, IntentKind, Routing, backoff
from bot.model import AliasState, AuditPhase, AuditRecord, DeployLock, Deployment, State
from bot.ports import (
    AlarmsPort,
    AliasDrift,
    CanaryError,
    Clock,
    PublishConflict,
    StaleDeployment,
    StorePort,
    TrafficPort,
)
from bot.tick_lease import replica_id

log = logging.getLogger(__name__)

DriveStatus = Literal["done", "pending", "drift", "busy", "closed"]

# The transition that records each kind of intent (a rollback records from any live state).
_TRANSITION: dict[str, str] = {
    "start": "start",
    "next_step": "next_step",
    "weight": "set_weight",
    "promote": "promote",
    "revert": "revert",
    "fallback": "fallback",
}

LEASE_WAIT_POLL_SECONDS = 0.02

# Changes that send more traffic to new code: a deploy lock put on after they were asked for stops them.
_STOPPED_BY_LOCKS = frozenset({"start", "next_step", "weight", "promote"})


@dataclass(frozen=True)
class DriveResult:
    intent: Intent
    status: DriveStatus
    deployment: Deployment | None = None
    alias_before: AliasState | None = None
    alias_after: AliasState | None = None
    error: str | None = None


def lease_name(deployment_id: str) -> str:
    return f"deployment:{deployment_id}"


def new_intent_id(deployment_id: str, kind: IntentKind) -> str:
    return f"{deployment_id}:{kind}:{uuid.uuid4().hex[:10]}"


class Reconciler:
    def __init__(
        self,
        *,
        traffic: TrafficPort,
        store: StorePort,
        clock: Clock,
        policy: Policy,
        notify: Callable[[AnyEvent], object],
        alarms: AlarmsPort | None = None,
        alarm_topic_arn: str | None = None,
        owner: str | None = None,
        lease_ttl: timedelta = timedelta(seconds=30),
        escalate_after: int = 3,
    ) -> None:
        self._traffic = traffic
        self._store = store
        self._clock = clock
        self._policy = policy
        self._notify = notify
        self._alarms = alarms
        self._alarm_topic_arn = alarm_topic_arn
        self.owner = owner or replica_id("bot")  # names the host and process holding a lease
        self._lease_ttl = lease_ttl
        self._escalate_after = escalate_after
        self._follow_ups = FollowUps(
            store=store,
            clock=clock,
            policy=policy,
            notify=notify,
            alarms=alarms,
            alarm_topic_arn=alarm_topic_arn,
        )

    # ------------------------------------------------------------ submitting
    def submit(
        self, intent: Intent, *, supersede: bool = False, deployment_revision: int | None = None
    ) -> Intent:
        """Make the intent durable (the audit's "intent" line with it). Raises IntentInProgress, and
        StaleDeployment when deployment_revision is given and the deployment has moved on."""
        stored, superseded = self._store.open_intent(
            intent, supersede=supersede, deployment_revision=deployment_revision
        )
        if superseded:
            # Writing over what a superseded intent may already have written is ours to do too.
            extra = tuple(old.target for old in superseded)
            stored = self._store.save_intent(
                stored.model_copy(update={"accept_from": stored.accept_from + extra})
            )
        d = self._store.get(intent.deployment_id)
        self._store.append_audit(
            AuditRecord(
                deployment_id=intent.deployment_id,
                at=self._clock.now(),
                actor=intent.actor,
                action=intent.kind,
                phase="intent",
                from_state=d.state if d else None,
                reason=intent.reason,
                detail={
                    "intent": intent.id,
                    "version": intent.target.version,
                    "weights": intent.target.weights,
                    "superseded": [old.id for old in superseded],
                },
            )
        )
        return stored

    # ------------------------------------------------------------ the loop
    def run_once(self, *, all_open: bool = False) -> list[DriveResult]:
        """One pass: repair rollbacks without an intent, drive every due intent (every open one with
        `all_open`, as at start-up: a backoff set by a dead process means nothing), finish follow-ups."""
        self._repair_rollbacks()
        now = self._clock.now()
        results: list[DriveResult] = []
        for intent in self._store.unfinished_intents():
            if intent.status == "recorded":
                d = self._store.get(intent.deployment_id)
                if d is not None:
                    self._follow_up(intent, d)
            elif all_open or intent.due(now):
                results.append(self.drive(intent.id))
        return results

    def drive(self, intent_id: str, *, wait_for_lease: float = 0.0) -> DriveResult:
        """One attempt at one intent, under the deployment's lease."""
        intent = self._store.get_intent(intent_id)
        if intent is None:
            raise KeyError(intent_id)
        name = lease_name(intent.deployment_id)
        token = self._acquire(name, wait_for_lease)
        if token is None:
            return DriveResult(intent, "busy")
        try:
            return self._drive_held(intent_id, name, token)
        finally:
            self._store.release_lease(name, self.owner)

    def _acquire(self, name: str, wait: float) -> int | None:
        deadline = time.monotonic() + wait
        while True:
            token = self._store.acquire_lease(
                name, self.owner, self._clock.now(), self._lease_ttl.total_seconds()
            )
            if token is not None or time.monotonic() >= deadline:
                return token
            time.sleep(LEASE_WAIT_POLL_SECONDS)

    def _drive_held(self, intent_id: str, name: str, token: int) -> DriveResult:
        intent = self._store.get_intent(intent_id)
        if intent is None or not intent.is_open:
            assert intent is not None
            return DriveResult(intent, "closed")
        d = self._store.get(intent.deployment_id)
        if d is None:
            closed = self._store.save_intent(intent.model_copy(update={"status": "cancelled"}))
            return DriveResult(closed, "closed", error="deployment not found")
        if intent.kind != "rollback" and not canary.can(d, _TRANSITION[intent.kind]):
            # The deployment moved on (ended, rolled back, cancelled) before this change was written: drop it.
            reason = f"not applied: {d.key} is {d.state.value}"
            closed = self._store.save_intent(
                intent.model_copy(update={"status": "cancelled", "last_error": reason})
            )
            return DriveResult(closed, "closed", d, error=reason)
        locked = self._locked_since_asked(intent, d)
        if locked is not None:
            return self._stopped_by_lock(intent, d, locked)
        if intent.kind == "fallback" and "published" not in intent.detail:
            try:
                intent = self._publish_fallback(intent, d)
            except PublishConflict as exc:
                return self._refused(intent, d, str(exc))
            except CanaryError as exc:
                return self._failed(intent, d, exc)
        try:
            before = self._traffic.get_alias(d.function, d.alias)
            if intent.target.matches(before):
                after = before
            elif intent.is_ours_to_write(before):
                try:
                    after = self._traffic.update_routing(
                        d.function,
                        d.alias,
                        version=intent.target.version,
                        weights=intent.target.weights,
                        revision_id=before.revision_id,
                    )
                except AliasDrift:
                    # Changed between our read and our write: read again and judge what is there now.
                    before = self._traffic.get_alias(d.function, d.alias)
                    if not intent.target.matches(before):
                        return self._drifted(intent, d, before)
                    after = before
            else:
                return self._drifted(intent, d, before)
        except CanaryError as exc:
            return self._failed(intent, d, exc)
        answered_at = self._clock.now()  # UpdateAlias answered (or the alias read at the target): "reverted"
        if not self._store.holds_lease(name, self.owner, token, self._clock.now()):
            # We were presumed dead and another replica took over; it will find the alias at the target.
            return DriveResult(intent, "busy", d, error="lease lost")
        recorded = self._record(intent, d, before, after, answered_at)
        done = self._store.get_intent(intent.id) or intent
        if recorded is None:
            return DriveResult(done, "closed", d, before, after)
        self._follow_up(done, recorded)
        return DriveResult(done, "done", recorded, before, after)

    # ------------------------------------------------------------ outcomes
    def _record(
        self, intent: Intent, d: Deployment, before: AliasState, after: AliasState, answered_at: datetime
    ) -> Deployment | None:
        """Deployment transition, audit "done" and intent done: one store transaction. None when the intent
        was superseded meanwhile (a rollback took over: it writes over what this one left)."""
        for _ in range(5):
            fresh = self._store.get_intent(intent.id)
            if fresh is None or not fresh.is_open:
                return None
            current = self._store.get(d.id) or d
            try:
                t = self._transition(intent, current, after)
            except IllegalTransition as exc:
                log.error("%s of %s landed but cannot be recorded: %s", intent.kind, d.id, exc)
                self._store.save_intent(
                    fresh.model_copy(update={"status": "cancelled", "last_error": str(exc)})
                )
                return None
            audit = t.audit.model_copy(
                update={
                    "phase": "done",
                    "alias_before": before.routing(),
                    "alias_after": after.routing(),
                    "detail": {**t.audit.detail, "intent": intent.id},
                }
            )
            done = intent.model_copy(
                update={
                    "status": "recorded",
                    # The one measured end of the change: every message about it gives this time.
                    "done_at": answered_at,
                    "alias_before": before.routing(),
                    "alias_after": after.routing(),
                    "last_error": None,
                }
            )
            try:
                return self._store.complete_intent(done, t.deployment, audit)
            except StaleDeployment:
                continue  # a verdict or a person saved it meanwhile: apply the transition to the fresh one
        raise StaleDeployment(f"could not record {intent.kind} of {d.id}: it kept changing")

    def _transition(self, intent: Intent, d: Deployment, after: AliasState) -> Transition:
        now = self._clock.now()
        actor, rev = intent.actor, after.revision_id
        if intent.kind == "start":
            return canary.start(d, now=now, actor=actor, alias_revision=rev)
        if intent.kind == "next_step":
            return canary.next_step(d, now=now, actor=actor, alias_revision=rev)
        if intent.kind == "weight":
            weight = float(intent.detail["weight"])
            return canary.set_weight(d, weight=weight, now=now, actor=actor, alias_revision=rev)
        if intent.kind == "revert":
            return canary.revert(
                d, now=now, actor=actor, reason=intent.reason or "reverted", alias_revision=rev
            )
        if intent.kind == "fallback":
            return canary.fallback(d, now=now, actor=actor, version=intent.target.version, alias_revision=rev)
        if intent.kind == "promote":
            watch = self._function_policy(d.function).watch_after_promote
            until = now + watch if watch > timedelta(0) else None
            return canary.promote(d, now=now, actor=actor, alias_revision=rev, watch_until=until)
        # rollback
        if d.state is State.PLANNED:
            return canary.cancel(d, now=now, actor=actor, reason=intent.reason or "rolled back")
        if d.state is not State.ROLLING_BACK:
            d = canary.begin_rollback(d, now=now, actor=actor, reason=intent.reason or "rollback").deployment
        return canary.finish_rollback(d, now=now, actor=actor, alias_revision=rev)

    def _publish_fallback(self, intent: Intent, d: Deployment) -> Intent:
        """The fallback's version, published once: its description names the intent, so after a crash the
        adapter finds the version already made instead of publishing another. Recorded before any routing."""
        published = self._traffic.publish_fallback(
            d.function,
            from_version=str(intent.detail["from_version"]),
            unset_env=list(intent.detail.get("unset", [])),
            description=fallback_description(intent),
        )
        updated = self._store.save_intent(
            intent.model_copy(
                update={
                    "target": Routing(version=published.version, weights={}),
                    "detail": {**intent.detail, "published": published.version},
                }
            )
        )
        self._audit(d, updated, "event", f"published v{published.version} ({fallback_description(intent)})")
        return updated

    def _locked_since_asked(self, intent: Intent, d: Deployment) -> DeployLock | None:
        """A person's deploy lock put on the alias after this change was asked for (while AWS kept refusing
        it): a lock means "no more traffic to new code", so the change is not applied. Rollbacks, reverts and
        fallbacks are never stopped."""
        if intent.kind not in _STOPPED_BY_LOCKS:
            return None
        for lock in self._store.locks_for(d.function, d.alias):
            if lock.version is None and lock.since > intent.created_at:
                return lock
        return None

    def _stopped_by_lock(self, intent: Intent, d: Deployment, lock: DeployLock) -> DriveResult:
        # Plain text: the notice escapes it (a lock's reason is someone's words).
        since = f"{lock.since:%Y-%m-%d %H:%M} UTC"
        reason = (
            f"{_words(intent.kind)} by {intent.actor} not applied: {d.key} was locked by "
            f"{lock.locked_by} since {since} ({lock.reason})"
        )
        result = self._refused(intent, d, reason)
        self._notify(
            StateNoted(
                deployment=self._store.get(d.id) or d,
                at=self._clock.now(),
                actor=BOT.label,
                what="warning",
                reason=reason,
                key=f"lock-stopped:{intent.id}",
            )
        )
        return result

    def _refused(self, intent: Intent, d: Deployment, reason: str) -> DriveResult:
        """A change AWS cannot take as asked (retrying would not help): stop it, cancel its plan."""
        closed = self._store.save_intent(
            intent.model_copy(update={"status": "cancelled", "last_error": reason})
        )
        self._audit(d, intent, "failed", reason)
        current = self._store.get(d.id) or d
        if current.state is State.PLANNED:
            with contextlib.suppress(StaleDeployment):
                t = canary.cancel(current, now=self._clock.now(), actor=BOT.label, reason=reason)
                self._store.save(t.deployment)
                self._store.append_audit(t.audit)
        return DriveResult(closed, "closed", d, error=reason)

    def _failed(self, intent: Intent, d: Deployment, exc: CanaryError) -> DriveResult:
        now = self._clock.now()
        attempts = intent.attempts + 1
        escalate = attempts >= self._escalate_after and not intent.escalated
        failed = self._store.save_intent(
            intent.model_copy(
                update={
                    "attempts": attempts,
                    "next_attempt_at": now + backoff(attempts),
                    "last_error": str(exc),
                    "escalated": intent.escalated or escalate,
                }
            )
        )
        self._audit(d, intent, "failed", f"attempt {attempts}: {exc}")
        log.warning("%s of %s failed (attempt %d): %s", intent.kind, d.id, attempts, exc)
        if escalate:
            self._notify(
                StateNoted(
                    deployment=d,
                    at=now,
                    actor=BOT.label,
                    what="stuck",
                    reason=(
                        f"the {_words(intent.kind)} has failed {attempts} times ({exc}); "
                        "canary-bot keeps trying and will say when it is done"
                    ),
                )
            )
        return DriveResult(failed, "pending", d, error=str(exc))

    def _drifted(self, intent: Intent, d: Deployment, alias: AliasState) -> DriveResult:
        """Someone else changed the alias: write nothing, stop this intent, hold the canary, tell people."""
        version, weights = canary.expected_routing(d)
        expected = Routing(version=version, weights=weights)
        reason = (
            f"{d.key} was changed outside canary-bot: it routes {alias.describe()}, expected "
            f"{_describe(d, expected)}. Nothing was changed; the canary is held until someone resolves it."
        )
        closed = self._store.save_intent(
            intent.model_copy(
                update={"status": "drift", "last_error": reason, "alias_before": alias.routing()}
            )
        )
        self._audit(d, intent, "failed", reason, alias=alias)
        self.hold_for_drift(d, reason, alias=alias)
        return DriveResult(closed, "drift", d, alias, error=reason)

    def hold_for_drift(self, d: Deployment, reason: str, *, alias: AliasState) -> Deployment | None:
        """Hold the canary (cancel a plan) because the alias drifted; announce it once. A rollback under
        way stays ROLLING_BACK: a person must look before anything is written."""
        now = self._clock.now()
        current = self._store.get(d.id) or d
        if current.state is State.PLANNED:
            t = canary.cancel(current, now=now, actor=BOT.label, reason="alias changed outside canary-bot")
        elif canary.can(current, "hold"):
            t = canary.hold(current, now=now, actor=BOT.label, reason=f"drift: {reason}")
        else:
            t = None
        held = current
        if t is not None:
            try:
                held = self._store.save(t.deployment)
            except StaleDeployment:
                return None
            self._store.append_audit(t.audit.model_copy(update={"alias_before": alias.routing()}))
        # Told once per drifted routing, however many ticks see it.
        seen = f"{alias.version}:{sorted(alias.weights.items())}:{alias.revision_id}"
        self._notify(
            StateNoted(
                deployment=held,
                at=now,
                actor=BOT.label,
                what="drift",
                reason=reason,
                key=f"drift:{d.id}:{seen}",
            )
        )
        return held

    # ------------------------------------------------------------ after the alias write
    def _follow_up(self, intent: Intent, d: Deployment) -> None:
        """What follows a recorded change (bot.follow_up), then the intent is done; redone until then."""
        if intent.status != "recorded":
            return
        self._follow_ups.run(intent, d)
        self._store.save_intent(intent.model_copy(update={"status": "done"}))

    # ------------------------------------------------------------ repairs
    def _repair_rollbacks(self) -> None:
        """A deployment saved ROLLING_BACK whose intent was never written (a crash in between) gets one."""
        for d in self._store.list_live():
            if d.state is State.ROLLING_BACK and self._store.open_intent_for(d.id) is None:
                if any(i.kind == "rollback" and i.status == "drift" for i in self._store.intents_for(d.id)):
                    continue  # stopped on drift on purpose: a person must look
                with contextlib.suppress(CanaryError):
                    self.submit(
                        rollback_intent(
                            d, actor=BOT.label, reason=d.reason or "rollback", now=self._clock.now()
                        )
                    )

    # ------------------------------------------------------------ helpers
    def _audit(
        self,
        d: Deployment,
        intent: Intent,
        phase: AuditPhase,
        reason: str,
        *,
        alias: AliasState | None = None,
    ) -> None:
        self._store.append_audit(
            AuditRecord(
                deployment_id=d.id,
                at=self._clock.now(),
                actor=intent.actor,
                action=intent.kind,
                phase=phase,
                from_state=d.state,
                reason=reason,
                alias_before=alias.routing() if alias else None,
                detail={"intent": intent.id},
            )
        )

    def _function_policy(self, function: str) -> FunctionPolicy:
        return self._policy.for_function(function) or FunctionPolicy.model_validate(self._policy.defaults)


def rollback_intent(
    d: Deployment,
    *,
    actor: str,
    reason: str,
    now: datetime,
    actor_mention: str = "",
    detected_at: datetime | None = None,
) -> Intent:
    """Back to 100% stable, from what the deployment routes (or, for a plan, from what its start wanted)."""
    routed = (
        d.model_copy(update={"state": State.CANARY}) if d.state in (State.PLANNED, State.ROLLING_BACK) else d
    )
    version, weights = canary.expected_routing(routed)
    detail: dict[str, object] = {}
    if detected_at is not None:
        detail["detected_at"] = detected_at.isoformat()
    return Intent(
        id=new_intent_id(d.id, "rollback"),
        deployment_id=d.id,
        kind="rollback",
        target=Routing(version=d.stable_version, weights={}),
        accept_from=(Routing(version=version, weights=weights),),
        expected_revision_id=d.alias_revision,
        actor=actor,
        actor_mention=actor_mention,
        reason=reason,
        detail=detail,
        created_at=now,
    )


def fallback_description(intent: Intent) -> str:
    """The fallback version's Lambda description (at most 256 characters): names the intent, so a retry
    finds the version an earlier attempt published."""
    keys = ", ".join(str(key) for key in intent.detail.get("unset", []))
    return f"canary-bot fallback {intent.id}: v{intent.detail.get('from_version')} without {keys}"[:256]


def _describe(d: Deployment, routing: Routing) -> str:
    return AliasState(
        function=d.function, alias=d.alias, version=routing.version, weights=routing.weights, revision_id=""
    ).describe()


def _words(kind: str) -> str:
    return {"next_step": "next step", "weight": "weight change", "start": "start"}.get(kind, kind)


__all__ = [
    "DriveResult",
    "Reconciler",
    "fallback_description",
    "lease_name",
    "new_intent_id",
    "rollback_intent",
]
