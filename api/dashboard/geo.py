"""Map geometry, pure: Web Mercator, the view that fits the luminaires, and an outline.

Coordinates are Web Mercator "world pixels" at an integer zoom ``zoom`` (the world is
``256 * 2**zoom`` units wide), so a raster tile of that zoom is exactly 256 x 256 units
and the browser can lay tiles of any zoom under the markers without reprojecting.

With no tile server (the IOC network may be closed) the map draws its own outline
from the luminaire positions alone: each ward as the convex hull of its poles, each
street as a line through its poles in walking order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_LAT = 85.05112878
VIEW_UNITS = 1000.0
"""The fitted view is at most this many units wide or tall (about one screen)."""
MAX_ZOOM = 19
CHAIN_LIMIT = 3000
"""Streets with more poles than this are ordered along their main axis (O(n)) instead
of by nearest neighbour (O(n^2))."""


@dataclass(frozen=True, slots=True)
class MapPoint:
    """A luminaire on the map."""

    id: int
    name: str
    latitude: float
    longitude: float
    ward: str
    street: str


@dataclass(frozen=True, slots=True)
class Marker:
    id: int
    name: str
    x: float
    y: float
    ward: str
    street: str


@dataclass(frozen=True, slots=True)
class Outline:
    """A ward (closed polygon) or a street (open polylines) with a label position."""

    name: str
    points: str  # SVG points: "x,y x,y ..." (one string per ward)
    label_x: float
    label_y: float


@dataclass(frozen=True, slots=True)
class StreetLine:
    name: str
    lines: tuple[str, ...]  # one SVG points string per connected run
    label_x: float
    label_y: float


@dataclass(frozen=True, slots=True)
class MapGeometry:
    """Everything the map template draws; ``view`` is the SVG viewBox (x, y, w, h)."""

    zoom: int
    view: tuple[float, float, float, float]
    marker_r: float
    markers: tuple[Marker, ...]
    wards: tuple[Outline, ...]
    streets: tuple[StreetLine, ...]

    @property
    def view_box(self) -> str:
        return " ".join(f"{v:.2f}" for v in self.view)


def project(latitude: float, longitude: float, zoom: int = 0) -> tuple[float, float]:
    """Web Mercator world pixels at ``zoom`` (x east, y south)."""
    lat = max(-MAX_LAT, min(MAX_LAT, latitude))
    scale = 256.0 * (1 << zoom)
    x = (longitude + 180.0) / 360.0 * scale
    s = math.sin(math.radians(lat))
    y = (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)) * scale
    return x, y


def fit_zoom(width0: float, height0: float) -> int:
    """The largest integer zoom at which a box of this size (zoom-0 units) fits the view."""
    extent = max(width0, height0)
    if extent <= 0:
        return 16
    return max(0, min(MAX_ZOOM, math.floor(math.log2(VIEW_UNITS / extent))))


def convex_hull(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Counter-clockwise hull (Andrew's monotone chain); fewer than 3 points come back as is."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, float]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def _axis_order(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices sorted along the points' principal axis."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    syy = sum((p[1] - my) ** 2 for p in points)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    angle = 0.5 * math.atan2(2 * sxy, sxx - syy)
    ux, uy = math.cos(angle), math.sin(angle)
    return sorted(range(n), key=lambda i: (points[i][0] - mx) * ux + (points[i][1] - my) * uy)


def walking_order(points: Sequence[tuple[float, float]]) -> list[list[int]]:
    """The points of one street as runs of indices in walking order.

    Start at one end of the main axis, go to the nearest unvisited pole; a jump much
    longer than the usual spacing starts a new run (a street in two pieces).
    """
    n = len(points)
    if n < 2:
        return [list(range(n))]
    axis = _axis_order(points)
    if n > CHAIN_LIMIT:
        order = axis
    else:
        left = set(range(n))
        order = [axis[0]]
        left.discard(axis[0])
        while left:
            cx, cy = points[order[-1]]
            nxt = min(left, key=lambda i: (points[i][0] - cx) ** 2 + (points[i][1] - cy) ** 2)
            order.append(nxt)
            left.discard(nxt)
    gaps = [math.dist(points[a], points[b]) for a, b in itertools.pairwise(order)]
    typical = sorted(gaps)[len(gaps) // 2] if gaps else 0.0
    runs: list[list[int]] = [[order[0]]]
    for gap, index in zip(gaps, order[1:], strict=True):
        if typical > 0 and gap > 4 * typical:
            runs.append([])
        runs[-1].append(index)
    return runs


def _points_attr(points: Iterable[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def build_map(points: Sequence[MapPoint], centre: tuple[float, float]) -> MapGeometry:
    """The map of ``points``; an empty inventory shows the site ``centre`` (lat, lon)."""
    if points:
        raw = [project(p.latitude, p.longitude) for p in points]
        xs = [r[0] for r in raw]
        ys = [r[1] for r in raw]
        zoom = fit_zoom(max(xs) - min(xs), max(ys) - min(ys))
    else:
        zoom = 15
    scale = float(1 << zoom)
    markers = tuple(
        Marker(p.id, p.name, x * scale, y * scale, p.ward, p.street)
        for p, (x, y) in zip(
            points, [project(p.latitude, p.longitude) for p in points], strict=True
        )
    )
    if markers:
        min_x = min(m.x for m in markers)
        max_x = max(m.x for m in markers)
        min_y = min(m.y for m in markers)
        max_y = max(m.y for m in markers)
    else:
        cx, cy = project(*centre, zoom)
        min_x, max_x, min_y, max_y = cx - 250, cx + 250, cy - 180, cy + 180
    width = max(max_x - min_x, 40.0)
    height = max(max_y - min_y, 40.0)
    pad = 0.06 * max(width, height)
    view = (
        (min_x + max_x - width) / 2 - pad,
        (min_y + max_y - height) / 2 - pad,
        width + 2 * pad,
        height + 2 * pad,
    )
    marker_r = max(view[2], view[3]) / 180.0
    by_ward: dict[str, list[tuple[float, float]]] = {}
    by_street: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for m in markers:
        by_ward.setdefault(m.ward, []).append((m.x, m.y))
        by_street.setdefault((m.street, m.ward), []).append((m.x, m.y))
    wards = []
    for name, pts in sorted(by_ward.items()):
        hull = convex_hull(pts)
        cx = sum(p[0] for p in pts) / len(pts)
        cy = sum(p[1] for p in pts) / len(pts)
        wards.append(Outline(name, _points_attr(hull), cx, cy))
    streets = []
    for (name, _ward), pts in sorted(by_street.items()):
        runs = walking_order(pts)
        lines = tuple(_points_attr(pts[i] for i in run) for run in runs if len(run) >= 2)
        longest = max(runs, key=len)
        mid = pts[longest[len(longest) // 2]]
        streets.append(StreetLine(name, lines, mid[0], mid[1]))
    return MapGeometry(zoom, view, marker_r, markers, tuple(wards), tuple(streets))
