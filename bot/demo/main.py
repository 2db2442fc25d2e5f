"""Entry of `canary-bot demo`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.cli import Console

DEMO_ENV = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "MPLBACKEND": "Agg",
}


def demo_main(args: Sequence[str], console: Console) -> int:
    # The demo must never touch a real account, whatever the caller's environment holds.
    os.environ.update(DEMO_ENV)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    from bot.demo.cli_story import cli_story

    ok = cli_story(console)
    if not ok:
        console.warn("demo: a scenario did not end as it should (see above)")
        return 1
    return 0
