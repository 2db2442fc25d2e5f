"""/canary resume FUNCTION: resume automatic decisions after a hold."""

from __future__ import annotations

from bot.actors import Actor
from bot.verbs import TargetArgs
from commands.base import Deps, Reply, safely


def handle(args: TargetArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        return Reply(text=f"▶️ {deps.service.resume(args.function, args.alias, actor).message}")

    return safely("resume", work)


def click(deployment_id: str, revision: int, actor: Actor, deps: Deps) -> Reply:
    """The Resume button: a stale one (someone held again since) is refused, never restarts the canary."""

    def work() -> Reply:
        d = deps.service.get(deployment_id)
        result = deps.service.resume(
            d.function, d.alias, actor, deployment_id=deployment_id, expected_revision=revision
        )
        return Reply(text=f"▶️ {result.message}", replace_original=True)

    return safely("resume", work)
