"""Parsing of the human units people type: percentages ("5%") and durations ("1h", "15m").

One parser for the policy file, the CLI and Slack, so "5%" means the same everywhere.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_FRACTION = re.compile(r"^\s*(0?\.\d+|0|1(?:\.0+)?)\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# No duration anyone means is longer than this; bigger numbers are typos (and overflow timedelta).
MAX_DURATION = timedelta(days=366)


class UnitError(ValueError):
    """A value a person typed that is not a percentage or duration we understand."""


def parse_percent(value: object) -> float:
    """'5%' -> 0.05; a bare number <= 1 is taken as a fraction (0.05)."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a percentage (try 5%)")
    if isinstance(value, int | float):
        fraction = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if match := _PERCENT.match(text):
            fraction = float(match.group(1)) / 100
        elif match := _FRACTION.match(text):
            fraction = float(match.group(1))
        else:
            raise UnitError(f"{value!r} is not a percentage (try 5%)")
    else:
        raise UnitError(f"{value!r} is not a percentage (try 5%)")
    if not 0 <= fraction <= 1:
        raise UnitError(f"{value!r} is outside 0%..100%")
    return fraction


def parse_duration(value: object) -> timedelta:
    """'1h', '15m', '1h30m', '90s' -> timedelta. A bare number is seconds. At most MAX_DURATION (366 days)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if not text:
            raise UnitError("empty duration (try 1h or 30m)")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            pos = 0
            seconds = 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(text):
                raise UnitError(f"{value!r} is not a duration (try 1h, 30m or 1h30m)")
    else:
        raise UnitError(f"{value!r} is not a duration (try 1h, 30m or 1h30m)")
    if seconds < 0:
        raise UnitError(f"{value!r} is negative")
    if not seconds <= MAX_DURATION.total_seconds():  # also NaN and infinity
        raise UnitError(f"{str(value)[:40]!r} is longer than {format_duration(MAX_DURATION)}")
    return timedelta(seconds=seconds)


def format_percent(fraction: float) -> str:
    """0.05 -> '5%', 0.001 -> '0.1%', 0.0002 -> '0.02%'."""
    pct = fraction * 100
    if pct == 0:
        return "0%"
    if abs(pct) >= 10:
        text = f"{pct:.1f}"
    elif abs(pct) >= 0.1:
        text = f"{pct:.2f}"
    else:
        text = f"{pct:.3f}"
    return text.rstrip("0").rstrip(".") + "%"


def format_duration(delta: timedelta) -> str:
    """timedelta(hours=1, minutes=30) -> '1h30m'; keeps it short for Slack."""
    total = round(delta.total_seconds())
    if total == 0:
        return "0s"
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return sign + "".join(parts)


def _percent_validator(value: Any) -> float:
    return parse_percent(value)


def _duration_validator(value: Any) -> timedelta:
    return parse_duration(value)


# Field types for pydantic models: accept "5%" / "1h" and keep floats / timedeltas inside.
Percent = Annotated[
    float, BeforeValidator(_percent_validator), PlainSerializer(format_percent, when_used="json")
]
Duration = Annotated[
    timedelta, BeforeValidator(_duration_validator), PlainSerializer(format_duration, when_used="json")
]
