"""/canary status [FUNCTION]: live canaries with weights, soak progress and the latest verdicts."""

from __future__ import annotations

from bot import views
from bot.actors import Actor
from bot.verbs import StatusArgs
from bot.views.kit import render
from bot.views.runbook import locks_blocks
from commands.base import Deps, Reply, safely


def handle(args: StatusArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        entries = deps.service.status(args.function, args.alias)
        latest = deps.soak.latest_verdicts([e.deployment for e in entries]) if deps.soak else None
        text = f"{len(entries)} live canar{'y' if len(entries) == 1 else 'ies'}"
        blocks = views.status_blocks(entries, now=deps.clock.now(), latest=latest)
        locks = deps.recovery().locks.locks(args.function, args.alias)
        if locks:
            blocks += render(locks_blocks(locks))
            text += f", {len(locks)} deploy lock{'s' if len(locks) > 1 else ''}"
        return Reply(text=text, blocks=blocks)

    return safely("status", work)
