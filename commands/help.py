"""/canary help [VERB]"""

from __future__ import annotations

from bot import views
from bot.actors import Actor
from bot.verbs import HelpArgs, help_text
from commands.base import Deps, Reply


def handle(args: HelpArgs, actor: Actor, deps: Deps) -> Reply:
    text = help_text(args.topic)
    return Reply(text=text, blocks=views.help_blocks(text))
