"""Entry of `canary-bot demo`: the healthy, the bad-canary and the revert story, or an interactive session."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.console import Console

DEMO_ENV = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "MPLBACKEND": "Agg",
}
USAGE = "usage: canary-bot demo [--interactive | --cli]"


def demo_main(args: Sequence[str], console: Console) -> int:
    if list(args) in (["--help"], ["-h"]):
        console.say(USAGE)
        return 0
    if len(args) > 1 or (args and args[0] not in ("--interactive", "--cli")):
        console.warn(f"error: unknown demo option {' '.join(args)!r}")
        console.warn(USAGE)
        return 2
    # The demo must never touch a real account or workspace, whatever the caller's environment holds.
    os.environ.update(DEMO_ENV)
    for key in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_SESSION_TOKEN",
        "SLACK_API_URL",
        "CANARY_POLICY_FILE",
    ):
        os.environ.pop(key, None)
    logging.basicConfig(level=logging.CRITICAL)  # the story is the output; errors show up in it
    try:
        import moto  # noqa: F401
    except ImportError:
        console.warn(
            "error: the demo needs its in-process AWS: pip install 'canary-bot[demo]' (make demo does)"
        )
        return 2
    if args and args[0] == "--cli":
        from canary_demo.cli_story import cli_story

        return 0 if cli_story(console) else 1
    if args:
        from canary_demo.interactive import interactive

        return interactive(console)
    from canary_demo.scenarios import bad_canary, healthy, regression_after_promotion

    began = time.monotonic()
    results = {
        "healthy": healthy(console.say),
        "bad canary": bad_canary(console.say),
        "regression after promotion": regression_after_promotion(console.say),
    }
    took = time.monotonic() - began
    console.say("\n" + "═" * 100)
    for name, ok in results.items():
        console.say(f"  {'✅' if ok else '🔴'} {name}")
    console.say(f"  the whole story took {took:.1f} s")
    if not all(results.values()):
        console.warn("demo: a scenario did not end as it should (see above)")
        return 1
    return 0
