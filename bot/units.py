"""Parsing of the human units people type: percentages ("5%") and durations ("1h", "15m").

One parser for the policy file, the CLI and Slack, so "5%" means the same everywhere, and one rule: a
percentage is written with its % sign ("0.05" alone is refused, never guessed).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# No duration anyone means is longer than this; bigger numbers are typos (and overflow timedelta).
MAX_DURATION = timedelta(days=366)


class UnitError(ValueError):
    """A value a person typed that is not a percentage or duration we understand."""


def parse_percent(value: object, *, typed: bool = True, bounded: bool = True) -> float:
    """'5%' -> 0.05, '0.1%' -> 0.001. The one rule for percentages people type, everywhere.

    What a person types (policy file, CLI, Slack) needs the % sign: a bare 0.05 could mean 5% (a fraction) or
    0.05% (a percentage), so it is refused with the fix. Only code (`typed=False`) may pass a float, which is
    a fraction. `bounded=False` leaves the range check (0%..100%) to the caller.
    """
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if match is None:
            if _NUMBER.match(value):
                raise UnitError(_needs_sign(value.strip()))
            raise UnitError(f"{str(value)[:40]!r} is not a percentage (try 5%)")
        fraction = float(match.group(1)) / 100
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if typed:
            raise UnitError(_needs_sign(value))
        fraction = float(value)
    else:
        raise UnitError(f"{str(value)[:40]!r} is not a percentage (try 5%)")
    if bounded and not 0 <= fraction <= 1:
        raise UnitError(f"{str(value)[:40]!r} is outside 0%..100%")
    return fraction


def _needs_sign(value: object) -> str:
    """The fix for a bare number: '0.05 has no % sign: write 5% (the fraction 0.05) or 0.05%'."""
    try:
        number = float(str(value))
    except (ValueError, OverflowError):
        number = -1.0
    if 0 < number <= 1:
        return (
            f"{value} has no % sign: write {format_percent(number)} (the fraction {value}) or {value}% — "
            "a bare number is never guessed"
        )
    return f"{value} has no % sign: write {value}%"


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
    """0.05 -> '5%', 0.001 -> '0.1%', 0.0002 -> '0.02%'.

    A value that is not exactly 0% or 100% never reads as one: 0.9999995 -> '99.99995%', 5e-7 -> '0.00005%'.
    """
    pct = fraction * 100
    if pct == 0:
        return "0%"
    decimals = 1 if abs(pct) >= 10 else 2 if abs(pct) >= 0.1 else 3
    text = _trim(f"{pct:.{decimals}f}")
    if float(text) in (0.0, 100.0, -100.0) and abs(pct) != 100:
        # Rounded onto 0% or 100%: show the distance from it to two significant digits.
        distance = abs(pct) if abs(float(text)) == 0 else abs(100 - abs(pct))
        decimals = min(max(math.ceil(-math.log10(distance)) + 1, decimals), 12)
        text = _trim(f"{pct:.{decimals}f}")
    return text + "%"


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number


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


# Validation context that marks data people typed (the policy file): bare numbers are refused there.
TYPED: Final = {"typed_units": True}


def _percent_validator(value: Any, info: ValidationInfo) -> float:
    typed = bool(info.context and info.context.get("typed_units"))
    return parse_percent(value, typed=typed)


def _duration_validator(value: Any) -> timedelta:
    return parse_duration(value)


# Field types for pydantic models: accept "5%" / "1h" and keep floats / timedeltas inside. Validated with
# context=TYPED (the policy file), a Percent needs its % sign; from code, a float is a fraction.
Percent = Annotated[
    float, BeforeValidator(_percent_validator), PlainSerializer(format_percent, when_used="json")
]
# A share of traffic, parsed by the same rule as Percent ("5%", or a fraction from code; 0%..100%) but kept a
# float in JSON too, so a stored weight reads back exactly (Percent's "5%" text is rounded for people).
Weight = Annotated[float, BeforeValidator(_percent_validator)]
Duration = Annotated[
    timedelta, BeforeValidator(_duration_validator), PlainSerializer(format_duration, when_used="json")
]
