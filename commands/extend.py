"""/canary extend FUNCTION DURATION: lengthen the current soak."""

from __future__ import annotations

from datetime import timedelta

from bot.actors import Actor
from bot.units import UnitError, parse_duration
from bot.verbs import ExtendArgs, UsageError
from commands.base import Deps, Reply, safely, soak_end

# The longest extension a button may ask for (the same bound as `/canary extend`).
BUTTON_EXTENSION_MAX = timedelta(days=1)


def handle(args: ExtendArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        return Reply(text=f"⏱ {deps.service.extend(args.function, args.alias, actor, by=args.by).message}")

    return safely("extend", work)


def click(deployment_id: str, revision: int, by: object, actor: Actor, deps: Deps) -> Reply:
    """The Extend button: by the duration its value carries ("by"), on the deployment and revision it shows."""

    def work() -> Reply:
        extension = _button_extension(by)
        d = deps.service.get(deployment_id)
        result = deps.service.extend(
            d.function,
            d.alias,
            actor,
            by=extension,
            deployment_id=deployment_id,
            expected_revision=revision,
        )
        return Reply(text=f"⏱ Soak extended by {actor.mention}: {soak_end(result)}", replace_original=True)

    return safely("extend", work)


def _button_extension(by: object) -> timedelta:
    """The button's "by" ("30m"); a missing or unreadable one is refused rather than guessed."""
    try:
        extension = parse_duration(by) if isinstance(by, str) else None
    except UnitError:
        extension = None
    if extension is None or not timedelta(0) < extension <= BUTTON_EXTENSION_MAX:
        raise UsageError(f"this Extend button carries no usable duration ({str(by)[:20]!r})", "extend")
    return extension
