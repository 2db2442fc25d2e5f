"""Slack, read in a terminal: every call the fake Slack recorded, rendered as a person would see it.

Sections and fields as text, buttons numbered `[1] Promote  [2] Roll back` (the interactive demo presses them
by number), thread replies indented under their parent, message edits marked, files named.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from canary_demo.fake_slack import FakeSlack, RecordedCall

WIDTH = 100
_MENTION = re.compile(r"<@([A-Z0-9]+)>")
_GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")


@dataclass(frozen=True)
class Button:
    number: int
    action_id: str
    value: str
    label: str
    where: str  # "message" or "home"
    message_ts: str | None
    channel: str | None
    danger: bool = False
    confirm: str | None = None


class TerminalSlack:
    """Prints new Slack activity since the last call to `flush()` and keeps the numbered buttons."""

    def __init__(
        self,
        slack: FakeSlack,
        write: Callable[[str], None],
        *,
        names: Mapping[str, str] | None = None,
        channels: Mapping[str, str] | None = None,
    ) -> None:
        self._slack = slack
        self._write = write
        self._names = dict(names or {})
        self._channels = dict(channels or {})
        self._seen = 0
        self._thread_of: dict[str, str] = {}
        self.buttons: dict[int, Button] = {}
        self._next_button = 1

    def set_writer(self, write: Callable[[str], None]) -> None:
        self._write = write

    def flush(self) -> None:
        calls = self._slack.calls()
        for call in calls[self._seen :]:
            self._render(call)
        self._seen = len(calls)

    # ------------------------------------------------------------ one call
    def _render(self, call: RecordedCall) -> None:
        p = call.params
        if call.method == "chat.postMessage":
            channel = self._channel(str(p.get("channel", "")))
            thread = p.get("thread_ts")
            if thread:
                head = f"  ↳ thread · {channel}" + (
                    " · also sent to the channel" if p.get("reply_broadcast") else ""
                )
                self._block(head, p, indent="    ", where="message", ts=None, channel=str(p.get("channel")))
            else:
                self._block(
                    f"● {channel} · canary-bot", p, indent="  ", where="message", ts=None, channel=None
                )
        elif call.method == "chat.update":
            self._block(
                f"✎ canary-bot edited its message in {self._channel(str(p.get('channel', '')))}",
                p,
                indent="  ",
                where="message",
                ts=str(p.get("ts")),
                channel=str(p.get("channel")),
            )
        elif call.method == "response_url":
            kind = "replaces the message above" if p.get("replace_original") else "only visible to you"
            self._block(f"◌ canary-bot ({kind})", p, indent="  ", where="message", ts=None, channel=None)
        elif call.method == "views.publish":
            user = self._name(str(p.get("user_id", "")))
            view = p.get("view") or {}
            self._block(f"⌂ App Home of {user}", view, indent="  ", where="home", ts=None, channel=None)
        elif call.method == "views.open":
            view = p.get("view") or {}
            title = (view.get("title") or {}).get("text", "form")
            self._write(f"▢ a form opens: {title}")
        elif call.method == "files.completeUploadExternal":
            for f in p.get("files") or []:
                self._write(f"    📎 chart uploaded to the thread: {f.get('title') or f.get('id')}")

    def _block(
        self,
        head: str,
        payload: Mapping[str, Any],
        *,
        indent: str,
        where: str,
        ts: str | None,
        channel: str | None,
    ) -> None:
        self._write(head)
        blocks = payload.get("blocks") or []
        if not blocks and payload.get("text"):
            self._text(str(payload["text"]), indent)
        for block in blocks:
            self._one(block, indent, where, ts, channel)
        self._write("")

    def _one(
        self, block: Mapping[str, Any], indent: str, where: str, ts: str | None, channel: str | None
    ) -> None:
        kind = block.get("type")
        if kind == "header":
            self._text(f"**{_plain(block.get('text'))}**", indent)
        elif kind == "section":
            if block.get("text"):
                self._text(_plain(block.get("text")), indent)
            for field in block.get("fields") or []:
                # Slack lays fields out in two columns; a terminal reads better as "Title: value".
                title, _, value = _plain(field).partition("\n")
                self._text(f"{title.strip('*')}: {value}" if value else title, indent)
            accessory = block.get("accessory")
            if accessory and accessory.get("type") == "button":
                self._buttons([accessory], indent, where, ts, channel)
        elif kind == "context":
            self._text(
                " · ".join(_plain(e) for e in block.get("elements") or [] if e.get("type") != "image"), indent
            )
        elif kind == "actions":
            self._buttons(block.get("elements") or [], indent, where, ts, channel)
        elif kind == "divider":
            self._write(indent + "─" * 40)
        elif kind == "rich_text":
            self._text(_rich_text(block), indent)
        elif kind == "image":
            self._write(f"{indent}[image: {block.get('alt_text', '')}]")

    def _buttons(
        self, elements: list[Mapping[str, Any]], indent: str, where: str, ts: str | None, channel: str | None
    ) -> None:
        shown = []
        for element in elements:
            if element.get("type") != "button":
                continue
            number = self._next_button
            self._next_button += 1
            confirm = element.get("confirm")
            self.buttons[number] = Button(
                number=number,
                action_id=str(element.get("action_id")),
                value=str(element.get("value", "")),
                label=_plain(element.get("text")),
                where=where,
                message_ts=ts,
                channel=channel,
                danger=element.get("style") == "danger",
                confirm=_plain(confirm.get("text")) if confirm else None,
            )
            shown.append(f"[{number}] {_plain(element.get('text'))}")
        if shown:
            self._write(indent + "  ".join(shown))

    def _text(self, text: str, indent: str) -> None:
        text = self._humanise(text)
        for line in text.splitlines() or [""]:
            if line.startswith("```") or len(line) <= WIDTH:
                self._write(indent + line.replace("```", ""))
            else:
                for part in textwrap.wrap(line, WIDTH) or [""]:
                    self._write(indent + part)

    def _humanise(self, text: str) -> str:
        text = _MENTION.sub(lambda m: "@" + self._name(m.group(1)), text)
        text = _GROUP.sub(lambda m: "@" + self._names.get(m.group(1), m.group(1)), text)
        text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
        text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or self._channels.get(m.group(1), m.group(1))), text)
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def _name(self, user_id: str) -> str:
        return self._names.get(user_id, user_id)

    def _channel(self, channel: str) -> str:
        if channel.startswith("#"):
            return channel
        return "#" + self._channels.get(channel, channel)


def _plain(obj: Any) -> str:
    if obj is None:
        return ""
    if isinstance(obj, str):
        return obj
    return str(obj.get("text", ""))


def _rich_text(block: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for element in block.get("elements") or []:
        for inner in element.get("elements") or []:
            parts.append(str(inner.get("text", "")))
    return "".join(parts)
