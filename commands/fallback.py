"""/canary fallback FUNCTION --unset KEY [--unset KEY …] [--reason TEXT]: the seed's emergency fallback, as a
danger button behind a confirm dialog. The click is authorized (approvers only) and done once."""

from __future__ import annotations

from typing import Any

from bot import views
from bot.actors import Actor
from bot.service import AlreadyActed
from bot.verbs import FallbackArgs
from bot.views.runbook import fallback_prompt_blocks
from commands.base import Deps, Reply, routes_now, safely


def handle(args: FallbackArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        book = deps.recovery()
        book.fallback.check_keys(args.function, args.alias, args.unset_env)  # no danger button for a typo
        alias, live = book.fallback.preview(args.function, args.alias)
        return Reply(
            text=f"Fall back {alias.function}:{alias.alias} without {', '.join(args.unset_env)}?",
            blocks=fallback_prompt_blocks(
                args.function, alias, unset=args.unset_env, reason=args.reason, live=live
            ),
        )

    return safely("fallback", work)


def click(value: dict[str, Any], actor: Actor, deps: Deps) -> Reply:
    """The Fall back button. Its nonce is claimed first: a second click of the same button changes nothing."""

    def work() -> Reply:
        store, now = deps.store, deps.clock.now()
        function, alias = str(value.get("fn") or ""), value.get("alias")
        unset = [str(key) for key in value.get("unset") or []]
        reason = value.get("reason")
        # Authorized before the claim: a refused clicker must not use up the button for an approver.
        deps.recovery().fallback.authorize(actor, function)
        key = f"click:fallback:{value.get('n')}"
        if not store.claim(key, now):
            raise AlreadyActed("this fallback was already done from this message")
        try:
            result = deps.recovery().fallback.fallback(
                function, str(alias) if alias else None, actor, unset=unset, reason=reason
            )
        except Exception:
            store.release(key)
            raise
        text = f"🚨 Fallback by {actor.mention} at {now:%H:%M} UTC: {routes_now(result)}"
        return Reply(text=text, blocks=views.outcome_blocks(text), replace_original=True)

    return safely("fallback", work)
