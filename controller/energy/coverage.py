"""Which luminaire-time telemetry covered, and how much of it was dark. Pure.

The baseline (what the luminaires would have used at 100 % from sunset to sunrise) may only
count time the system measured, or a controller started at noon would claim the whole
night before as savings. The rule, applied per luminaire to consecutive readings:

* the span between two consecutive readings of a luminaire is **covered** when they are at
  most ``max_gap_s`` apart (``energy.coverage_max_gap_s``); a longer silence (gateway
  offline, controller stopped) is not, nor is anything before a luminaire's first reading
  of a controller run;
* a covered span is cut at UTC hour starts and at local midnights (the rollups' buckets),
  and each piece counts its seconds and its **dark** seconds: the part between a sunset
  and the next sunrise (:func:`dark_intervals`).

The telemetry writer books both into ``energy_hourly`` and ``energy_daily``
(``covered_s``, ``covered_dark_s``); the baseline is the rated power times
``covered_dark_s``, and a report's coverage is ``covered_dark_s`` over the dark time of
its period times the luminaires in the inventory (:mod:`controller.energy.report`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from schedules.sun import Site, SunStatus, compute_sun_events

DEFAULT_MAX_GAP_S = 120.0
"""Default for ``energy.coverage_max_gap_s``: the controller's own staleness threshold for an
MQTT gateway's state (``controller.mqtt_stale_after_s``), twelve polls at the usual 10 s."""


def local_midnight(day: date, site: Site) -> datetime:
    """The start of local ``day`` at the site, aware (site zone)."""
    return datetime.combine(day, time(0), tzinfo=site.tzinfo)


def dark_intervals(site: Site, day: date) -> list[tuple[datetime, datetime]]:
    """The parts of local ``day`` between a sunset and the next sunrise, in UTC.

    Ordinary day: midnight to sunrise, and sunset to midnight. Polar night: the whole day;
    polar day: nothing. Near a polar season a date may hold a sunset but no sunrise (dark
    from sunset on) or the reverse, or a sunset before the sunrise (dark in between).
    """
    start = local_midnight(day, site).astimezone(UTC)
    end = local_midnight(day + timedelta(days=1), site).astimezone(UTC)
    events = compute_sun_events(site, day)
    rise = None if events.sunrise is None else events.sunrise.astimezone(UTC)
    sets = None if events.sunset is None else events.sunset.astimezone(UTC)
    if rise is None and sets is None:
        return [(start, end)] if events.status is SunStatus.POLAR_NIGHT else []
    if rise is not None and sets is not None and sets < rise:
        return [(sets, rise)]
    out: list[tuple[datetime, datetime]] = []
    if rise is not None:
        out.append((start, rise))
    if sets is not None:
        out.append((sets, end))
    return out


def overlap_s(intervals: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> float:
    """Seconds of ``start``..``end`` inside ``intervals``."""
    total = 0.0
    for a, b in intervals:
        seconds = (min(b, end) - max(a, start)).total_seconds()
        if seconds > 0:
            total += seconds
    return total


@dataclass(frozen=True, slots=True)
class LocalDay:
    """One local day of the site: its end (UTC) and its dark intervals (UTC)."""

    day: date
    end: datetime
    dark: list[tuple[datetime, datetime]]


@dataclass(slots=True)
class DarkCalendar:
    """The local days of a site with their dark intervals, remembered (the telemetry writer
    asks for the same day thousands of times a second)."""

    site: Site
    tz: ZoneInfo = field(init=False)
    days: dict[date, LocalDay] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tz = self.site.tzinfo

    def __call__(self, day: date) -> LocalDay:
        found = self.days.get(day)
        if found is None:
            if len(self.days) > 64:
                self.days.clear()
            end = local_midnight(day + timedelta(days=1), self.site).astimezone(UTC)
            found = self.days[day] = LocalDay(day, end, dark_intervals(self.site, day))
        return found


@dataclass(frozen=True, slots=True)
class Piece:
    """The part of a covered span inside one UTC hour and one local day."""

    hour: datetime  # UTC hour start
    day: date  # local day
    seconds: float
    dark_s: float


_HOUR = timedelta(hours=1)


def covered_pieces(
    site: Site,
    previous: datetime,
    current: datetime,
    max_gap_s: float,
    calendar: DarkCalendar | None = None,
) -> list[Piece]:
    """The span ``previous``..``current`` (aware) cut by UTC hour and local day, if covered.

    Empty when the readings are more than ``max_gap_s`` apart, or not in order. The pieces'
    seconds add up to the span. ``calendar`` remembers the site's days (default: a new one).
    """
    span = (current - previous).total_seconds()
    if span <= 0 or span > max_gap_s:
        return []
    if calendar is None:
        calendar = DarkCalendar(site)
    out: list[Piece] = []
    start = previous.astimezone(UTC)
    end = current.astimezone(UTC)
    while start < end:
        hour = start.replace(minute=0, second=0, microsecond=0)
        local = calendar(start.astimezone(calendar.tz).date())
        cut = min(end, hour + _HOUR, local.end)
        seconds = (cut - start).total_seconds()
        out.append(Piece(hour, local.day, seconds, overlap_s(local.dark, start, cut)))
        start = cut
    return out
