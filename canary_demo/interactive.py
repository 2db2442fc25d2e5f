"""`canary-bot demo --interactive`: the same world, driven by you.

Type `/canary …` as the current person, press buttons by number, switch person, let simulated time pass and
make the canary misbehave.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.units import UnitError, parse_duration, parse_percent
from canary_demo.world import PEOPLE, DemoWorld

if TYPE_CHECKING:
    from bot.console import Console

HELP = """\
  /canary VERB …      type a slash command as the current person (try: /canary help)
  N  or  press N      press button [N] (confirm dialogs are accepted)
  as NAME             act as maria or joe (on call, approvers) or sam (not an approver)
  wait 15m            let simulated time pass (traffic flows, the bot soaks and reports)
  errors 2.5%         make the canary version fail that share of its requests (errors 0.02% to heal)
  latency 180ms       set the canary's p95 latency
  reason TEXT         answer the rollback-reason form a click opened
  home                open the bot's App Home as the current person
  alias               read the alias back from Lambda
  help · quit"""


def interactive(console: Console) -> int:
    person = "maria"
    with DemoWorld(console.say, publish_redis_version=True) as world:
        console.say(
            "canary-bot, interactive. production-lego-api v1 serves alias production; v2 has REDIS_URL."
        )
        console.say(HELP)
        world.print_alias()
        while True:
            try:
                line = console.ask(f"\n[{person}] ").strip()
            except EOFError:
                return 0
            if not line:
                continue
            try:
                person = _step(world, person, line, console)
            except _Quit:
                return 0
            except (LookupError, ValueError, UnitError) as exc:
                console.say(f"  ⚠️ {exc}")


class _Quit(Exception):
    pass


def _step(world: DemoWorld, person: str, line: str, console: Console) -> str:
    word, _, rest = line.partition(" ")
    rest = rest.strip()
    if line.startswith("/canary"):
        world.slash(person, line.removeprefix("/canary").strip())
    elif word.isdigit() or word == "press":
        number = int(rest if word == "press" else word)
        if number not in world.screen.buttons:
            raise LookupError(f"no button [{number}] on screen")
        world.press(person, world.screen.buttons[number])
    elif word == "as":
        if rest not in PEOPLE:
            raise LookupError(f"nobody called {rest!r}; people: {', '.join(PEOPLE)}")
        return rest
    elif word == "wait":
        minutes = max(1, int(parse_duration(rest or "5m").total_seconds() // 60))
        ran = world.run(minutes)
        console.say(f"  ({ran} simulated minutes passed; it is {world.clock.now():%H:%M} UTC)")
    elif word == "errors":
        world.sim.behave(_canary_version(world), error_rate=parse_percent(rest))
    elif word == "latency":
        p95 = float(rest.removesuffix("ms").strip())
        world.sim.behave(_canary_version(world), p95_ms=p95, p50_ms=min(p95 / 2.3, p95))
    elif word == "reason":
        world.submit_reason(person, rest)
    elif word == "home":
        world.open_home(person)
    elif word == "alias":
        world.print_alias()
    elif word in ("quit", "exit"):
        raise _Quit
    else:
        console.say(HELP)
    return person


def _canary_version(world: DemoWorld) -> str:
    _, weights = world.alias()
    if not weights:
        raise LookupError("no canary is routed right now: start one with /canary start production-lego-api 2")
    return next(iter(weights))
