"""/canary promote FUNCTION: a message with a Promote button behind a confirm dialog; the click promotes."""

from __future__ import annotations

from bot import views
from bot.actors import Actor
from bot.verbs import TargetArgs
from commands.base import Deps, Reply, routes_now, safely


def handle(args: TargetArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        d = deps.service.live(args.function, args.alias)
        alias = deps.service.read_alias(d.function, d.alias)
        return Reply(
            text=f"Promote {d.key}? {alias.describe()} → 100% v{d.canary_version}",
            blocks=views.action_prompt_blocks(d, action="promote", alias=alias, now=deps.clock.now()),
        )

    return safely("promote", work)


def click(deployment_id: str, revision: int, actor: Actor, deps: Deps) -> Reply:
    """The Promote button: authorized, checked against the revision it was rendered for, then done once."""

    def work() -> Reply:
        d = deps.service.get(deployment_id)
        result = deps.service.promote(
            d.function, d.alias, actor, deployment_id=deployment_id, expected_revision=revision
        )
        text = f"✅ Promoted by {actor.mention} at {deps.clock.now():%H:%M} UTC: {routes_now(result)}"
        return Reply(text=text, blocks=views.outcome_blocks(text), replace_original=True)

    return safely("promote", work)
