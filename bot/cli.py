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
from bot.store.schema import SchemaTooNew

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
    if words and words[0] == "init-store":
        return init_store_main(words[1:], console)
    try:
        settings = Settings()
        service = build_cli_service(settings)
    except PolicyError as exc:
        console.warn(f"error: bad policy file: {exc}")
        return EXIT_BAD_INPUT
    except (ValueError, SchemaTooNew) as exc:  # a bad CANARY_STORE_URL, a missing table, a newer store
        console.warn(f"error: {exc}")
        return EXIT_BAD_INPUT
    from bot.composition import os_actor

    return run(words, service, os_actor(), console)


def build_cli_service(settings: Settings) -> CanaryService:
    """The same service `serve` runs (bot.composition): alarms, alarm guard, Slack thread, store and audit."""
    from bot.composition import service_from_settings

    return service_from_settings(settings)


def init_store_main(args: Sequence[str], console: Console) -> int:
    """`canary-bot init-store`: create the store CANARY_STORE_URL names when missing (idempotent).

    DynamoDB: the table (on-demand, TTL on `expires_at`, the indexes the store reads) and its schema version.
    SQLite: the file and its schema (as every start does).
    """
    if list(args) in (["--help"], ["-h"]):
        console.say("usage: canary-bot init-store   (creates the store CANARY_STORE_URL names, when missing)")
        return EXIT_OK
    if args:
        console.warn(f"error: init-store takes no arguments (got {' '.join(args)}); set CANARY_STORE_URL")
        console.warn("usage: canary-bot init-store")
        return EXIT_BAD_INPUT
    from botocore.exceptions import BotoCoreError, ClientError

    from bot.aws.clients import aws_client
    from bot.store import dynamodb_table, open_store
    from bot.store.dynamodb import TTL_ATTRIBUTE, create_table

    try:
        settings = Settings()
        table = dynamodb_table(settings.store_url)
        if table is None:
            with open_store(settings.store_url) as store:
                console.say(f"SQLite store ready at {store.location} (schema version {store.schema_version})")
            return EXIT_OK
        created = create_table(aws_client("dynamodb", region=settings.aws_region), table)
    except (ValueError, SchemaTooNew) as exc:
        console.warn(f"error: {exc}")
        return EXIT_BAD_INPUT
    except (ClientError, BotoCoreError) as exc:
        console.warn(f"error: AWS: {exc}")
        return EXIT_AWS
    what = "created" if created else "already exists"
    console.say(
        f"DynamoDB table {table} {what} in {settings.aws_region}: on-demand, TTL on {TTL_ATTRIBUTE}, "
        "schema version recorded"
    )
    return EXIT_OK


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
