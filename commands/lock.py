"""/canary lock FUNCTION --reason TEXT: refuse start, promote, weight and resume until unlocked (announced to
the asker; audited). Rollback, revert and fallback stay allowed."""

from __future__ import annotations

from bot import views
from bot.actors import Actor
from bot.verbs import LockArgs
from bot.views.runbook import LOCK_MARK
from commands.base import Deps, Reply, safely


def handle(args: LockArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        result = deps.recovery().locks.lock(args.function, args.alias, actor, reason=args.reason)
        text = f"{LOCK_MARK} {result.message} (by {actor.mention}: {views.escape(args.reason)})"
        return Reply(text=text, blocks=views.outcome_blocks(text), in_channel=True)

    return safely("lock", work)
