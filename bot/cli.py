"""`canary-bot`: the console entry. Ops verbs (start, status, promote, rollback, history, …), `serve`, `demo`.

Exit codes: 0 done, 1 AWS failure, 2 bad input, 3 refused (drift, conflict, nothing live, not confirmed).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from bot.cli_verbs import (
    CLI_USAGE,
    EXIT_AWS,
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_REFUSED,
    exit_code_for,
    render_history,
    render_plan,
    render_status,
    run,
)
from bot.config import PolicyError, Settings
from bot.console import Console
from bot.service import CanaryService

DEMO_MODULE = "canary_demo.main"


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    console = Console()
    if words and words[0] == "serve":
        from bot.serve import serve_main

        return serve_main(words[1:], console)
    if words and words[0] == "demo":
        # The demo is an optional part (the `demo` extra); the product never imports it by name.
        try:
            demo = importlib.import_module(DEMO_MODULE)
        except ModuleNotFoundError:
            console.warn(
                "error: the demo is not part of this installation (it ships with the source: make demo)"
            )
            return EXIT_BAD_INPUT
        return int(demo.demo_main(words[1:], console))
    try:
        settings = Settings()
        service = build_cli_service(settings)
    except PolicyError as exc:
        console.warn(f"error: bad policy file: {exc}")
        return EXIT_BAD_INPUT
    except ValueError as exc:
        console.warn(f"error: {exc}")
        return EXIT_BAD_INPUT
    from bot.composition import os_actor

    return run(words, service, os_actor(), console)


def build_cli_service(settings: Settings) -> CanaryService:
    """The same service `serve` runs (bot.composition): alarms, alarm guard, Slack thread, store and audit."""
    from bot.composition import service_from_settings

    return service_from_settings(settings)


__all__ = [
    "CLI_USAGE",
    "EXIT_AWS",
    "EXIT_BAD_INPUT",
    "EXIT_OK",
    "EXIT_REFUSED",
    "Console",
    "build_cli_service",
    "exit_code_for",
    "main",
    "render_history",
    "render_plan",
    "render_status",
    "run",
]


if __name__ == "__main__":
    raise SystemExit(main())
