"""Plain-string formatting shared by every message: people, times, durations, figures, marks.

Pure functions of their arguments (`now` is always passed in), so every message reads the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from bot.actors import BOT_NAME
from bot.model import State, Thresholds
from bot.units import format_percent

# Status marks (UX.md): used consistently in every message.
PASS = "✅"
WARN = "⚠️"
BREACH = "🔴"
HELD = "⏸"

_SLACK_LABEL = re.compile(r"^slack:(?P<id>[UW][A-Z0-9_]+)(?: \((?P<name>.*)\))?$")


# ---------------------------------------------------------------- user text
def escape(text: str) -> str:
    """User-supplied text made inert for Slack mrkdwn: `&`, `<`, `>` as Slack's entities.

    Slack reads `<!channel>`, `<@U…>` and `<https://…|label>` as mentions and links: every piece of text a
    person typed (reasons, names, values) goes through this before it reaches a message. Our own markup
    (mentions we build, *bold*) is added around the escaped text, never inside it.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------- people
def mention(approvers: Iterable[str]) -> str:
    """Slack IDs as mentions: U…/W… → <@U…>, S… (user group) → <!subteam^S…>; anything else as written."""
    return ", ".join(_mention_one(entry) for entry in approvers)


def _mention_one(entry: str) -> str:
    if entry[:1] in ("U", "W") and entry[1:].replace("_", "").isalnum() and entry.isupper():
        return f"<@{entry}>"
    if entry.startswith("S") and entry[1:].isalnum() and entry.isupper():
        return f"<!subteam^{entry}>"
    return entry


def who(actor: str, actor_mention: str = "") -> str:
    """How an actor reads in a message: the event's mention when known, else from the audit label.

    'slack:U123 (maria)' → '<@U123>', 'cli:root' → 'root', 'canary-bot' → 'canary-bot'.
    """
    if actor_mention:
        return actor_mention
    if match := _SLACK_LABEL.match(actor):
        return f"<@{match.group('id')}>"
    if actor.startswith("cli:"):
        return escape(actor[len("cli:") :])
    return escape(actor)


def is_bot(actor: str) -> bool:
    return actor == BOT_NAME


def state_word(state: State) -> str:
    """How a state reads in a sentence: 'soaking', 'awaiting approval', 'rolled back'."""
    return "soaking" if state is State.CANARY else state.value.replace("_", " ")


# ---------------------------------------------------------------- time
def clock(t: datetime, *, seconds: bool = False) -> str:
    """'14:03 UTC' (or '14:03:05 UTC')."""
    return f"{_utc(t):%H:%M:%S} UTC" if seconds else f"{_utc(t):%H:%M} UTC"


def precise_clock(t: datetime) -> str:
    """'14:41:05.4': tenths of a second, for 'detected → reverted' timings."""
    t = _utc(t)
    return f"{t:%H:%M:%S}.{t.microsecond // 100_000}"


def when(t: datetime, now: datetime) -> str:
    """'14:03 UTC (12 min ago)', 'Nov 27 14:03 UTC (1 d ago)', '15:30 UTC (in 28 min)'."""
    t = _utc(t)
    delta = now - t
    stamp = clock(t) if abs(delta) < timedelta(hours=20) else f"{t:%b %d} {clock(t)}"
    return f"{stamp} ({relative(t, now)})"


def relative(t: datetime, now: datetime) -> str:
    """'12 min ago', 'in 28 min', 'just now'."""
    delta = now - t
    if abs(delta) < timedelta(minutes=1):
        return "just now"
    shown = span(abs(delta), coarse=True)
    return f"{shown} ago" if delta > timedelta(0) else f"in {shown}"


def span(delta: timedelta, *, coarse: bool = False) -> str:
    """'45 s', '15 min', '1 h', '1 h 30 min', '2 d 3 h'. `coarse` drops seconds and keeps two units."""
    total = round(abs(delta).total_seconds())
    if total < 60:
        return f"{total} s"
    # Days only from two of them: "24 h" reads better than "1 d" on a watch window.
    days, rem = divmod(total, 86400) if total >= 2 * 86400 else (0, total)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")]
    if not coarse:
        parts.append((seconds, "s"))
    shown = [f"{n} {unit}" for n, unit in parts if n]
    return " ".join(shown[:2] if coarse else shown) or "0 s"


def seconds_between(start: datetime, end: datetime) -> str:
    """'35 ms', '0.4 s', '1.2 s', '2 min 5 s': how long an automatic reaction took."""
    delta = (end - start).total_seconds()
    if delta < 0.1:
        return f"{max(round(delta * 1000), 0)} ms"
    if delta < 60:
        return f"{max(delta, 0.0):.1f} s"
    return span(timedelta(seconds=delta))


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC) if t.tzinfo is not None else t.replace(tzinfo=UTC)


# ---------------------------------------------------------------- figures
def percent(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else format_percent(value)


def millis(value: float | None, *, space: bool = True) -> str:
    """'42 ms', '7.5 ms', '—'."""
    if value is None or math.isnan(value):
        return "—"
    shown = f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{shown} ms" if space else f"{shown}ms"


def ratio(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.2f}".rstrip("0").rstrip(".") + "x"


def count(value: float | None) -> str:
    """'1,012'."""
    return "—" if value is None or math.isnan(value) else f"{round(value):,}"


def threshold_sentence(thresholds_: Iterable[tuple[str, str]]) -> str:
    """[('error rate', '> 0.1%'), ('p95', '> 100 ms')] → 'error rate > 0.1%, p95 > 100 ms'."""
    return ", ".join(f"{name} {rule}" for name, rule in thresholds_)


# ---------------------------------------------------------------- progress
BAR_WIDTH = 16


def progress_bar(elapsed: timedelta, total: timedelta, *, width: int = BAR_WIDTH) -> str:
    """'████████░░░░░░░░  32 / 60 min' (hours once the soak is long)."""
    seconds = max(total.total_seconds(), 0.0)
    done = min(max(elapsed.total_seconds(), 0.0), seconds)
    filled = round(width * done / seconds) if seconds else width
    bar = "█" * filled + "░" * (width - filled)
    if seconds <= 3 * 3600:
        return f"{bar}  {int(done // 60)} / {round(seconds / 60)} min"
    return f"{bar}  {_hours(done)} / {_hours(seconds)} h"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f}".rstrip("0").rstrip(".")


def clip(text: str, limit: int) -> str:
    """Cut to `limit` characters, ending in '…' when anything was dropped."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def threshold_rules(thresholds: Thresholds) -> list[tuple[str, str]]:
    """The rollback rules as (metric, rule) pairs, only the judged ones: [('error rate', '> 0.1%'), …]."""
    t = thresholds
    rules: list[tuple[str, str, float | None, Callable[[float], str]]] = [
        ("error rate", ">", t.error_rate, percent),
        ("p95", ">", t.p95_ms, millis),
        ("p99", ">", t.p99_ms, millis),
        ("cache hit", "<", t.cache_hit_rate, percent),
        ("cache-miss p95", ">", t.cache_miss_p95_ms, millis),
        ("errors over stable", ">", t.max_error_rate_increase, lambda v: f"+{percent(v)}"),
        ("p95 vs stable", ">", t.max_p95_ratio, ratio),
    ]
    return [(name, f"{sign} {fmt(limit)}") for name, sign, limit, fmt in rules if limit is not None]
