"""/canary rollback FUNCTION [--reason TEXT]: a danger button behind a confirm dialog; without a reason the
button asks for one in a modal."""

from __future__ import annotations

from bot import views
from bot.actors import Actor
from bot.verbs import RollbackArgs
from commands.base import Deps, Reply, routes_now, safely


def handle(args: RollbackArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        d = deps.service.live(args.function, args.alias)
        alias = deps.service.read_alias(d.function, d.alias)
        blocks = views.action_prompt_blocks(
            d, action="rollback", alias=alias, now=deps.clock.now(), reason=args.reason
        )
        return Reply(text=f"Roll back {d.key}? {alias.describe()} → 100% v{d.stable_version}", blocks=blocks)

    return safely("rollback", work)


def click(deployment_id: str, revision: int | None, reason: str, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        d = deps.service.get(deployment_id)
        result = deps.service.rollback(
            d.function,
            d.alias,
            actor,
            reason=reason,
            deployment_id=deployment_id,
            expected_revision=revision,
        )
        if result.alias is None:  # a plan that never routed traffic: cancelled, not rolled back
            text = f"✖️ {result.message} (by {actor.mention})"
        else:
            at = f"{deps.clock.now():%H:%M} UTC"
            text = f"🔴 Rolled back by {actor.mention} at {at} ({views.escape(reason)}): {routes_now(result)}"
        return Reply(text=text, blocks=views.outcome_blocks(text), replace_original=True)

    return safely("rollback", work)
