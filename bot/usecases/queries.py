"""The read side: status, history, the alias as it is, what a viewer may do."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

from bot import canary
from bot.actors import Action, Actor, Authorizer, NotAuthorized
from bot.comms import deployment_evidence
from bot.config import Policy
from bot.model import AliasState, Deployment, PeriodFigures
from bot.ports import CanaryError, StorePort, TrafficPort
from bot.usecases.lookup import Lookup
from bot.usecases.refusals import NotInPolicy
from bot.usecases.results import HistoryEntry, StatusEntry

_T = TypeVar("_T")


@dataclass
class _Flight(Generic[_T]):
    done: threading.Event = field(default_factory=threading.Event)
    value: _T | None = None
    error: BaseException | None = None


class SharedReads(Generic[_T]):
    """Concurrent reads of the same key share one call: who asks while a read is in flight gets its answer.

    For reads shown to people (status), never for a read a write depends on: the answer may come from a read
    that began up to one round trip before the caller asked.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[object, _Flight[_T]] = {}

    def read(self, key: object, call: Callable[[], _T]) -> _T:
        with self._lock:
            flight = self._flights.get(key)
            leads = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leads:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value  # type: ignore[return-value]  # set by the leader before done
        try:
            flight.value = call()
            return flight.value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()


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
        # `/canary status` reads the alias of every live canary: a burst of status commands (each on a
        # listener thread) shares the reads in flight instead of asking Lambda once per command per canary
        # (bench/README.md, "Answers delivered").
        self._alias_reads: SharedReads[AliasState] = SharedReads()

    def status(self, function: str | None = None, alias: str | None = None) -> list[StatusEntry]:
        if function is not None:
            self._lookup.policy_for(function)
            found = self._store.live_for(function, self._lookup.alias_for(function, alias))
            deployments = [found] if found else []
        else:
            deployments = self._store.list_live()
        return [self._status_entry(d) for d in deployments]

    def _status_entry(self, d: Deployment) -> StatusEntry:
        try:
            return StatusEntry(
                deployment=d,
                alias=self._alias_reads.read(
                    (d.function, d.alias), partial(self._traffic.get_alias, d.function, d.alias)
                ),
                policy=self._policy.for_function(d.function),
            )
        except CanaryError as exc:
            return StatusEntry(deployment=d, alias=None, alias_error=str(exc))

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
