"""CanaryService: the use cases of bot.usecases wired on one set of ports — the front door for Slack and the CLI.

It holds no logic of its own: each method hands over to the use case of its flow (starting, controlling,
automatic, queries). Every traffic change goes through one AliasWriter (intents the reconciler drives to
done) and every message through one Announcer. The soak, the watch and the alarm intake are given the use
cases and ports they need by the composition root (bot.composition, bot.runtime); none reaches through this
object for a store, a clock or a notifier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.actors import Action, Actor, Authorizer
from bot.config import FunctionPolicy, Policy
from bot.events import AnyEvent, MessageRef, Notifier, NullNotifier
from bot.model import AliasState, Deployment, PeriodFigures
from bot.ports import AlarmsPort, Clock, NotFound, StorePort, TrafficPort
from bot.reconciler import Reconciler
from bot.usecases.announcer import Announcer
from bot.usecases.automatic import Automatic
from bot.usecases.controlling import Controlling
from bot.usecases.lookup import Lookup
from bot.usecases.queries import Queries
from bot.usecases.refusals import (
    ActionPending,
    AlarmsFiring,
    AlreadyActed,
    NothingLive,
    NotInPolicy,
    Refused,
)
from bot.usecases.results import PLAN_TTL, ActionResult, HistoryEntry, StartPlan, StatusEntry
from bot.usecases.starting import Starting, default_id, why_alarm_rollback_off
from bot.usecases.writer import AliasWriter
from bot.verbs import StartArgs


@dataclass(frozen=True)
class ServicePorts:
    """The ports the use cases were built on, for the composition root to wire their peers (soak, watch,
    alarm intake) on the same ones. Nothing else reads them."""

    traffic: TrafficPort
    store: StorePort
    clock: Clock
    policy: Policy


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
        authorizer = authorizer or Authorizer()
        self.ports = ServicePorts(traffic=traffic, store=store, clock=clock, policy=policy)
        self.announcer = Announcer(notifier or NullNotifier(), store, clock)
        self.lookup = Lookup(store, policy)
        # The one guarded alias writer: every traffic change is an intent the reconciler drives to done.
        self.reconciler = reconciler or Reconciler(
            traffic=traffic,
            store=store,
            clock=clock,
            policy=policy,
            notify=self.announcer.announce,
            alarms=alarms,
            alarm_topic_arn=alarm_topic_arn,
            lease_ttl=lease_ttl,
            escalate_after=escalate_after,
        )
        writer = AliasWriter(store, clock, self.reconciler, self.lookup)
        self.starting = Starting(
            traffic=traffic,
            store=store,
            clock=clock,
            lookup=self.lookup,
            writer=writer,
            authorizer=authorizer,
            alarms=alarms,
            alarm_topic_arn=alarm_topic_arn,
            new_id=new_id,
            plan_ttl=plan_ttl,
        )
        self.controlling = Controlling(
            traffic=traffic,
            store=store,
            clock=clock,
            lookup=self.lookup,
            writer=writer,
            authorizer=authorizer,
            announcer=self.announcer,
        )
        self.automatic = Automatic(
            store=store,
            clock=clock,
            lookup=self.lookup,
            writer=writer,
            announcer=self.announcer,
            controlling=self.controlling,
        )
        self.queries = Queries(
            traffic=traffic, store=store, policy=policy, lookup=self.lookup, authorizer=authorizer
        )

    # ------------------------------------------------------------ starting
    @property
    def alarm_rollback_off(self) -> str | None:
        return self.starting.alarm_rollback_off

    def plan(self, args: StartArgs, actor: Actor) -> StartPlan:
        return self.starting.plan(args, actor)

    def confirm(
        self, deployment_id: str, actor: Actor, *, expected_revision: int | None = None
    ) -> ActionResult:
        return self.starting.confirm(deployment_id, actor, expected_revision=expected_revision)

    def cancel(
        self, deployment_id: str, actor: Actor, *, expected_revision: int | None = None
    ) -> ActionResult:
        return self.starting.cancel(deployment_id, actor, expected_revision=expected_revision)

    # ------------------------------------------------------------ controlling
    def promote(
        self,
        function: str,
        alias: str | None,
        actor: Actor,
        *,
        deployment_id: str | None = None,
        expected_revision: int | None = None,
    ) -> ActionResult:
        return self.controlling.promote(
            function, alias, actor, deployment_id=deployment_id, expected_revision=expected_revision
        )

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
        return self.controlling.rollback(
            function,
            alias,
            actor,
            reason=reason,
            deployment_id=deployment_id,
            expected_revision=expected_revision,
            detected_at=detected_at,
        )

    def set_weight(
        self,
        function: str,
        alias: str | None,
        actor: Actor,
        *,
        weight: float,
        expected_revision: int | None = None,
    ) -> ActionResult:
        return self.controlling.set_weight(
            function, alias, actor, weight=weight, expected_revision=expected_revision
        )

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
        return self.controlling.hold(
            function,
            alias,
            actor,
            reason=reason,
            deployment_id=deployment_id,
            expected_revision=expected_revision,
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
        return self.controlling.resume(
            function, alias, actor, deployment_id=deployment_id, expected_revision=expected_revision
        )

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
        return self.controlling.extend(
            function, alias, actor, by=by, deployment_id=deployment_id, expected_revision=expected_revision
        )

    # ------------------------------------------------------------ queries and lookups
    def status(self, function: str | None = None, alias: str | None = None) -> list[StatusEntry]:
        return self.queries.status(function, alias)

    def history(self, function: str, alias: str | None = None, limit: int = 10) -> list[HistoryEntry]:
        return self.queries.history(function, alias, limit)

    def read_alias(self, function: str, alias: str | None = None) -> AliasState:
        return self.queries.read_alias(function, alias)

    def soak_evidence(self, d: Deployment) -> list[PeriodFigures]:
        return self.queries.soak_evidence(d)

    def authorize(self, actor: Actor, d: Deployment, action: Action) -> None:
        self.queries.authorize(actor, d, action)

    def may(self, actor: Actor, d: Deployment, action: Action) -> bool:
        return self.queries.may(actor, d, action)

    def policy_for(self, function: str) -> FunctionPolicy:
        return self.lookup.policy_for(function)

    def alias_for(self, function: str, alias: str | None) -> str:
        return self.lookup.alias_for(function, alias)

    def live(self, function: str, alias: str | None = None) -> Deployment:
        return self.lookup.live(function, alias)

    def get(self, deployment_id: str) -> Deployment:
        return self.lookup.get(deployment_id)

    def notify(self, event: AnyEvent) -> MessageRef | None:
        """Tell people about something that happened outside a use case (a bad message, a poison alarm)."""
        return self.announcer.announce(event)


__all__ = [
    "PLAN_TTL",
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
    "ServicePorts",
    "StartPlan",
    "StatusEntry",
    "why_alarm_rollback_off",
]
