"""/canary history FUNCTION: past canaries and every step of each, with who did it."""

from __future__ import annotations

from bot import views
from bot.actors import Actor
from bot.verbs import HistoryArgs
from commands.base import Deps, Reply, safely


def handle(args: HistoryArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        entries = deps.service.history(args.function, args.alias, args.limit)
        return Reply(
            text=f"{len(entries)} canaries of {args.function}",
            blocks=views.history_blocks(entries, now=deps.clock.now()),
        )

    return safely("history", work)
