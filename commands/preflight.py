"""/canary preflight FUNCTION [VERSION]: the pre-deployment checklist, answered only to the asker."""

from __future__ import annotations

from bot import views
from bot.actors import Actor
from bot.preflight_guard import report_for
from bot.verbs import PreflightArgs
from commands.base import Deps, Reply, safely


def handle(args: PreflightArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        report = report_for(deps.service.starting.preflight, deps.service.policy_for(args.function), args)
        return Reply(text=report.summary(), blocks=views.preflight_blocks(report))

    return safely("preflight", work)
