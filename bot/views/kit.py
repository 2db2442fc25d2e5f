"""Block Kit building: thin helpers over slack_sdk's block models, so Slack's limits are checked on build.

Every builder ends in `render`, which validates each block (slack_sdk raises SlackObjectFormationError on a
broken one) and keeps the message under Slack's 50-block limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.views.text import clip, escape

SECTION_TEXT_MAX = 3000
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
CONTEXT_ELEMENTS_MAX = 10

Style = Literal["primary", "danger"]


def section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, SECTION_TEXT_MAX)))


def fields(pairs: Sequence[tuple[str, str]]) -> SectionBlock:
    """A two-column section: [('Alarm', 'name'), ...] → '*Alarm*\\nname' cells (at most 10)."""
    cells = [MarkdownTextObject(text=clip(f"*{name}*\n{value}", 2000)) for name, value in pairs[:10]]
    return SectionBlock(fields=cells)


def header(text: str) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=clip(text, HEADER_TEXT_MAX), emoji=True))


def context(*texts: str) -> ContextBlock:
    parts = [t for t in texts if t][:CONTEXT_ELEMENTS_MAX]
    return ContextBlock(elements=[MarkdownTextObject(text=clip(t, SECTION_TEXT_MAX)) for t in parts])


def divider() -> DividerBlock:
    return DividerBlock()


def code(text: str, *, title: str | None = None) -> SectionBlock:
    """A copyable monospace block, optionally under a bold title; cut (inside the fence) to fit.

    `text` is plain text (a document to copy, which may quote what people typed): it is escaped here.
    """
    prefix = f"*{title}*\n" if title else ""
    room = SECTION_TEXT_MAX - len(prefix) - len("``````")
    return SectionBlock(text=MarkdownTextObject(text=f"{prefix}```{escape(clip(text, room))}```"))


def confirm(
    title: str, text: str, *, yes: str, no: str = "Cancel", style: Style | None = None
) -> ConfirmObject:
    return ConfirmObject(
        title=PlainTextObject(text=clip(title, CONFIRM_TITLE_MAX)),
        text=MarkdownTextObject(text=clip(text, CONFIRM_TEXT_MAX)),
        confirm=PlainTextObject(text=clip(yes, 30)),
        deny=PlainTextObject(text=clip(no, 30)),
        style=style,
    )


def button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: Style | None = None,
    ask: ConfirmObject | None = None,
) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=clip(text, BUTTON_TEXT_MAX), emoji=True),
        action_id=action_id,
        value=value,
        style=style,
        confirm=ask,
    )


def actions(buttons: Sequence[ButtonElement], *, block_id: str | None = None) -> ActionsBlock | None:
    """An actions block, or None when the viewer may press nothing (no empty block)."""
    return ActionsBlock(elements=list(buttons), block_id=block_id) if buttons else None


def render(blocks: Sequence[Block | None], *, limit: int = MESSAGE_BLOCKS_MAX) -> list[dict[str, Any]]:
    """Validated dicts for chat.postMessage; over `limit`, the tail becomes one 'not shown' line."""
    kept = [b for b in blocks if b is not None]
    if len(kept) > limit:
        dropped = len(kept) - (limit - 1)
        kept = [*kept[: limit - 1], context(f"… {dropped} more blocks not shown")]
    return [b.to_dict() for b in kept]
