"""/canary revert FUNCTION --reason TEXT: after a promotion, a danger button (behind a confirm dialog) that
sends 100% of the alias back to the version that served before. The click is authorized (approvers only)."""

from __future__ import annotations

from bot import views
from bot.actors import Actor
from bot.verbs import RevertArgs
from bot.views.runbook import REVERT_MARK, revert_prompt_blocks
from commands.base import Deps, Reply, routes_now, safely


def handle(args: RevertArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        preview = deps.recovery().revert.preview(args.function, args.alias)
        d = preview.deployment
        return Reply(
            text=f"Revert {d.key}? {preview.alias.describe()} → {preview.after}",
            blocks=revert_prompt_blocks(d, alias=preview.alias, reason=args.reason, now=deps.clock.now()),
        )

    return safely("revert", work)


def click(deployment_id: str, revision: int | None, reason: str, actor: Actor, deps: Deps) -> Reply:
    """The Revert button (a prompt's, or a watch alert's): the same click twice reverts once."""

    def work() -> Reply:
        found = deps.recovery().revert.deployment(deployment_id)
        result = deps.recovery().revert.revert(
            found.function,
            found.alias,
            actor,
            reason=reason,
            deployment_id=deployment_id,
            expected_revision=revision,
        )
        at = f"{deps.clock.now():%H:%M} UTC"
        text = f"{REVERT_MARK} Reverted by {actor.mention} at {at} ({views.escape(reason)}): {routes_now(result)}"
        return Reply(text=text, blocks=views.outcome_blocks(text), replace_original=True)

    return safely("revert", work)
