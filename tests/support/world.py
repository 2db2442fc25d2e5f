"""An in-memory world for service-level tests: fake Lambda, in-memory store, manual clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.actors import Actor, Authorizer, cli_actor
from bot.clock import ManualClock
from bot.config import EMBEDDED_POLICY, Policy
from bot.events import RecordingNotifier
from bot.ports import StorePort
from bot.service import CanaryService
from bot.store import open_store
from bot.usecases.announcer import Announcer
from bot.verbs import StartArgs
from canary_demo.fakes.traffic import FakeTraffic, lego_api_world

FN = "production-lego-api"
ALIAS = "production"


class StaticGroups:
    def __init__(self, groups: dict[str, set[str]] | None = None) -> None:
        self.groups = groups or {}
        self.lookups = 0

    def members(self, group_id: str) -> frozenset[str]:
        self.lookups += 1
        return frozenset(self.groups.get(group_id, set()))


def policy_with(**function_overrides: Any) -> Policy:
    functions = {FN: {**EMBEDDED_POLICY["functions"][FN], **function_overrides}}
    return Policy.model_validate({"defaults": {}, "functions": functions})


@dataclass
class World:
    traffic: FakeTraffic
    clock: ManualClock
    notifier: RecordingNotifier
    service: CanaryService
    groups: StaticGroups = field(default_factory=StaticGroups)

    @property
    def store(self) -> StorePort:
        return self.service.ports.store

    @property
    def announcer(self) -> Announcer:
        """Tests swap what it tells (a broken notifier, a real Slack one) through `announcer.notifier`."""
        return self.service.announcer

    def alias(self) -> tuple[str, dict[str, float]]:
        state = self.traffic.get_alias(FN, ALIAS)
        return state.version, dict(state.weights)

    def start(self, actor: Actor | None = None, **kwargs: Any) -> str:
        actor = actor or cli_actor("maria")
        args = StartArgs(function=FN, version=kwargs.pop("version", "2"), **kwargs)
        plan = self.service.plan(args, actor)
        self.service.confirm(plan.deployment.id, actor)
        return plan.deployment.id


def make_world(policy: Policy | None = None, **service_kwargs: Any) -> World:
    traffic = lego_api_world()
    clock = service_kwargs.pop("clock", None) or ManualClock()
    notifier = RecordingNotifier()
    groups = StaticGroups({"S0SREONCALL": {"UAPPROVER1", "UAPPROVER2", "USTARTER"}})
    service_kwargs.setdefault("store", open_store("sqlite://:memory:"))
    service_kwargs.setdefault("authorizer", Authorizer(groups))
    service_kwargs.setdefault("notifier", notifier)
    service = CanaryService(traffic=traffic, policy=policy or policy_with(), clock=clock, **service_kwargs)
    return World(traffic=traffic, clock=clock, notifier=notifier, service=service, groups=groups)


def slack_user(user_id: str, name: str | None = None, channel: str = "C0DEPLOYS") -> Actor:
    return Actor(
        id=user_id, name=name or user_id.lower(), source="slack", channel=channel, channel_name="deploys"
    )
