"""Deploy locks: the checks the traffic verbs make, and the lock a rollback leaves on the version it undid.

Two kinds, both kept in the store (StorePort.put_lock / locks_for / remove_locks):
- a person's lock on function:alias (`lock FUNCTION --reason TEXT`, version None): start, promote, weight and
  resume are refused, saying who locked it, why and since when, until someone runs `unlock FUNCTION`;
- a rollback's lock on the version it rolled back (any rollback: a person, the judge, an alarm): a new canary
  of that same version is refused until `unlock`, or an approver starts it with `--override-lock REASON`
  (audited).
Rollback, revert and fallback are never refused by a lock: the way back must always be open.

The messages carry Slack markup (a mention of who locked it) and escape the reason, which a person typed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from bot.actors import BOT_NAME, person_key
from bot.model import AuditRecord, DeployLock, Deployment
from bot.ports import CanaryError, StorePort

LockedAction = Literal["start", "promote", "weight", "resume"]

_DOING = {
    "start": "start a canary on",
    "promote": "promote",
    "weight": "change the weight of",
    "resume": "resume",
}


class Locked(CanaryError):
    """A deploy lock refuses this action; nothing was changed."""


def escape(text: str) -> str:
    """As bot.views.text.escape (not imported: the views import the service, which imports this)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def who(label: str) -> str:
    """An audit label as people read it: 'slack:U1 (maria)' → '<@U1>', 'cli:root@host' → 'root@host'."""
    key = person_key(label)
    if key.startswith("slack:"):
        user = "".join(ch for ch in key.removeprefix("slack:") if ch.isalnum())
        return f"<@{user}>"
    return escape(key.removeprefix("cli:"))


def lock_audit_id(function: str, alias: str) -> str:
    """The audit log's key for lock and unlock lines of function:alias (they belong to no deployment)."""
    return f"lock:{function}:{alias}"


def describe(lock: DeployLock) -> str:
    """'locked by <@U1> since 2026-11-30 14:20 UTC: <reason>' (the reason escaped)."""
    return (
        f"locked by {who(lock.locked_by)} since {lock.since:%Y-%m-%d %H:%M} UTC: {escape(lock.reason)}"
        if lock.version is None
        else f"v{lock.version} locked since {lock.since:%Y-%m-%d %H:%M} UTC: {escape(lock.reason)}"
    )


def check_unlocked(store: StorePort, function: str, alias: str, action: LockedAction) -> None:
    """Raise Locked when a person's lock holds function:alias."""
    for lock in store.locks_for(function, alias):
        if lock.version is None:
            raise Locked(
                f"cannot {_DOING[action]} {function}:{alias}: it is {describe(lock)}. "
                f"Rollback, revert and fallback still work; `unlock {function}` lifts the lock."
            )


def check_start(
    store: StorePort,
    function: str,
    alias: str,
    version: str | None,
    *,
    override: str | None,
    actor: str,
    now: datetime,
    authorize_override: Callable[[], None],
) -> list[DeployLock]:
    """Before a canary starts: refuse while function:alias is locked, or while `version` is locked by a
    rollback, unless `override` (a reason) is given by someone allowed to override (then audited).
    Returns the locks overridden."""
    held = [lock for lock in store.locks_for(function, alias) if lock.version in (None, version)]
    if not held:
        return []
    if override is None:
        lock = held[0]
        what = f"{function}:{alias}" if lock.version is None else f"v{lock.version} of {function}:{alias}"
        raise Locked(
            f"cannot start a canary: {what} is {describe(lock).removeprefix(f'v{lock.version} ')}. "
            f"`unlock {function}` lifts it, or an approver may start anyway with --override-lock REASON."
        )
    authorize_override()
    for lock in held:
        store.append_audit(
            AuditRecord(
                deployment_id=lock.deployment_id or lock_audit_id(function, alias),
                at=now,
                actor=actor,
                action="override_lock",
                reason=override,
                detail={"lock": lock.model_dump(mode="json")},
            )
        )
    return held


def lock_rolled_back_version(store: StorePort, d: Deployment, *, at: datetime) -> None:
    """A rollback locks new canaries of the version it undid (idempotent: the same key is replaced)."""
    by = d.ended_by or BOT_NAME
    store.put_lock(
        DeployLock(
            function=d.function,
            alias=d.alias,
            version=d.canary_version,
            locked_by=by,
            reason=f"v{d.canary_version} was rolled back ({d.reason or 'no reason given'})",
            since=at,
            deployment_id=d.id,
        )
    )


__all__ = [
    "Locked",
    "check_start",
    "check_unlocked",
    "describe",
    "lock_audit_id",
    "lock_rolled_back_version",
]
