"""/canary unlock FUNCTION: lift the deploy locks of function:alias (a person's, and rollbacks')."""

from __future__ import annotations

from bot import views
from bot.actors import Actor
from bot.verbs import UnlockArgs
from commands.base import Deps, Reply, safely


def handle(args: UnlockArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        result = deps.recovery().locks.unlock(args.function, args.alias, actor)
        text = f"🔓 {result.message} (by {actor.mention})"
        return Reply(text=text, blocks=views.outcome_blocks(text), in_channel=True)

    return safely("unlock", work)
