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

from bot.actors import Authorizer
from bot.config import Policy
from bot.events import Notifier, NullNotifier
from bot.ports import AlarmsPort, Clock, NotFound, PreflightPort, StorePort, TrafficPort
from bot.reconciler import Reconciler
from bot.usecases.announcer import Announcer
from bot.usecases.automatic import Automatic
from bot.usecases.controlling import Controlling
from bot.usecases.locks import DeployLocks
from bot.usecases.lookup import Lookup
from bot.usecases.queries import Queries
from bot.usecases.recovery import Fallback, Revert
from bot.usecases.refusals import (
    ActionPending,
    AlarmsFiring,
    AlreadyActed,
    NothingLive,
    NotInPolicy,
    Refused,
)
from bot.usecases.results import PLAN_TTL, ActionResult, HistoryEntry, StartPlan, StatusEntry
from bot.usecases.runbook import Runbook
from bot.usecases.starting import Starting, default_id, why_alarm_rollback_off
from bot.usecases.writer import AliasWriter


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
        preflight: PreflightPort | None = None,
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
            preflight=preflight,
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

        self.runbook = Runbook(
            revert=Revert(
                store=store,
                traffic=traffic,
                reconciler=self.reconciler,
                clock=clock,
                policy=policy,
                authorizer=authorizer,
            ),
            fallback=Fallback(
                store=store,
                traffic=traffic,
                reconciler=self.reconciler,
                clock=clock,
                policy=policy,
                authorizer=authorizer,
            ),
            locks=DeployLocks(
                store=store, clock=clock, policy=policy, authorizer=authorizer, traffic=traffic
            ),
        )

        # The front door: each verb is the use case's own method (one signature, no second copy here).
        self.plan = self.starting.plan
        self.confirm = self.starting.confirm
        self.cancel = self.starting.cancel
        self.promote = self.controlling.promote
        self.rollback = self.controlling.rollback
        self.set_weight = self.controlling.set_weight
        self.hold = self.controlling.hold
        self.resume = self.controlling.resume
        self.extend = self.controlling.extend
        self.status = self.queries.status
        self.history = self.queries.history
        self.read_alias = self.queries.read_alias
        self.soak_evidence = self.queries.soak_evidence
        self.authorize = self.queries.authorize
        self.may = self.queries.may
        self.policy_for = self.lookup.policy_for
        self.alias_for = self.lookup.alias_for
        self.live = self.lookup.live
        self.get = self.lookup.get
        # Something that happened outside a use case (a bad message, a poison alarm), told once.
        self.notify = self.announcer.announce

    @property
    def alarm_rollback_off(self) -> str | None:
        return self.starting.alarm_rollback_off


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
