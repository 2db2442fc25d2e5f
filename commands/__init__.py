"""One module per `/canary` verb. Each exposes `handle(args, actor, deps) -> Reply`, called after ack()."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commands import (
    extend,
    fallback,
    help,
    history,
    hold,
    lock,
    preflight,
    promote,
    resume,
    revert,
    rollback,
    start,
    status,
    unlock,
    weight,
)
from commands.base import Deps, Reply

Handler = Callable[[Any, Any, Deps], Reply]

HANDLERS: dict[str, Handler] = {
    "help": help.handle,
    "start": start.handle,
    "preflight": preflight.handle,
    "status": status.handle,
    "promote": promote.handle,
    "rollback": rollback.handle,
    "history": history.handle,
    "weight": weight.handle,
    "hold": hold.handle,
    "resume": resume.handle,
    "extend": extend.handle,
    "revert": revert.handle,
    "fallback": fallback.handle,
    "lock": lock.handle,
    "unlock": unlock.handle,
}

__all__ = ["HANDLERS", "Deps", "Reply"]
