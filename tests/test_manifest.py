"""manifest.yaml matches the code: the command it registers and exactly the scopes the Web API calls need."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from handlers.slash import COMMAND

ROOT = Path(__file__).resolve().parent.parent
# Web API method (as slack_sdk spells it) → the bot scope it needs; None = no scope.
METHOD_SCOPES: dict[str, str | None] = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "files_upload_v2": "files:write",
    "usergroups_users_list": "usergroups:read",
    "users_info": "users:read",
    "conversations_info": "channels:read",
    "conversations_history": "channels:history",
    "conversations_replies": "channels:history",
    "views_open": None,
    "views_publish": None,
    "views_update": None,
}
# Scopes not tied to a single call: the slash command itself, and posting in channels the bot was not invited to.
# groups:history: the outbox reads back its own posts in private channels too (exactly-once after a crash).
STRUCTURAL = {"commands", "chat:write.public", "groups:history"}


def _manifest() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "manifest.yaml").read_text())


def _methods_called() -> set[str]:
    pattern = re.compile(r"\.(" + "|".join(METHOD_SCOPES) + r")\(")
    found: set[str] = set()
    for folder in ("bot", "commands", "handlers"):
        for path in (ROOT / folder).rglob("*.py"):
            if "demo" in path.parts:  # the fake Slack server is not the bot
                continue
            found.update(pattern.findall(path.read_text()))
    return found


def test_the_manifest_registers_the_canary_command_with_a_usage_hint() -> None:
    commands = _manifest()["features"]["slash_commands"]
    assert [c["command"] for c in commands] == [COMMAND]
    assert commands[0]["description"] and "start FUNCTION" in commands[0]["usage_hint"]


def test_the_manifest_asks_for_exactly_the_scopes_the_code_needs() -> None:
    called = _methods_called()
    assert {"chat_postMessage", "chat_update", "files_upload_v2", "usergroups_users_list"} <= called
    needed = {METHOD_SCOPES[m] for m in called} - {None} | STRUCTURAL
    assert set(_manifest()["oauth_config"]["scopes"]["bot"]) == needed


def test_interactivity_socket_mode_and_home_tab_are_on() -> None:
    manifest = _manifest()
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]


def test_no_secret_is_in_the_manifest_or_the_dockerfile() -> None:
    for name in ("manifest.yaml", "Dockerfile"):
        text = (ROOT / name).read_text()
        assert not re.search(r"xox[bpa]-[0-9A-Za-z-]{10,}|xapp-[0-9A-Za-z-]{10,}", text), name
