"""The soak chart posted under a soak report: p95 and error rate per version over time, with thresholds.

Rendered with Matplotlib's object API on the Agg canvas (no pyplot, no global figure state), so reports for
several canaries can render on scheduler threads at once; a lock still serializes the draw, because
Matplotlib's text and font caches are not documented as thread-safe.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: the bot has no display

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.model import Deployment, PeriodFigures, Thresholds

WIDTH_PX, HEIGHT_PX, DPI = 800, 500, 100
CANARY_COLOR = "#d62728"
STABLE_COLOR = "#1f77b4"
THRESHOLD_COLOR = "#555555"

_DRAW_LOCK = threading.Lock()


def soak_chart_png(d: Deployment, figures: Sequence[PeriodFigures], thresholds: Thresholds) -> bytes:
    """PNG bytes (≈ 800×500): p95 per version (top) and error rate % per version (bottom) per period."""
    ordered = sorted(figures, key=lambda f: f.end)
    times = [f.end for f in ordered]
    with _DRAW_LOCK:
        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
        FigureCanvasAgg(fig)
        latency, errors = fig.subplots(2, 1, sharex=True)
        fig.suptitle(f"{d.key} · canary v{d.canary_version} vs stable v{d.stable_version}", fontsize=11)

        # Stable first, so the canary's line is on top where the two overlap.
        stable, canary = f"stable v{d.stable_version}", f"canary v{d.canary_version}"
        _series(latency, times, [f.stable.p95_ms for f in ordered], stable, STABLE_COLOR)
        _series(latency, times, [f.canary.p95_ms for f in ordered], canary, CANARY_COLOR)
        _threshold(latency, thresholds.p95_ms, f"≤ {_number(thresholds.p95_ms)} ms")
        latency.set_ylabel("p95 (ms)")

        _series(errors, times, [_pct(f.stable.error_rate) for f in ordered], None, STABLE_COLOR)
        _series(errors, times, [_pct(f.canary.error_rate) for f in ordered], None, CANARY_COLOR)
        _threshold(errors, _pct(thresholds.error_rate), f"≤ {_number(_pct(thresholds.error_rate))}%")
        errors.set_ylabel("errors (%)")
        errors.set_xlabel("period end (UTC)")

        for ax in (latency, errors):
            ax.grid(True, alpha=0.3)
            ax.set_ylim(bottom=0)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left", fontsize=8)
        if times:
            errors.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))  # type: ignore[no-untyped-call]
        else:
            latency.text(
                0.5, 0.5, "no complete period yet", ha="center", va="center", transform=latency.transAxes
            )
            latency.set_xticks([])
        # Fixed margins: tight_layout would cost more than the rest of the draw.
        fig.subplots_adjust(left=0.09, right=0.98, top=0.92, bottom=0.1, hspace=0.12)
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _series(
    ax: Axes, times: Sequence[object], values: Sequence[float | None], label: str | None, color: str
) -> None:
    """Missing datapoints are NaN, so the line breaks there instead of inventing a zero."""
    if not times:
        return
    ys = [math.nan if v is None else v for v in values]
    ax.plot(times, ys, marker="o", markersize=3, linewidth=1.5, color=color, label=label)  # type: ignore[arg-type]


def _threshold(ax: Axes, limit: float | None, label: str) -> None:
    if limit is not None:
        ax.axhline(limit, color=THRESHOLD_COLOR, linestyle="--", linewidth=1, label=label)


def _pct(fraction: float | None) -> float | None:
    return None if fraction is None else fraction * 100


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
