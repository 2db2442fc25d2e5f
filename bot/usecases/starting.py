"""Starting a canary: plan (validate, publish if asked, store a PLANNED deployment), confirm, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from bot import canary, locks
from bot.actors import BOT, Action, Actor, Authorizer
from bot.canary import InvalidPlan
from bot.config import FunctionPolicy
from bot.intents import Routing
from bot.model import Deployment, State
from bot.ports import (
    AlarmsPort,
    Clock,
    LiveDeploymentExists,
    PreflightPort,
    PublishedVersion,
    StorePort,
    TrafficPort,
    VersionNotFound,
)
from bot.preflight_guard import audit_detail as preflight_audit
from bot.preflight_guard import guard_start
from bot.units import format_percent
from bot.usecases.lookup import Lookup, person, state_words
from bot.usecases.refusals import AlarmsFiring, AlreadyActed, Refused
from bot.usecases.results import PLAN_TTL, ActionResult, StartPlan
from bot.usecases.writer import AliasWriter
from bot.verbs import StartArgs


def default_id(now: datetime) -> str:
    return f"d-{now:%Y%m%d}-{uuid.uuid4().hex[:6]}"


def why_alarm_rollback_off(has_alarms: bool, topic_arn: str | None) -> str | None:
    """Why CloudWatch alarms cannot roll a canary back with this wiring (None: they can)."""
    if not has_alarms:
        return "no CloudWatch alarms are created for canaries here"
    if not topic_arn:
        return "CANARY_ALARM_TOPIC_ARN is not set: canary alarms have no action"
    return None


class Starting:
    def __init__(
        self,
        *,
        traffic: TrafficPort,
        store: StorePort,
        clock: Clock,
        lookup: Lookup,
        writer: AliasWriter,
        authorizer: Authorizer,
        alarms: AlarmsPort | None,
        alarm_topic_arn: str | None,
        new_id: Callable[[datetime], str] = default_id,
        plan_ttl: timedelta = PLAN_TTL,
        preflight: PreflightPort | None = None,
    ) -> None:
        self._traffic = traffic
        self._store = store
        self._clock = clock
        self._lookup = lookup
        self._writer = writer
        self._authorizer = authorizer
        self._alarms = alarms
        self._alarm_topic_arn = alarm_topic_arn
        self._new_id = new_id
        self._plan_ttl = plan_ttl
        self.preflight = preflight  # the pre-deployment checklist's facts (None: no preflight)

    @property
    def alarm_rollback_off(self) -> str | None:
        """Why a CloudWatch alarm cannot roll back a canary started now (None: it can)."""
        return why_alarm_rollback_off(self._alarms is not None, self._alarm_topic_arn)

    def plan(self, args: StartArgs, actor: Actor) -> StartPlan:
        """Validate everything, publish the version if asked, and store a PLANNED deployment.

        The alias is not touched. The plan remembers the alias RevisionId it saw, so confirming after someone
        else changed the alias is refused.
        """
        policy = self._lookup.policy_for(args.function)
        alias = args.alias or policy.alias
        self._authorizer.check(actor, policy, "start", None)
        now = self._clock.now()
        self._clear_stale_plan(args.function, alias, actor, now)
        current = self._traffic.get_alias(args.function, alias)
        if current.weights:
            raise Refused(
                f"{args.function}:{alias} already routes {current.describe()}: "
                "finish or revert that split before starting a canary"
            )
        overridden = self._alarm_guard(args, policy, actor)
        self._lock_guard(args, alias, args.version, actor)  # deploy locks (bot.locks)
        if not args.publish and args.version is None:
            raise InvalidPlan("give the canary VERSION to route to, or --publish to publish one")
        preflight = guard_start(self.preflight, args, policy, actor, self._authorizer)
        published: PublishedVersion | None = None
        if args.version is not None:
            if args.version == current.version:
                raise InvalidPlan(
                    f"version {args.version} is already the stable version of {args.function}:{alias}"
                )
            if not self._traffic.version_exists(args.function, args.version):
                raise VersionNotFound(f"version {args.version} of {args.function} does not exist")
            version = args.version
        else:
            published = self._traffic.publish_version(
                args.function,
                set_env=args.set_env,
                unset_env=args.unset_env,
                description=f"canary-bot: published by {actor.label}",
            )
            version = published.version
            self._lock_guard(args, alias, version, actor)  # Lambda may hand back an earlier, locked version
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
            steps=_steps(policy, args.weight),
            soak=args.soak or policy.soak,
            actor=actor.label,
            now=now,
            changes=changes,
            channel=policy.channel,
        )
        planned = t.deployment.model_copy(update={"alias_revision": current.revision_id})
        planned = self._store.create(planned)
        audit = t.audit.model_copy(
            update={
                "alias_before": current.routing(),
                "detail": {"override_alarms": args.override_alarms, **preflight_audit(preflight)},
            }
        )
        self._store.append_audit(audit)
        return StartPlan(
            deployment=planned,
            alias_now=current,
            policy=policy,
            published=published,
            alarms_overridden=tuple(overridden),
            alarm_rollback_off=self.alarm_rollback_off,
            preflight=preflight,
        )

    def confirm(
        self, deployment_id: str, actor: Actor, *, expected_revision: int | None = None
    ) -> ActionResult:
        """Start the planned canary: route its first weight to the canary version."""
        d = self._planned(deployment_id, actor, "start", expected_revision)
        self._lookup.policy_for(d.function)  # still listed
        now = self._clock.now()
        if now - d.created_at > self._plan_ttl:
            self._writer.transition(canary.cancel(d, now=now, actor=BOT.label, reason="preview expired"))
            raise Refused("this preview expired; run start again to see the alias as it is now")
        stable, weights = canary.expected_routing(d.model_copy(update={"state": State.CANARY}))
        result = self._writer.apply(d, actor, "start", Routing(version=stable, weights=weights))
        d, after = self._writer.landed(result)
        return ActionResult(
            deployment=d, alias=after, message=f"canary started: {d.key} now {after.describe()}"
        )

    def cancel(
        self, deployment_id: str, actor: Actor, *, expected_revision: int | None = None
    ) -> ActionResult:
        d = self._planned(deployment_id, actor, "cancel", expected_revision)
        pending = self._store.open_intent_for(d.id)
        if pending is not None:
            raise AlreadyActed(
                f"Start by {pending.actor} is being applied to {d.key}; roll back instead to undo it"
            )
        d = self._writer.transition(
            canary.cancel(d, now=self._clock.now(), actor=actor.label, reason="cancelled")
        )
        return ActionResult(deployment=d, message=f"plan for {d.key} cancelled; the alias was not touched")

    # ------------------------------------------------------------ internals
    def _planned(self, deployment_id: str, actor: Actor, rule: Action, revision: int | None) -> Deployment:
        """The plan a Start or Cancel click is about, while it is still a plan and the click is current."""
        d = self._lookup.get(deployment_id)
        if d.state is not State.PLANNED:
            raise AlreadyActed(self._lookup.who_acted(d))
        self._lookup.check_click(d, revision)
        self._authorizer.check(actor, self._lookup.policy_for(d.function), rule, d)
        return d

    def _clear_stale_plan(self, function: str, alias: str, actor: Actor, now: datetime) -> None:
        live = self._store.live_for(function, alias)
        if live is None:
            return
        # A plan whose change is being applied (a Start, a fallback) is not stale: it is under way.
        applying = self._store.open_intent_for(live.id) is not None
        if (
            live.state is State.PLANNED
            and not applying
            and (now - live.created_at > self._plan_ttl or actor.is_person(live.created_by))
        ):
            self._writer.transition(
                canary.cancel(live, now=now, actor=actor.label, reason="superseded by a new plan")
            )
            return
        raise LiveDeploymentExists(
            f"{function}:{alias} already has a live canary {live.id} ({state_words(live.state)}, "
            f"v{live.canary_version} at {format_percent(live.weight)}) started by {person(live.created_by)}"
        )

    def _lock_guard(self, args: StartArgs, alias: str, version: str | None, actor: Actor) -> None:
        """Deploy locks (bot.locks): refuse a start while locked, unless an approver overrides (audited)."""
        locks.check_start(
            self._store,
            args.function,
            alias,
            version,
            override=args.override_lock,
            actor=actor.label,
            now=self._clock.now(),
            authorize_override=lambda: self._authorizer.check(
                actor, self._lookup.policy_for(args.function), "override", None
            ),
        )

    def _alarm_guard(self, args: StartArgs, policy: FunctionPolicy, actor: Actor) -> list[str]:
        if self._alarms is None:
            return []
        firing = self._alarms.alarms_in_alarm(args.function)
        if not firing:
            return []
        if args.override_alarms is None:
            raise AlarmsFiring(
                f"{args.function} has alarms in ALARM: {', '.join(firing)}. "
                "An approver may start anyway with --override-alarms REASON.",
                firing,
            )
        self._authorizer.check(actor, policy, "override", None)
        return firing


def _steps(policy: FunctionPolicy, weight: float | None) -> tuple[float, ...]:
    if weight is None:
        return tuple(policy.steps)
    # An explicit first weight keeps the policy's later, larger steps.
    return (weight, *(step for step in policy.steps if step > weight))
