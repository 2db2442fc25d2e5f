"""/canary weight FUNCTION PERCENT: change the canary's share mid-flight (approvers only)."""

from __future__ import annotations

from bot.actors import Actor
from bot.verbs import WeightArgs
from commands.base import Deps, Reply, safely


def handle(args: WeightArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        result = deps.service.set_weight(args.function, args.alias, actor, weight=args.weight)
        return Reply(text=f"⚖️ {result.message}")

    return safely("weight", work)
