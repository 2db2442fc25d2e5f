"""`lock FUNCTION --reason TEXT` and `unlock FUNCTION`: a deploy lock on function:alias, kept in the store.

The checks themselves are bot.locks (called by start, promote, weight and resume); this is the people's side:
who may lock (whoever may start canaries) and unlock (approvers), the audit lines, and what status shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.actors import Actor, Authorizer
from bot.config import FunctionPolicy, Policy
from bot.locks import describe, lock_audit_id
from bot.model import AuditRecord, DeployLock
from bot.ports import Clock, StorePort, TrafficPort
from bot.usecases.lookup import policy_of
from bot.usecases.refusals import Refused


@dataclass(frozen=True)
class LockResult:
    locks: tuple[DeployLock, ...]
    message: str


class DeployLocks:
    def __init__(
        self,
        *,
        store: StorePort,
        clock: Clock,
        policy: Policy,
        authorizer: Authorizer,
        traffic: TrafficPort | None = None,
    ) -> None:
        self.traffic = traffic  # to refuse a lock on an alias that does not exist (None: not checked)
        self.store = store
        self.clock = clock
        self.policy = policy
        self.authorizer = authorizer

    def _policy(self, function: str) -> FunctionPolicy:
        return policy_of(self.policy, function)

    def lock(self, function: str, alias: str | None, actor: Actor, *, reason: str) -> LockResult:
        policy = self._policy(function)
        alias = alias or policy.alias
        self.authorizer.check(actor, policy, "lock", None)
        now = self.clock.now()
        existing = [lock for lock in self.store.locks_for(function, alias) if lock.version is None]
        if existing:
            raise Refused(f"{function}:{alias} is already {describe(existing[0])}")
        if self.traffic is not None:
            self.traffic.get_alias(function, alias)  # AliasNotFound: a typo locks nothing
        lock = DeployLock(function=function, alias=alias, locked_by=actor.label, reason=reason, since=now)
        self._audit(lock, actor, "lock", reason)
        self.store.put_lock(lock)
        return LockResult(
            (lock,),
            f"locked: {function}:{alias} refuses start, promote, weight and resume until "
            f"`unlock {function}{'' if alias == policy.alias else f' --alias {alias}'}`",
        )

    def unlock(self, function: str, alias: str | None, actor: Actor) -> LockResult:
        policy = self._policy(function)
        alias = alias or policy.alias
        self.authorizer.check(actor, policy, "unlock", None)
        held = self.store.locks_for(function, alias)
        if not held:
            raise Refused(f"{function}:{alias} is not locked")
        for lock in held:
            self._audit(lock, actor, "unlock", None)
        removed = self.store.remove_locks(function, alias)
        what = "; ".join(describe(lock) for lock in removed) or "nothing (someone unlocked it meanwhile)"
        return LockResult(tuple(removed), f"unlocked {function}:{alias}: lifted {what}")

    def locks(self, function: str | None = None, alias: str | None = None) -> list[DeployLock]:
        if function is None:
            return self.store.list_locks()
        return self.store.locks_for(function, alias or self._policy(function).alias)

    def _audit(self, lock: DeployLock, actor: Actor, action: str, reason: str | None) -> None:
        self.store.append_audit(
            AuditRecord(
                deployment_id=lock_audit_id(lock.function, lock.alias),
                at=self.clock.now(),
                actor=actor.label,
                action=action,
                reason=reason,
                detail={"lock": lock.model_dump(mode="json")},
            )
        )


__all__ = ["DeployLocks", "LockResult"]
