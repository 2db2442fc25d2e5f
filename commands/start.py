"""/canary start FUNCTION [VERSION] [--publish --set K=V] …: an ephemeral preview with Start and Cancel."""

from __future__ import annotations

from bot import views
from bot.actors import Actor
from bot.service import ActionResult
from bot.verbs import StartArgs
from commands.base import Deps, Reply, safely


def handle(args: StartArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        plan = deps.service.plan(args, actor)
        return Reply(
            text=f"Canary plan for {plan.deployment.key}: {plan.alias_now.describe()} → {plan.after}",
            blocks=views.preview_blocks(plan, now=deps.clock.now()),
        )

    return safely("start", work)


def confirm(deployment_id: str, revision: int, actor: Actor, deps: Deps) -> Reply:
    """The Start button."""

    def work() -> Reply:
        result = deps.service.confirm(deployment_id, actor, expected_revision=revision)
        when = f"{deps.clock.now():%H:%M} UTC"
        text = f"🐤 Canary started by {actor.mention} at {when}: {result.deployment.key} now {_alias(result)}"
        return Reply(text=text, blocks=views.outcome_blocks(text), replace_original=True)

    return safely("start", work)


def cancel(deployment_id: str, revision: int, actor: Actor, deps: Deps) -> Reply:
    """The Cancel button."""

    def work() -> Reply:
        result = deps.service.cancel(deployment_id, actor, expected_revision=revision)
        text = f"Cancelled by {actor.mention}: {result.message}"
        return Reply(text=text, blocks=views.outcome_blocks(text), replace_original=True)

    return safely("start", work)


def _alias(result: ActionResult) -> str:
    return result.alias.describe() if result.alias is not None else "(unknown)"
