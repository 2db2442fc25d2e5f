"""/canary hold FUNCTION [--reason TEXT]: pause automatic decisions; traffic stays as it is."""

from __future__ import annotations

from bot.actors import Actor
from bot.verbs import HoldArgs
from commands.base import Deps, Reply, held_note, safely


def handle(args: HoldArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        return Reply(
            text=f"⏸ {deps.service.hold(args.function, args.alias, actor, reason=args.reason).message}"
        )

    return safely("hold", work)


def click(deployment_id: str, revision: int, actor: Actor, deps: Deps) -> Reply:
    """The Hold button: holds the deployment it was rendered for, at that revision, or nothing."""

    def work() -> Reply:
        d = deps.service.get(deployment_id)
        result = deps.service.hold(
            d.function,
            d.alias,
            actor,
            reason=f"held by {actor.name} from Slack",
            deployment_id=deployment_id,
            expected_revision=revision,
        )
        return Reply(text=f"⏸ Held by {actor.mention}: {held_note(result)}", replace_original=True)

    return safely("hold", work)
