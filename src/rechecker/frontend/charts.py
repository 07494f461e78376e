"""The geometry of the domain page's charts, computed here and drawn by the templates as SVG.

Charts are inline SVG rendered on the server: no chart library, no script, and nothing the
Content-Security-Policy has to allow. This module only turns history into numbers and labels
(coordinates, ticks, cells); the markup stays in ``templates/_charts.html`` where autoescape
applies. Plots use ``preserveAspectRatio="none"`` so they stretch to any screen, which is why
axis labels are HTML beside the plot rather than SVG text that would stretch with it.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rechecker.core.summary import WINDOWS
from rechecker.frontend.formatting import as_utc, format_ms
from rechecker.models import HistoryPoint, State
from rechecker.results import HttpTimings

#: The plot's own coordinate system; the page stretches it to its width.
WIDTH = 1000
HEIGHT = 240
#: More points than this are reduced to this many medians: a wider line says nothing more.
MAX_LINE_POINTS = 300
Y_TICKS = 4
X_TICKS = 4
MIN_STRIP_CELLS = 12


@dataclass(frozen=True, slots=True)
class Period:
    key: str
    span: timedelta
    label: str
    #: Cells of the up/down strip at most (15 minutes, 1 hour, 6 hours); fewer when checks
    #: are rarer, so that a cell without a check means a missed check.
    cells: int
    tick_format: str


PERIODS = {
    "24h": Period("24h", WINDOWS["24h"], "last 24 hours", 96, "%H:%M"),
    "7d": Period("7d", WINDOWS["7d"], "last 7 days", 168, "%a %d"),
    "30d": Period("30d", WINDOWS["30d"], "last 30 days", 120, "%b %d"),
}
DEFAULT_PERIOD = "24h"


def period_from_arg(raw: str | None) -> Period:
    """The period a link asks for; anything else shows the default rather than an error."""
    return PERIODS.get(raw or "", PERIODS[DEFAULT_PERIOD])


@dataclass(frozen=True, slots=True)
class Tick:
    label: str
    #: Where the tick's grid line is, in plot coordinates.
    at: float


@dataclass(frozen=True, slots=True)
class LatencyChart:
    #: What is plotted: each check's latency, or bucket medians on a long period.
    series: list[tuple[datetime, float]]
    #: ``points`` attributes of polylines; the line breaks where checks are missing.
    lines: list[str]
    #: The same, closed down to the axis: the shaded area under each line.
    areas: list[str]
    #: Top to bottom, as the labels beside the plot are laid out.
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    samples: int
    description: str

    @property
    def empty(self) -> bool:
        return not self.lines

    @property
    def width(self) -> int:
        return WIDTH

    @property
    def height(self) -> int:
        return HEIGHT


@dataclass(frozen=True, slots=True)
class StripCell:
    index: int
    start: datetime
    end: datetime
    checks: int
    down: int
    degraded: int

    @property
    def kind(self) -> str:
        if not self.checks:
            return "none"
        if self.down:
            return "down"
        return "degraded" if self.degraded else "up"

    @property
    def label(self) -> str:
        span = f"{self.start:%Y-%m-%d %H:%M} to {self.end:%H:%M} UTC"
        if not self.checks:
            return f"{span}: no checks"
        checks = f"{self.checks} check{'' if self.checks == 1 else 's'}"
        if not self.down and not self.degraded:
            return f"{span}: {checks}, all up"
        bad = [f"{n} {word}" for n, word in ((self.down, "down"), (self.degraded, "degraded")) if n]
        return f"{span}: {checks}, {', '.join(bad)}"


@dataclass(frozen=True, slots=True)
class Strip:
    cells: list[StripCell]
    x_ticks: list[Tick]
    description: str


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    ms: float
    #: Where the phase starts and how long it is, on a 0 to 1000 scale of the whole request.
    x: float
    width: float


def nice_step(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if factor * power >= value * (1 - 1e-9):
            return factor * power
    return 10.0 * power


def format_axis_ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g} s"
    return f"{value:g} ms"


def _time_ticks(start: datetime, period: Period) -> list[Tick]:
    step = period.span / X_TICKS
    return [
        Tick(label=f"{start + i * step:{period.tick_format}}", at=WIDTH * i / X_TICKS)
        for i in range(X_TICKS + 1)
    ]


def _series(
    points: Sequence[HistoryPoint], start: datetime, span: timedelta
) -> list[tuple[datetime, float]]:
    """(time, latency) to plot: every check with a latency, or bucket medians if too many."""
    measured = [(as_utc(p.timestamp), p.latency_ms) for p in points if p.latency_ms is not None]
    if len(measured) <= MAX_LINE_POINTS:
        return measured
    width = span / MAX_LINE_POINTS
    buckets: dict[int, list[float]] = {}
    for at, latency in measured:
        index = min(MAX_LINE_POINTS - 1, int((at - start) / width))
        buckets.setdefault(index, []).append(latency)
    return [
        (start + width * (index + 0.5), statistics.median(values))
        for index, values in sorted(buckets.items())
    ]


def _segments(
    series: list[tuple[datetime, float]], span: timedelta
) -> list[list[tuple[datetime, float]]]:
    """Split the line where checks are missing, so a gap in monitoring is not drawn as data."""
    if not series:
        return []
    gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(series)]
    typical = statistics.median(gaps) if gaps else span.total_seconds()
    limit = max(3 * typical, 2 * span.total_seconds() / MAX_LINE_POINTS)
    segments = [[series[0]]]
    for gap, point in zip(gaps, series[1:], strict=True):
        if gap > limit:
            segments.append([])
        segments[-1].append(point)
    return segments


def latency_chart(points: Sequence[HistoryPoint], period: Period, now: datetime) -> LatencyChart:
    start = as_utc(now) - period.span
    inside = [p for p in points if as_utc(p.timestamp) >= start]
    series = _series(inside, start, period.span)
    if not series:
        return LatencyChart([], [], [], [], _time_ticks(start, period), 0, "No latency measured.")
    highest = max(latency for _, latency in series)
    step = nice_step(highest / Y_TICKS) if highest > 0 else 1.0
    top = step * Y_TICKS

    def xy(at: datetime, latency: float) -> tuple[float, float]:
        x = WIDTH * ((at - start) / period.span)
        return round(min(max(x, 0.0), float(WIDTH)), 1), round(HEIGHT * (1 - latency / top), 1)

    lines, areas = [], []
    for segment in _segments(series, period.span):
        coords = [xy(at, latency) for at, latency in segment]
        if len(coords) == 1:
            # A polyline of one point draws nothing; twice the point draws a round dot.
            coords.append(coords[0])
        lines.append(" ".join(f"{x},{y}" for x, y in coords))
        floor = [(coords[-1][0], float(HEIGHT)), (coords[0][0], float(HEIGHT))]
        areas.append(" ".join(f"{x},{y}" for x, y in coords + floor))
    latencies = sorted(latency for _, latency in series)
    description = (
        f"Latency over the {period.label}: median {format_ms(statistics.median(latencies))},"
        f" highest {format_ms(latencies[-1])}, from {len(inside)} checks."
    )
    return LatencyChart(
        series=series,
        lines=lines,
        areas=areas,
        y_ticks=[
            Tick(format_axis_ms(step * i), HEIGHT * (1 - i / Y_TICKS))
            for i in range(Y_TICKS, -1, -1)
        ],
        x_ticks=_time_ticks(start, period),
        samples=len(inside),
        description=description,
    )


def strip_cells(points: Sequence[HistoryPoint], period: Period) -> int:
    """As many cells as the period allows, but each long enough to expect a check in it."""
    times = sorted(as_utc(p.timestamp) for p in points)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    if not gaps:
        return period.cells
    fitting = int(period.span.total_seconds() / (1.5 * max(statistics.median(gaps), 1.0)))
    return max(MIN_STRIP_CELLS, min(period.cells, fitting))


def up_down_strip(points: Sequence[HistoryPoint], period: Period, now: datetime) -> Strip:
    """One cell per slice of the period: red if any check was DOWN, amber if DEGRADED."""
    start = as_utc(now) - period.span
    inside = [p for p in points if as_utc(p.timestamp) >= start]
    count = strip_cells(inside, period)
    width = period.span / count
    checks = [0] * count
    down = [0] * count
    degraded = [0] * count
    for point in inside:
        index = min(count - 1, int((as_utc(point.timestamp) - start) / width))
        checks[index] += 1
        down[index] += point.verdict is State.DOWN
        degraded[index] += point.verdict is State.DEGRADED
    cells = [
        StripCell(
            index=i,
            start=start + i * width,
            end=start + (i + 1) * width,
            checks=checks[i],
            down=down[i],
            degraded=degraded[i],
        )
        for i in range(count)
    ]
    bad = sum(cell.kind == "down" for cell in cells)
    slow = sum(cell.kind == "degraded" for cell in cells)
    empty = sum(cell.kind == "none" for cell in cells)
    description = (
        f"Up and down over the {period.label} in {count} slices:"
        f" {bad} with a DOWN check, {slow} DEGRADED, {empty} without checks."
    )
    return Strip(cells=cells, x_ticks=_time_ticks(start, period), description=description)


def waterfall(timings: HttpTimings) -> list[Phase]:
    """The request's phases end to end, as browser developer tools draw them."""
    spent = [
        ("DNS", timings.dns_ms),
        ("Connect", timings.connect_ms),
        ("TLS", timings.tls_ms),
        ("First byte", timings.first_byte_ms),
        ("Body", timings.body_ms),
    ]
    total = max(timings.total_ms, sum(ms for _, ms in spent))
    if total <= 0:
        return []
    phases, at = [], 0.0
    for name, ms in spent:
        x, width = round(1000 * at / total, 1), round(1000 * ms / total, 1)
        phases.append(Phase(name=name, ms=ms, x=x, width=width))
        at += ms
    return phases
