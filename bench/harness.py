"""What the benchmarks share: a measured figure checked against its target, medians and percentiles, the table."""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    """One measured figure of ours beside its baseline, and whether the target holds.

    `baseline` is None when the target is absolute (e.g. a memory ceiling with nothing to compare to).
    """

    name: str
    ours: float
    baseline: float | None
    unit: str  # "ms", "req/s", "calls", "MiB"
    target: str  # how the target reads in the table: "≤ 3× baseline"
    passed: bool
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.ours / self.baseline


def crashed(benchmark: str, error: BaseException) -> Check:
    """A benchmark that could not run has missed its targets, visibly."""
    return Check(
        name=f"{benchmark}: crashed",
        ours=math.nan,
        baseline=None,
        unit="",
        target="runs to completion",
        passed=False,
        note=f"{type(error).__name__}: {error}",
    )


# ---------------------------------------------------------------- timing
def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], rank: float) -> float:
    """Nearest-rank percentile (p95 of 200 latencies is the 190th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> float:
    return seconds * 1000.0


# ---------------------------------------------------------------- table
_HEADERS = ("benchmark", "ours", "baseline", "ratio", "target", "", "note")


def format_table(checks: Sequence[Check]) -> str:
    rows = [
        (
            c.name,
            format_value(c.ours, c.unit),
            "—" if c.baseline is None else format_value(c.baseline, c.unit),
            "—" if c.ratio is None else format_ratio(c.ratio),
            c.target,
            "✅" if c.passed else "🔴",
            c.note,
        )
        for c in checks
    ]
    widths = [max(len(row[i]) for row in [_HEADERS, *rows]) for i in range(len(_HEADERS))]
    right = {1, 2, 3}  # numbers line up on the right

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(_HEADERS), rule, *(line(row) for row in rows)])


def format_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "—"
    if value == int(value) and abs(value) < 1e6 and unit in ("calls", "req", ""):
        number = f"{int(value):,}"
    elif abs(value) >= 100:
        number = f"{value:,.0f}"
    elif abs(value) >= 10:
        number = f"{value:.1f}"
    elif abs(value) >= 1:
        number = f"{value:.2f}"
    else:
        number = f"{value:.3f}"
    return f"{number} {unit}".rstrip()


def format_ratio(ratio: float) -> str:
    return f"{ratio:.3g}×"


@contextmanager
def quiet(*loggers: str, level: int = logging.CRITICAL) -> Iterator[None]:
    """Silence loggers whose output a benchmark provokes on purpose (queue depth under load, a dead peer)."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, previous in saved.items():
            logging.getLogger(name).setLevel(previous)
