"""Checks for Block Kit payloads: Slack's limits via slack_sdk's models, and readers for assertions.

- assert_valid_message(blocks): rebuilds every block with slack_sdk and validates it.
- text_of(blocks): every visible string, joined, for "does it say X" assertions.
- buttons_of(blocks) / button(blocks, action_id): the button elements.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
SECTION_TEXT_MAX = 3000
ACTION_ID_MAX = 255
BUTTON_VALUE_MAX = 2000


def assert_valid_message(blocks: Sequence[Mapping[str, Any]], *, limit: int = MESSAGE_BLOCKS_MAX) -> None:
    assert blocks, "a message needs at least one block"
    assert len(blocks) <= limit, f"{len(blocks)} blocks > Slack's {limit}"
    for raw in blocks:
        parsed = Block.parse(dict(raw))
        assert parsed is not None, f"slack_sdk does not know block type {raw.get('type')!r}"
        parsed.validate_json()  # raises SlackObjectFormationError on a broken block
        assert parsed.to_dict() == raw, "block does not survive a round trip through slack_sdk"
    for node in _walk(blocks):
        if node.get("type") == "section" and isinstance(node.get("text"), dict):
            assert len(node["text"]["text"]) <= SECTION_TEXT_MAX
        if "action_id" in node:
            assert len(node["action_id"]) <= ACTION_ID_MAX
        if node.get("type") == "button" and "value" in node:
            assert len(node["value"]) <= BUTTON_VALUE_MAX


def assert_valid_view(view: Mapping[str, Any]) -> None:
    rebuilt = View(**dict(view))
    rebuilt.validate_json()
    assert_valid_message(view["blocks"], limit=VIEW_BLOCKS_MAX)


def text_of(blocks: Sequence[Mapping[str, Any]]) -> str:
    """Every 'text' string in the blocks (sections, fields, context, buttons, confirms), one per line, as a
    person reads it: Slack's three entities (`&lt;` `&gt;` `&amp;`) shown as the characters they stand for."""
    found: list[str] = []
    for node in _walk(blocks):
        value = node.get("text")
        if isinstance(value, str):
            found.append(shown(value))
    return "\n".join(found)


def shown(text: str) -> str:
    """How Slack displays escaped text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def buttons_of(blocks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(node) for node in _walk(blocks) if node.get("type") == "button"]


def button(blocks: Sequence[Mapping[str, Any]], action_id: str) -> dict[str, Any]:
    matching = [b for b in buttons_of(blocks) if b.get("action_id") == action_id]
    assert len(matching) == 1, f"expected one {action_id} button, found {len(matching)}"
    return matching[0]


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _walk(item)
