"""Chart geometry, pure: data in, coordinates out; the templates draw them as inline SVG.

No chart library and no JavaScript: every chart is a plain ``<svg>`` with a ``<title>``
per bar or line, so it renders on a closed network, prints, and reads out in a screen
reader (each chart also has a data table next to it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH = 720.0
HEIGHT = 240.0
MARGIN_LEFT = 52.0
MARGIN_RIGHT = 52.0
MARGIN_TOP = 26.0
MARGIN_BOTTOM = 30.0

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
)
"""Series colours (the Tableau 10 set plus two); a series keeps its colour by position."""


def nice_step(span: float, count: int = 5) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about ``count`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def nice_max(value: float) -> float:
    """``value`` rounded up to a whole number of :func:`nice_step` steps (at least 1)."""
    if value <= 0:
        return 1.0
    step = nice_step(value)
    return math.ceil(value / step - 1e-9) * step


@dataclass(frozen=True, slots=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True, slots=True)
class Frame:
    """The plot area inside the SVG (same for every chart of one size)."""

    width: float = WIDTH
    height: float = HEIGHT
    left: float = MARGIN_LEFT
    right: float = WIDTH - MARGIN_RIGHT
    top: float = MARGIN_TOP
    bottom: float = HEIGHT - MARGIN_BOTTOM

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width:g} {self.height:g}"

    def y(self, value: float, maximum: float) -> float:
        return self.bottom - (self.bottom - self.top) * (value / maximum if maximum else 0.0)


def _y_ticks(frame: Frame, maximum: float, fmt: Callable[[float], str]) -> tuple[Tick, ...]:
    step = nice_step(maximum)
    count = round(maximum / step)
    return tuple(Tick(frame.y(i * step, maximum), fmt(i * step)) for i in range(count + 1))


def _time_ticks(
    frame: Frame, start: datetime, end: datetime, label: Callable[[datetime], str]
) -> tuple[Tick, ...]:
    span_h = (end - start).total_seconds() / 3600
    step_h = next((h for h in (1, 2, 3, 4, 6, 12, 24) if span_h / h <= 8), 48)
    first = start.replace(minute=0, second=0, microsecond=0)
    while first < start:
        first += timedelta(hours=1)
    while first.hour % step_h and step_h < 24:
        first += timedelta(hours=1)
    ticks = []
    at = first
    while at <= end:
        ticks.append(Tick(_x(frame, at, start, end), label(at)))
        at += timedelta(hours=step_h)
    return tuple(ticks)


def _x(frame: Frame, at: datetime, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds() or 1.0
    return frame.left + (frame.right - frame.left) * (at - start).total_seconds() / span


# --- telemetry: power and level over time ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    at: datetime
    level_pct: float
    power_w: float


@dataclass(frozen=True, slots=True)
class TelemetryChart:
    frame: Frame
    power_points: str
    level_points: str
    power_max: float
    x_ticks: tuple[Tick, ...]
    power_ticks: tuple[Tick, ...]
    level_ticks: tuple[Tick, ...]
    samples: int

    @property
    def has_data(self) -> bool:
        return self.samples > 0


def downsample(
    samples: Sequence[Sample], start: datetime, end: datetime, buckets: int
) -> list[Sample]:
    """Mean of the samples in each of ``buckets`` equal time slices (empty slices skipped)."""
    if len(samples) <= buckets:
        return list(samples)
    span = (end - start).total_seconds() or 1.0
    sums: dict[int, list[float]] = {}
    for s in samples:
        index = min(buckets - 1, max(0, int((s.at - start).total_seconds() / span * buckets)))
        acc = sums.setdefault(index, [0.0, 0.0, 0.0, 0.0])
        acc[0] += s.at.timestamp()
        acc[1] += s.level_pct
        acc[2] += s.power_w
        acc[3] += 1
    out = []
    for index in sorted(sums):
        t, level, power, n = sums[index]
        out.append(Sample(datetime.fromtimestamp(t / n, start.tzinfo), level / n, power / n))
    return out


def telemetry_chart(
    samples: Sequence[Sample],
    start: datetime,
    end: datetime,
    *,
    rated_power_w: float,
    time_label: Callable[[datetime], str],
    number: Callable[[float], str],
    buckets: int = 240,
) -> TelemetryChart:
    """Power (W, left axis) and level (%, right axis) from ``start`` to ``end``."""
    frame = Frame()
    points = downsample(samples, start, end, buckets)
    power_max = nice_max(max([rated_power_w * 1.1, *(s.power_w for s in points)]))
    power = " ".join(
        f"{_x(frame, s.at, start, end):.1f},{frame.y(s.power_w, power_max):.1f}" for s in points
    )
    level = " ".join(
        f"{_x(frame, s.at, start, end):.1f},{frame.y(s.level_pct, 100):.1f}" for s in points
    )
    return TelemetryChart(
        frame=frame,
        power_points=power,
        level_points=level,
        power_max=power_max,
        x_ticks=_time_ticks(frame, start, end, time_label),
        power_ticks=_y_ticks(frame, power_max, number),
        level_ticks=tuple(Tick(frame.y(v, 100), f"{v}%") for v in (0, 25, 50, 75, 100)),
        samples=len(samples),
    )


# --- the night's program: level steps -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Marker:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class StepChart:
    frame: Frame
    points: str
    area: str
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    markers: tuple[Marker, ...]
    now_x: float | None


def step_chart(
    changes: Sequence[tuple[datetime, int]],
    start: datetime,
    end: datetime,
    *,
    time_label: Callable[[datetime], str],
    markers: Mapping[str, datetime | None] | None = None,
    now: datetime | None = None,
    level_before: int = 0,
) -> StepChart:
    """Level (0..100 %) as steps from ``start`` to ``end``; ``markers`` are sun events."""
    frame = Frame(height=200.0, bottom=170.0)
    level = level_before
    coords = [(frame.left, frame.y(level, 100))]
    for at, new_level in sorted(changes):
        if at <= start:
            level = new_level
            coords = [(frame.left, frame.y(level, 100))]
            continue
        if at >= end:
            break
        x = _x(frame, at, start, end)
        coords.append((x, frame.y(level, 100)))
        level = new_level
        coords.append((x, frame.y(level, 100)))
    coords.append((frame.right, frame.y(level, 100)))
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    area = f"{frame.left:.1f},{frame.bottom:.1f} {points} {frame.right:.1f},{frame.bottom:.1f}"
    shown = []
    for label, instant in (markers or {}).items():
        if instant is not None and start <= instant <= end:
            shown.append(Marker(_x(frame, instant, start, end), label))
    now_x = _x(frame, now, start, end) if now is not None and start <= now <= end else None
    return StepChart(
        frame=frame,
        points=points,
        area=area,
        x_ticks=_time_ticks(frame, start, end, time_label),
        y_ticks=tuple(Tick(frame.y(v, 100), f"{v}%") for v in (0, 50, 100)),
        markers=tuple(shown),
        now_x=now_x,
    )


# --- bars ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str
    value: float
    series: str
    category: str


@dataclass(frozen=True, slots=True)
class LegendItem:
    label: str
    fill: str


@dataclass(frozen=True, slots=True)
class BarChart:
    frame: Frame
    bars: tuple[Bar, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    legend: tuple[LegendItem, ...]
    unit: str

    @property
    def has_data(self) -> bool:
        return any(b.value for b in self.bars)


def stacked_bars(
    categories: Sequence[str],
    series: Sequence[str],
    values: Mapping[tuple[str, str], float],
    *,
    unit: str,
    number: Callable[[float], str],
    category_label: Callable[[str], str] = str,
    colours: Mapping[str, str] | None = None,
) -> BarChart:
    """One bar per category, stacked by series (``values[(category, series)]``)."""
    frame = Frame()
    colour = colours or {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    totals = [sum(max(0.0, values.get((c, s), 0.0)) for s in series) for c in categories]
    maximum = nice_max(max(totals, default=0.0))
    slot = (frame.right - frame.left) / max(1, len(categories))
    width = max(1.0, slot * 0.7)
    bars = []
    for i, category in enumerate(categories):
        x = frame.left + i * slot + (slot - width) / 2
        base = 0.0
        for s in series:
            value = max(0.0, values.get((category, s), 0.0))
            if value <= 0:
                continue
            top = frame.y(base + value, maximum)
            bottom = frame.y(base, maximum)
            title = f"{category_label(category)} · {s}: {number(value)} {unit}"
            bars.append(Bar(x, top, width, bottom - top, colour[s], title, value, s, category))
            base += value
    every = max(1, math.ceil(len(categories) / 10))
    x_ticks = tuple(
        Tick(frame.left + (i + 0.5) * slot, category_label(c))
        for i, c in enumerate(categories)
        if i % every == 0
    )
    return BarChart(
        frame=frame,
        bars=tuple(bars),
        x_ticks=x_ticks,
        y_ticks=_y_ticks(frame, maximum, number),
        legend=tuple(LegendItem(s, colour[s]) for s in series),
        unit=unit,
    )


def paired_bars(
    keys: Sequence[str],
    first: Mapping[str, float],
    second: Mapping[str, float],
    *,
    labels: tuple[str, str],
    fills: tuple[str, str],
    unit: str,
    number: Callable[[float], str],
) -> BarChart:
    """Two bars side by side per key (e.g. energy and baseline per ward)."""
    frame = Frame()
    maximum = nice_max(max([*first.values(), *second.values(), 0.0]))
    slot = (frame.right - frame.left) / max(1, len(keys))
    width = max(1.0, slot * 0.35)
    bars = []
    for i, key in enumerate(keys):
        for j, (data, label, fill) in enumerate(zip((first, second), labels, fills, strict=True)):
            value = max(0.0, data.get(key, 0.0))
            x = frame.left + i * slot + slot * 0.15 + j * width
            top = frame.y(value, maximum)
            title = f"{key} · {label}: {number(value)} {unit}"
            bars.append(Bar(x, top, width, frame.bottom - top, fill, title, value, label, key))
    return BarChart(
        frame=frame,
        bars=tuple(bars),
        x_ticks=tuple(Tick(frame.left + (i + 0.5) * slot, k) for i, k in enumerate(keys)),
        y_ticks=_y_ticks(frame, maximum, number),
        legend=tuple(LegendItem(lbl, f) for lbl, f in zip(labels, fills, strict=True)),
        unit=unit,
    )
