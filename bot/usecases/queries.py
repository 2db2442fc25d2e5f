"""The read side: status, history, the alias as it is, what a viewer may do."""

from __future__ import annotations

from bot import canary
from bot.actors import Action, Actor, Authorizer, NotAuthorized
from bot.comms import deployment_evidence
from bot.config import Policy
from bot.model import AliasState, Deployment, PeriodFigures
from bot.ports import CanaryError, StorePort, TrafficPort
from bot.usecases.lookup import Lookup
from bot.usecases.refusals import NotInPolicy
from bot.usecases.results import HistoryEntry, StatusEntry


class Queries:
    def __init__(
        self,
        *,
        traffic: TrafficPort,
        store: StorePort,
        policy: Policy,
        lookup: Lookup,
        authorizer: Authorizer,
    ) -> None:
        self._traffic = traffic
        self._store = store
        self._policy = policy
        self._lookup = lookup
        self._authorizer = authorizer

    def status(self, function: str | None = None, alias: str | None = None) -> list[StatusEntry]:
        if function is not None:
            self._lookup.policy_for(function)
            found = self._store.live_for(function, self._lookup.alias_for(function, alias))
            deployments = [found] if found else []
        else:
            deployments = self._store.list_live()
        entries = []
        for d in deployments:
            try:
                entries.append(
                    StatusEntry(
                        deployment=d,
                        alias=self._traffic.get_alias(d.function, d.alias),
                        policy=self._policy.for_function(d.function),
                    )
                )
            except CanaryError as exc:
                entries.append(StatusEntry(deployment=d, alias=None, alias_error=str(exc)))
        return entries

    def history(self, function: str, alias: str | None = None, limit: int = 10) -> list[HistoryEntry]:
        self._lookup.policy_for(function)
        return [
            HistoryEntry(deployment=d, audit=self._store.audit_for(d.id))
            for d in self._store.history(function, alias, limit)
        ]

    def read_alias(self, function: str, alias: str | None = None) -> AliasState:
        return self._traffic.get_alias(function, self._lookup.alias_for(function, alias))

    def soak_evidence(self, d: Deployment) -> list[PeriodFigures]:
        """The periods the soak judged, for the summary and post-mortem (the ones its reports showed)."""
        return deployment_evidence(d, self._store.figures_for(d.id), self._store.audit_for(d.id))

    def authorize(self, actor: Actor, d: Deployment, action: Action) -> None:
        """Raise NotAuthorized unless the policy lets `actor` take `action` on `d` (before asking for a form)."""
        self._authorizer.check(actor, self._lookup.policy_for(d.function), action, d)

    def may(self, actor: Actor, d: Deployment, action: Action) -> bool:
        """Whether `actor` could take `action` on `d` now: its state allows it and the policy lets them.

        For showing only the buttons a viewer may use; the click itself is checked again when it comes.
        """
        transition = {"rollback": "begin_rollback", "weight": "set_weight"}.get(action, action)
        if transition in canary.LEGAL and not canary.can(d, transition):
            return False
        try:
            self._authorizer.check(actor, self._lookup.policy_for(d.function), action, d)
        except (NotAuthorized, NotInPolicy):
            return False
        return True
