"""/canary extend FUNCTION DURATION: lengthen the current soak."""

from __future__ import annotations

from datetime import timedelta

from bot.actors import Actor
from bot.verbs import ExtendArgs
from commands.base import Deps, Reply, safely

BUTTON_EXTENSION = timedelta(minutes=30)


def handle(args: ExtendArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        return Reply(text=f"⏱ {deps.service.extend(args.function, args.alias, actor, by=args.by).message}")

    return safely("extend", work)


def click(deployment_id: str, revision: int, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        d = deps.service.get(deployment_id)
        result = deps.service.extend(
            d.function, d.alias, actor, by=BUTTON_EXTENSION, expected_revision=revision
        )
        return Reply(text=f"⏱ Extended by {actor.mention}: {result.message}", replace_original=True)

    return safely("extend", work)
