"""The webhook page's two charts, deliveries over the last day and week, as inline SVG geometry.

The bars are computed here and drawn by ``_chart.html`` with presentation attributes only: the
Content-Security-Policy allows no inline style or script, and no chart library is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

# Buckets of the two charts: hours over a day, quarter days over a week; an x-axis label
# every 6 hours and every day.
DAY_BUCKETS = 24
WEEK_BUCKETS = 28
DAY_LABEL_EVERY = 6
WEEK_LABEL_EVERY = 4

CHART_WIDTH = 560
CHART_HEIGHT = 170
CHART_LEFT = 34  # room for the y-axis labels
CHART_RIGHT = 8
CHART_TOP = 10
CHART_BOTTOM = 22  # room for the x-axis labels


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    succeeded: int
    failed: int
    succeeded_y: float
    succeeded_height: float
    failed_y: float
    failed_height: float
    title: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    y_ticks: list[tuple[float, int]]
    x_labels: list[tuple[float, str]]
    succeeded: int
    failed: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    left: int = CHART_LEFT
    right: int = CHART_WIDTH - CHART_RIGHT
    top: int = CHART_TOP
    bottom: int = CHART_HEIGHT - CHART_BOTTOM
    plot_height: int = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    center_x: float = (CHART_LEFT + CHART_WIDTH - CHART_RIGHT) / 2
    center_y: float = (CHART_TOP + CHART_HEIGHT - CHART_BOTTOM) / 2


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value``."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= value)


def chart(title: str, series: list[tuple[datetime, int, int]], *, unit: str, label_every: int) -> Chart:
    """Stacked bars, succeeded below failed, with the geometry computed here for inline SVG."""
    plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    bottom = CHART_HEIGHT - CHART_BOTTOM
    y_max = nice_ceiling(max((ok + failed for _, ok, failed in series), default=0))
    slot = plot_width / max(len(series), 1)
    step = series[1][0] - series[0][0] if len(series) > 1 else timedelta(0)
    bars = []
    for index, (start, ok, failed) in enumerate(series):
        ok_height = ok / y_max * plot_height
        failed_height = failed / y_max * plot_height
        end = start + step
        span = f"{start:%b %d %H:%M}–{end:%H:%M} UTC"
        bars.append(
            Bar(
                x=round(CHART_LEFT + index * slot + slot * 0.15, 2),
                width=round(slot * 0.7, 2),
                succeeded=ok,
                failed=failed,
                succeeded_y=round(bottom - ok_height, 2),
                succeeded_height=round(ok_height, 2),
                failed_y=round(bottom - ok_height - failed_height, 2),
                failed_height=round(failed_height, 2),
                title=f"{span}: {ok} succeeded, {failed} failed",
            )
        )
    ticks = sorted({0, y_max, *([y_max // 2] if y_max >= 2 and y_max % 2 == 0 else [])})
    y_ticks = [(round(bottom - tick / y_max * plot_height, 2), tick) for tick in ticks]
    x_labels = []
    for index in range(0, len(series), label_every):
        ago = (len(series) - index) * step
        amount = round(ago.total_seconds() / (3600 if unit == "h" else 86400))
        x_labels.append((round(CHART_LEFT + index * slot, 2), f"{amount}{unit} ago"))
    x_labels.append((float(CHART_WIDTH - CHART_RIGHT), "now"))
    return Chart(
        title=title,
        bars=bars,
        y_ticks=y_ticks,
        x_labels=x_labels,
        succeeded=sum(ok for _, ok, _ in series),
        failed=sum(failed for _, _, failed in series),
    )
