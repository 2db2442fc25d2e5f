"""The soak chart: a small PNG, drawn with gaps where data is missing, safely from several threads."""

from __future__ import annotations

import struct
import time
from concurrent.futures import ThreadPoolExecutor

from bot.charts import soak_chart_png
from bot.model import PeriodFigures, Thresholds
from tests.support.canary_core import PERIOD, T0, period, started, version

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which always follows the signature."""
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def soak(n: int = 12) -> list[PeriodFigures]:
    return [period(T0 + PERIOD * i) for i in range(n)]


def test_chart_is_a_small_png() -> None:
    data = soak_chart_png(started(), soak(), thresholds=Thresholds())
    width, height = png_size(data)
    assert (width, height) == (800, 500)
    assert len(data) < 200_000


def test_chart_draws_periods_without_datapoints_and_unjudged_thresholds() -> None:
    figures = soak(6)
    figures[2] = period(T0 + PERIOD * 2, canary=version("42", invocations=0, p95_ms=None, p99_ms=None))
    figures[3] = period(T0 + PERIOD * 3, stable=version("41", invocations=0, p95_ms=None))
    thresholds = Thresholds(p95_ms=None, error_rate=None)
    assert png_size(soak_chart_png(started(), figures, thresholds=thresholds)) == (800, 500)


def test_chart_before_the_first_period_is_still_a_png() -> None:
    assert png_size(soak_chart_png(started(), [], thresholds=Thresholds())) == (800, 500)


def test_chart_renders_quickly_once_warm() -> None:
    figures = soak(24)
    soak_chart_png(started(), figures, thresholds=Thresholds())  # fonts and caches load on the first draw
    began = time.perf_counter()
    soak_chart_png(started(), figures, thresholds=Thresholds())
    # The budget is 0.5 s; twice that leaves room for a busy CI machine, and still catches seconds.
    assert time.perf_counter() - began < 1.0


def test_charts_render_concurrently_from_several_threads() -> None:
    def draw(n: int) -> bytes:
        return soak_chart_png(started(), soak(n), thresholds=Thresholds())

    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(draw, [3, 12, 3, 12]))
    assert all(png_size(image) == (800, 500) for image in images)
    # The same input gives the same picture whichever thread drew it.
    assert images[0] == images[2] and images[1] == images[3]
    assert images[0] != images[1]
