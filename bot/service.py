"""CanaryService: the use cases, and the only code path that changes traffic.

Each use case loads from the store, asks the pure core for the transition, applies the effect through an
adapter, writes the audit log before and after, and tells the notifier. Slack, the CLI, the scheduler and the
alarm intake all come through here.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from bot import canary
from bot.actors import BOT, Action, Actor, Authorizer, NotAuthorized
from bot.canary import InvalidPlan, Transition
from bot.comms import deployment_evidence
from bot.config import FunctionPolicy, Policy
from bot.events import (
    AnyEvent,
    DecisionNeeded,
    MessageRef,
    Notifier,
    NullNotifier,
    StateNoted,
)
from bot.intents import Intent, IntentKind, Routing, same_weights
from bot.model import AliasState, AuditRecord, Deployment, PeriodFigures, State
from bot.ports import (
    AlarmsPort,
    AliasDrift,
    AwsFailure,
    CanaryError,
    Clock,
    IntentInProgress,
    LiveDeploymentExists,
    NotFound,
    PublishedVersion,
    StaleDeployment,
    StorePort,
    TrafficPort,
    VersionNotFound,
)
from bot.reconciler import DriveResult, Reconciler, new_intent_id, rollback_intent
from bot.units import format_duration, format_percent
from bot.verbs import StartArgs

log = logging.getLogger(__name__)

TrafficAction = Literal["promoted", "rolled_back", "weight", "next_step"]

PLAN_TTL = timedelta(minutes=15)


# ---------------------------------------------------------------- refusals
class Refused(CanaryError):
    """The request is understood but cannot be done now; nothing was changed."""


class NothingLive(Refused):
    pass


class AlreadyActed(Refused):
    """Someone else's action on the same deployment won the race (or the click is stale)."""


class AlarmsFiring(Refused):
    def __init__(self, message: str, alarms: list[str]) -> None:
        super().__init__(message)
        self.alarms = alarms


class ActionPending(AwsFailure):
    """The change is recorded and being retried: AWS has not taken it yet (or another worker is on it)."""


class NotInPolicy(CanaryError):
    """The function is not listed in the policy file (bad input)."""


# ---------------------------------------------------------------- results
class StartPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment: Deployment
    alias_now: AliasState
    policy: FunctionPolicy
    published: PublishedVersion | None = None
    alarms_overridden: tuple[str, ...] = ()
    alarm_rollback_off: str | None = (
        None  # why a CloudWatch alarm cannot roll this canary back (None: it can)
    )

    @property
    def after(self) -> str:
        d = self.deployment
        return AliasState(
            function=d.function,
            alias=d.alias,
            version=d.stable_version,
            weights={d.canary_version: d.weight},
            revision_id="",
        ).describe()


class ActionResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment: Deployment
    alias: AliasState | None = None
    message: str


class StatusEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment: Deployment
    alias: AliasState | None
    alias_error: str | None = None
    policy: FunctionPolicy | None = None


class HistoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment: Deployment
    audit: list[AuditRecord]


def default_id(now: datetime) -> str:
    return f"d-{now:%Y%m%d}-{uuid.uuid4().hex[:6]}"


class CanaryService:
    def __init__(
        self,
        *,
        traffic: TrafficPort,
        store: StorePort,
        policy: Policy,
        clock: Clock,
        notifier: Notifier | None = None,
        authorizer: Authorizer | None = None,
        alarms: AlarmsPort | None = None,
        alarm_topic_arn: str | None = None,
        new_id: Callable[[datetime], str] = default_id,
        plan_ttl: timedelta = PLAN_TTL,
        reconciler: Reconciler | None = None,
        lease_ttl: timedelta = timedelta(seconds=30),
        escalate_after: int = 3,
    ) -> None:
        self.traffic = traffic
        self.store = store
        self.policy = policy
        self.clock = clock
        self.notifier: Notifier = notifier or NullNotifier()
        self.authorizer = authorizer or Authorizer()
        self.alarms = alarms
        self.alarm_topic_arn = alarm_topic_arn
        self._new_id = new_id
        self._plan_ttl = plan_ttl
        # The one guarded alias writer: every traffic change below is an intent it drives to done.
        self.reconciler = reconciler or Reconciler(
            traffic=traffic,
            store=store,
            clock=clock,
            policy=policy,
            notify=self._notify,
            alarms=alarms,
            alarm_topic_arn=alarm_topic_arn,
            lease_ttl=lease_ttl,
            escalate_after=escalate_after,
        )

    @property
    def alarm_rollback_off(self) -> str | None:
        """Why a CloudWatch alarm cannot roll back a canary started now (None: it can)."""
        return why_alarm_rollback_off(self.alarms is not None, self.alarm_topic_arn)

    # ------------------------------------------------------------ lookups
    def policy_for(self, function: str) -> FunctionPolicy:
        found = self.policy.for_function(function)
        if found is None:
            listed = ", ".join(self.policy.function_names()) or "none"
            raise NotInPolicy(f"{function} is not listed in the canary policy (listed: {listed})")
        return found

    def alias_for(self, function: str, alias: str | None) -> str:
        return alias or self.policy_for(function).alias

    def live(self, function: str, alias: str | None = None) -> Deployment:
        alias = self.alias_for(function, alias)
        found = self.store.live_for(function, alias)
        if found is None:
            latest = self.store.history(function, alias, 1)
            last = f" (latest: {latest[0].id}: {self._who_acted(latest[0])})" if latest else ""
            raise NothingLive(f"no live canary on {function}:{alias}{last}")
        return found

    def get(self, deployment_id: str) -> Deployment:
        found = self.store.get(deployment_id)
        if found is None:
            raise NothingLive(f"no deployment {deployment_id}")
        return found

    # ------------------------------------------------------------ start
    def plan(self, args: StartArgs, actor: Actor) -> StartPlan:
        """Validate everything, publish the version if asked, and store a PLANNED deployment.

        The alias is not touched. The plan remembers the alias RevisionId it saw, so confirming after someone
        else changed the alias is refused.
        """
        policy = self.policy_for(args.function)
        alias = args.alias or policy.alias
        self.authorizer.check(actor, policy, "start", None)
        now = self.clock.now()
        self._clear_stale_plan(args.function, alias, actor, now)
        current = self.traffic.get_alias(args.function, alias)
        if current.weights:
            raise Refused(
                f"{args.function}:{alias} already routes {current.describe()}: "
                "finish or revert that split before starting a canary"
            )
        overridden = self._alarm_guard(args, policy, actor)
        if not args.publish and args.version is None:
            raise InvalidPlan("give the canary VERSION to route to, or --publish to publish one")
        published: PublishedVersion | None = None
        if args.version is not None:
            if args.version == current.version:
                raise InvalidPlan(
                    f"version {args.version} is already the stable version of {args.function}:{alias}"
                )
            if not self.traffic.version_exists(args.function, args.version):
                raise VersionNotFound(f"version {args.version} of {args.function} does not exist")
            version = args.version
        else:
            published = self.traffic.publish_version(
                args.function,
                set_env=args.set_env,
                unset_env=args.unset_env,
                description=f"canary-bot: published by {actor.label}",
            )
            version = published.version
            if version == current.version:
                raise InvalidPlan(
                    f"publishing gave version {version}, which is already stable on {alias}: "
                    "nothing changed since the last publish"
                )
        changes: dict[str, str | None] = dict(args.set_env)
        changes.update({key: None for key in args.unset_env})
        t = canary.plan(
            id=self._new_id(now),
            function=args.function,
            alias=alias,
            stable_version=current.version,
            canary_version=version,
            steps=self._steps(policy, args.weight),
            soak=args.soak or policy.soak,
            actor=actor.label,
            now=now,
            changes=changes,
            channel=policy.channel,
        )
        planned = t.deployment.model_copy(update={"alias_revision": current.revision_id})
        planned = self.store.create(planned)
        audit = t.audit.model_copy(
            update={"alias_before": current.routing(), "detail": {"override_alarms": args.override_alarms}}
        )
        self.store.append_audit(audit)
        return StartPlan(
            deployment=planned,
            alias_now=current,
            policy=policy,
            published=published,
            alarms_overridden=tuple(overridden),
            alarm_rollback_off=self.alarm_rollback_off,
        )

    def confirm(
        self, deployment_id: str, actor: Actor, *, expected_revision: int | None = None
    ) -> ActionResult:
        """Start the planned canary: route its first weight to the canary version."""
        d = self._planned(deployment_id, actor, "start", expected_revision)
        self.policy_for(d.function)  # still listed
        now = self.clock.now()
        if now - d.created_at > self._plan_ttl:
            self._transition(canary.cancel(d, now=now, actor=BOT.label, reason="preview expired"))
            raise Refused("this preview expired; run start again to see the alias as it is now")
        stable, weights = canary.expected_routing(d.model_copy(update={"state": State.CANARY}))
        result = self._apply(d, actor, "start", Routing(version=stable, weights=weights))
        d, after = self._landed(result)
        return ActionResult(
            deployment=d, alias=after, message=f"canary started: {d.key} now {after.describe()}"
        )

    def cancel(
        self, deployment_id: str, actor: Actor, *, expected_revision: int | None = None
    ) -> ActionResult:
        d = self._planned(deployment_id, actor, "cancel", expected_revision)
        pending = self.store.open_intent_for(d.id)
        if pending is not None:
            raise AlreadyActed(
                f"Start by {pending.actor} is being applied to {d.key}; roll back instead to undo it"
            )
        d = self._transition(canary.cancel(d, now=self.clock.now(), actor=actor.label, reason="cancelled"))
        return ActionResult(deployment=d, message=f"plan for {d.key} cancelled; the alias was not touched")

    # ------------------------------------------------------------ promote / rollback
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
        result = self._apply(d, actor, "promote", Routing(version=d.canary_version, weights={}))
        d, after = self._landed(result)
        return self._answer(d, "promoted", after)

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
    ) -> ActionResult:
        """Revert the alias to 100% stable. A plan that never routed traffic is cancelled instead.

        A Roll back button drawn for an earlier revision of the same deployment still rolls it back while it
        is live: saving its thread or a new verdict bumps the revision, and refusing a rollback for that would
        cost minutes in an emergency. The deployment id guards against acting on another canary, and the
        reconciler's drift check against writing over someone else's change.
        """
        d = self._target(function, alias, deployment_id)
        if d.state is State.PLANNED:
            self._check_click(d, expected_revision)
        policy = self.policy_for(d.function)
        self.authorizer.check(actor, policy, "rollback", d)
        if d.state is State.PLANNED and self.store.open_intent_for(d.id) is None:
            d = self._transition(canary.cancel(d, now=self.clock.now(), actor=actor.label, reason=reason))
            return ActionResult(
                deployment=d, message=f"plan for {d.key} cancelled; the alias was not touched"
            )
        if d.state is State.PLANNED:
            # Its Start is still being applied: roll back what it may have written, then cancel the plan.
            result = self.request_rollback(d, actor, reason=reason, detected_at=detected_at)
            assert result is not None
            d, after = self._landed(result)
            return ActionResult(
                deployment=d, alias=after, message=f"plan for {d.key} cancelled; {after.describe()}"
            )
        if d.state is not State.ROLLING_BACK:
            # ROLLING_BACK first: the soak stops acting on it, and status shows what is happening.
            try:
                d = self._transition(
                    canary.begin_rollback(d, now=self.clock.now(), actor=actor.label, reason=reason)
                )
            except StaleDeployment:
                d = self.get(
                    d.id
                )  # a verdict or another rollback saved it meanwhile: roll back what is there
                if d.state is not State.ROLLING_BACK and not canary.can(d, "begin_rollback"):
                    raise AlreadyActed(self._who_acted(d)) from None
                if d.state is not State.ROLLING_BACK:
                    d = self._transition(
                        canary.begin_rollback(d, now=self.clock.now(), actor=actor.label, reason=reason)
                    )
        result = self.request_rollback(d, actor, reason=reason, detected_at=detected_at, wait_for_lease=5.0)
        assert result is not None
        d, after = self._landed(result)
        return self._answer(d, "rolled_back", after)

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
        existing = self.store.open_intent_for(d.id)
        if existing is not None and existing.kind == "rollback":
            intent = existing
        else:
            intent = self.reconciler.submit(
                rollback_intent(
                    d,
                    actor=actor.label,
                    actor_mention=actor.mention,
                    reason=reason,
                    now=self.clock.now(),
                    detected_at=detected_at,
                ),
                supersede=True,
            )
        if not drive:
            return None
        return self.reconciler.drive(intent.id, wait_for_lease=wait_for_lease)

    # ------------------------------------------------------------ mid-flight controls
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
        if math.isclose(weight, d.weight):
            raise Refused(f"{d.key} already routes {_pct(weight)} to v{d.canary_version}")
        result = self._apply(
            d,
            actor,
            "weight",
            Routing(version=d.stable_version, weights={d.canary_version: weight}),
            detail={"weight": weight},
        )
        d, after = self._landed(result)
        return self._answer(d, "weight", after)

    def next_step(self, d: Deployment, *, reason: str) -> ActionResult:
        """Automatic: the step soaked clean, go to the next weight of the schedule."""
        new_weight = d.steps[d.step_index + 1]
        result = self._apply(
            d,
            BOT,
            "next_step",
            Routing(version=d.stable_version, weights={d.canary_version: new_weight}),
            reason=reason,
        )
        d, after = self._landed(result)
        return self._answer(d, "next_step", after)

    # A button passes the deployment and revision it was rendered for (`deployment_id`, `expected_revision`):
    # a click from an ended deployment's message, or from before a later change, is refused by _actionable.
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
        d = self._transition(canary.hold(d, now=self.clock.now(), actor=actor.label, reason=why))
        self._notify(self._noted(d, actor, "held", why))
        return ActionResult(
            deployment=d, message=f"held: {d.key}; traffic stays {_pct(d.weight)} on the canary"
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
        self._check_routing(d, self.traffic.get_alias(d.function, d.alias))
        d = self._transition(canary.resume(d, now=self.clock.now(), actor=actor.label))
        self._notify(self._noted(d, actor, "resumed", None))
        return ActionResult(deployment=d, message=f"resumed: {d.key} is {_state_words(d.state)} again")

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
        d = self._transition(canary.extend(d, by=by, now=self.clock.now(), actor=actor.label))
        self._notify(self._noted(d, actor, "extended", f"+{_dur(by)}"))
        ends = f" at {d.soak_ends_at:%H:%M} UTC" if d.soak_ends_at else " later"
        return ActionResult(deployment=d, message=f"extended: the soak of {d.key} now ends{ends}")

    # ------------------------------------------------------------ automatic decisions (the soak runner)
    def note_verdict(self, d: Deployment, *, verdict: str, breach_streak: int) -> Deployment:
        """Remember the latest judgement; losing a race with a person's action is fine (they win)."""
        try:
            return self.store.save(
                canary.note_verdict(d, now=self.clock.now(), verdict=verdict, breach_streak=breach_streak)
            )
        except StaleDeployment:
            return self.get(d.id)

    def await_approval(self, d: Deployment, *, reason: str) -> ActionResult:
        """The soak passed: ask the approvers, until the policy's approval timeout."""
        policy = self.policy_for(d.function)
        deadline = self.clock.now() + policy.approval_timeout
        d = self._transition(canary.await_approval(d, now=self.clock.now(), deadline=deadline, reason=reason))
        self._notify(self._decision(d, "approval", reason, policy, deadline=deadline))
        return ActionResult(deployment=d, message=f"approval wanted: {reason}")

    def inconclusive(self, d: Deployment, *, reason: str) -> ActionResult:
        """Too little evidence at soak end: hold (traffic unchanged) and ask people; never promote."""
        policy = self.policy_for(d.function)
        d = self._transition(
            canary.hold(d, now=self.clock.now(), actor=BOT.label, reason=f"inconclusive: {reason}")
        )
        self._notify(self._decision(d, "inconclusive", reason, policy))
        return ActionResult(deployment=d, message=f"inconclusive: {reason}")

    def breach_alert(self, d: Deployment, *, reason: str) -> ActionResult:
        """on_breach: alert (or a held canary breaching): tell the approvers, change nothing."""
        policy = self.policy_for(d.function)
        self.store.append_audit(
            AuditRecord(
                deployment_id=d.id,
                at=self.clock.now(),
                actor=BOT.label,
                action="breach_alert",
                from_state=d.state,
                to_state=d.state,
                reason=reason,
            )
        )
        self._notify(self._decision(d, "breach_alert", reason, policy))
        return ActionResult(deployment=d, message=f"breach alert: {reason}")

    def approval_timed_out(self, d: Deployment, *, action: str, reason: str) -> ActionResult:
        """Nobody decided in time: the policy's default action, announced."""
        policy = self.policy_for(d.function)
        self._notify(self._decision(d, "approval_timeout", reason, policy))
        if action == "hold":
            d = self._transition(canary.hold(d, now=self.clock.now(), actor=BOT.label, reason=reason))
            return ActionResult(deployment=d, message=f"held: {reason}")
        return self.rollback(d.function, d.alias, BOT, reason=reason, deployment_id=d.id)

    def auto_promote(self, d: Deployment, *, reason: str) -> ActionResult:
        """Only when the policy says auto_promote: the soak passed every check."""
        return self.promote(d.function, d.alias, BOT, deployment_id=d.id, expected_revision=d.revision)

    def _decision(
        self,
        d: Deployment,
        why: str,
        reason: str,
        policy: FunctionPolicy,
        *,
        deadline: datetime | None = None,
    ) -> DecisionNeeded:
        return DecisionNeeded(
            deployment=d,
            at=self.clock.now(),
            actor=BOT.label,
            why=why,
            reason=reason,
            approvers=policy.approvers,
            deadline=deadline,
        )

    # ------------------------------------------------------------ read side
    def status(self, function: str | None = None, alias: str | None = None) -> list[StatusEntry]:
        if function is not None:
            self.policy_for(function)
            found = self.store.live_for(function, self.alias_for(function, alias))
            deployments = [found] if found else []
        else:
            deployments = self.store.list_live()
        entries = []
        for d in deployments:
            try:
                entries.append(
                    StatusEntry(
                        deployment=d,
                        alias=self.traffic.get_alias(d.function, d.alias),
                        policy=self.policy.for_function(d.function),
                    )
                )
            except CanaryError as exc:
                entries.append(StatusEntry(deployment=d, alias=None, alias_error=str(exc)))
        return entries

    def history(self, function: str, alias: str | None = None, limit: int = 10) -> list[HistoryEntry]:
        self.policy_for(function)
        return [
            HistoryEntry(deployment=d, audit=self.store.audit_for(d.id))
            for d in self.store.history(function, alias, limit)
        ]

    def read_alias(self, function: str, alias: str | None = None) -> AliasState:
        return self.traffic.get_alias(function, self.alias_for(function, alias))

    # ------------------------------------------------------------ internals
    def _steps(self, policy: FunctionPolicy, weight: float | None) -> tuple[float, ...]:
        if weight is None:
            return tuple(policy.steps)
        # An explicit first weight keeps the policy's later, larger steps.
        return (weight, *(step for step in policy.steps if step > weight))

    def _planned(self, deployment_id: str, actor: Actor, rule: Action, revision: int | None) -> Deployment:
        """The plan a Start or Cancel click is about, while it is still a plan and the click is current."""
        d = self.get(deployment_id)
        if d.state is not State.PLANNED:
            raise AlreadyActed(self._who_acted(d))
        self._check_click(d, revision)
        self.authorizer.check(actor, self.policy_for(d.function), rule, d)
        return d

    def may(self, actor: Actor, d: Deployment, action: Action) -> bool:
        """Whether `actor` could take `action` on `d` now: its state allows it and the policy lets them.

        For showing only the buttons a viewer may use; the click itself is checked again when it comes.
        """
        transition = {"rollback": "begin_rollback", "weight": "set_weight"}.get(action, action)
        if transition in canary.LEGAL and not canary.can(d, transition):
            return False
        try:
            self.authorizer.check(actor, self.policy_for(d.function), action, d)
        except (NotAuthorized, NotInPolicy):
            return False
        return True

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
        d = self._target(function, alias, deployment_id)
        self._check_click(d, revision)
        self.authorizer.check(actor, self.policy_for(d.function), rule, d)
        if not canary.can(d, transition):
            raise Refused(
                f"cannot {transition.replace('_', ' ')} {d.key}: the canary is {_state_words(d.state)}"
            )
        return d

    def _target(self, function: str, alias: str | None, deployment_id: str | None) -> Deployment:
        if deployment_id is None:
            return self.live(function, alias)
        d = self.get(deployment_id)
        if not d.is_live:
            raise AlreadyActed(self._who_acted(d))
        return d

    def _check_click(self, d: Deployment, expected_revision: int | None) -> None:
        """A button rendered for an older state of the deployment is refused, saying what changed."""
        if expected_revision is None or d.revision == expected_revision:
            return
        raise AlreadyActed(f"this message is out of date: {self._who_acted(d)}")

    def _who_acted(self, d: Deployment) -> str:
        """'fn:alias was rolled back by <@U1> at 14:20 UTC': the last step people can read, no internal words."""
        current = self.store.get(d.id) or d
        records = [r for r in self.store.audit_for(d.id) if r.phase in ("done", "event")]
        if not records or (records[-1].to_state not in (None, current.state)):
            # No record yet of the step that led here (its audit line is being written): the state says it.
            return f"{current.key} is {_state_words(current.state)}"
        last = records[-1]
        did = _ACTION_WORDS.get(last.action, last.action.replace("_", " "))
        return f"{current.key} {did} by {_person(last.actor)} at {last.at:%H:%M} UTC"

    def _clear_stale_plan(self, function: str, alias: str, actor: Actor, now: datetime) -> None:
        live = self.store.live_for(function, alias)
        if live is None:
            return
        if live.state is State.PLANNED and (
            now - live.created_at > self._plan_ttl or actor.is_person(live.created_by)
        ):
            self._transition(
                canary.cancel(live, now=now, actor=actor.label, reason="superseded by a new plan")
            )
            return
        raise LiveDeploymentExists(
            f"{function}:{alias} already has a live canary {live.id} ({_state_words(live.state)}, "
            f"v{live.canary_version} at {_pct(live.weight)}) started by {_person(live.created_by)}"
        )

    def _alarm_guard(self, args: StartArgs, policy: FunctionPolicy, actor: Actor) -> list[str]:
        if self.alarms is None:
            return []
        firing = self.alarms.alarms_in_alarm(args.function)
        if not firing:
            return []
        if args.override_alarms is None:
            raise AlarmsFiring(
                f"{args.function} has alarms in ALARM: {', '.join(firing)}. "
                "An approver may start anyway with --override-alarms REASON.",
                firing,
            )
        self.authorizer.check(actor, policy, "override", None)
        return firing

    def _check_routing(self, d: Deployment, alias: AliasState) -> None:
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

    # ------------------------------------------------------------ traffic: through the reconciler
    def _apply(
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
            created_at=self.clock.now(),
        )
        try:
            self.reconciler.submit(intent, deployment_revision=d.revision)
        except IntentInProgress as exc:
            pending = self.store.open_intent_for(d.id)
            if pending is None:  # the change that won has finished meanwhile: say what it did
                raise AlreadyActed(self._who_acted(d)) from exc
            if pending.kind != kind or not pending.target.matches(target):
                raise AlreadyActed(
                    f"{pending.kind.replace('_', ' ')} by {pending.actor} is being applied; "
                    "nothing was changed by yours"
                ) from exc
            # The same change, still being retried: asking again means "try now", not a second change.
            result = self.reconciler.drive(pending.id)
            if result.status == "busy":
                raise AlreadyActed(str(exc)) from exc
            return result
        except StaleDeployment:
            raise AlreadyActed(self._who_acted(d)) from None
        return self.reconciler.drive(intent.id, wait_for_lease=2.0)

    def _landed(self, result: DriveResult) -> tuple[Deployment, AliasState]:
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
        current = self.get(result.intent.deployment_id)
        raise AlreadyActed(self._who_acted(current))

    def _answer(self, d: Deployment, action: TrafficAction, after: AliasState) -> ActionResult:
        said = {"promoted": "promoted", "rolled_back": "rolled back", "weight": "weight changed"}
        return ActionResult(
            deployment=d,
            alias=after,
            message=f"{said.get(action, 'next step')}: {d.key} now {after.describe()}",
        )

    def _transition(
        self, t: Transition, *, before: AliasState | None = None, after: AliasState | None = None
    ) -> Deployment:
        saved = self.store.save(t.deployment)
        self.store.append_audit(
            t.audit.model_copy(
                update={
                    "phase": "done" if after is not None else t.audit.phase,
                    "alias_before": before.routing() if before else t.audit.alias_before,
                    "alias_after": after.routing() if after else t.audit.alias_after,
                }
            )
        )
        return saved

    def _audit(
        self,
        d: Deployment,
        actor: Actor,
        action: str,
        phase: str,
        *,
        before: AliasState | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.store.append_audit(
            AuditRecord(
                deployment_id=d.id,
                at=self.clock.now(),
                actor=actor.label,
                action=action,
                phase=phase,
                from_state=d.state,
                reason=reason,
                alias_before=before.routing() if before else None,
                detail=detail or {},
            )
        )

    def _noted(self, d: Deployment, actor: Actor, what: str, reason: str | None) -> StateNoted:
        return StateNoted(
            deployment=d,
            at=self.clock.now(),
            actor=actor.label,
            actor_mention=actor.mention,
            what=what,
            reason=reason,
        )

    def soak_evidence(self, d: Deployment) -> list[PeriodFigures]:
        """The periods the soak judged, for the summary and post-mortem (the ones its reports showed)."""
        return deployment_evidence(d, self.store.figures_for(d.id), self.store.audit_for(d.id))

    def notify(self, event: AnyEvent) -> MessageRef | None:
        """Tell people about something that happened outside a service method (an alarm, a bad message)."""
        return self._notify(event)

    def _notify(self, event: AnyEvent) -> MessageRef | None:
        """Tell people. A Slack outage never blocks or undoes a traffic change: failures are only logged.
        An event with a key is told once (a redelivered alarm, a completion found again after a crash)."""
        told = f"msg:{event.key}" if event.key is not None else None
        if told is not None and self.store.is_claimed(told):
            return None
        try:
            ref = self.notifier.publish(event)
        except Exception:
            log.exception("notifier failed for %s", event.kind)
            return None
        # Marked after: a crash in between tells it again, and the outbox (same key) delivers it once.
        if told is not None:
            self.store.claim(told, self.clock.now())
        return ref


# How the audit's action names read in a sentence ('… was rolled back by <@U1> at 14:20 UTC').
_ACTION_WORDS = {
    "plan": "was planned",
    "start": "was started",
    "cancel": "was cancelled",
    "promote": "was promoted",
    "begin_rollback": "began rolling back",
    "rollback": "was rolled back",
    "finish_rollback": "was rolled back",
    "set_weight": "had its weight changed",
    "next_step": "moved to its next step",
    "hold": "was held",
    "resume": "was resumed",
    "extend": "had its soak extended",
    "await_approval": "passed its soak and awaits approval",
    "note_verdict": "was checked",
    "breach_alert": "breached its thresholds",
    "watch_end": "ended its watch",
}


def _state_words(state: State) -> str:
    return "soaking" if state is State.CANARY else state.value.replace("_", " ")


def _person(label: str) -> str:
    """An audit label as people read it: 'slack:U1 (maria)' → '<@U1>', 'cli:root@host' → 'root@host'."""
    if label.startswith("slack:"):
        return f"<@{label.split(' ', 1)[0].removeprefix('slack:')}>"
    return label.removeprefix("cli:")


def why_alarm_rollback_off(has_alarms: bool, topic_arn: str | None) -> str | None:
    """Why CloudWatch alarms cannot roll a canary back with this wiring (None: they can)."""
    if not has_alarms:
        return "no CloudWatch alarms are created for canaries here"
    if not topic_arn:
        return "CANARY_ALARM_TOPIC_ARN is not set: canary alarms have no action"
    return None


def _describe(d: Deployment, version: str, weights: Mapping[str, float]) -> str:
    return AliasState(
        function=d.function, alias=d.alias, version=version, weights=dict(weights), revision_id=""
    ).describe()


_pct = format_percent
_dur = format_duration


__all__ = [
    "ActionPending",
    "ActionResult",
    "AlarmsFiring",
    "AlreadyActed",
    "CanaryService",
    "HistoryEntry",
    "NotFound",
    "NotInPolicy",
    "NothingLive",
    "Refused",
    "StartPlan",
    "StatusEntry",
]
