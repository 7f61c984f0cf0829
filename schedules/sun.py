"""Sun events for a site and a local date: sunrise, sunset, civil and nautical twilight.

Everything here is computed from astral 3.2's solar-position model (``astral.sun``), always
with ``tzinfo=ZoneInfo(site.timezone)`` so that a *local* date means the local calendar day.
Nothing reads the clock and nothing does I/O.

Why not just ``astral.sun.sunrise`` / ``dawn``: astral's shortcut (``time_of_transit``)
evaluates the sun's declination once and folds refraction into the twilight depression
(its civil dawn is where the sun is at -6.06 deg), so at Đông Hà its events sit 5-18 s
from NREL SPA, always on the same side (its day is about 25 s too short). Here astral's
estimate is only the starting point; the instant is then refined by bisection on astral's
own solar elevation until the sun's geometric centre is at the target elevation. That puts
all six events within 5 s of NREL SPA over 2026-2027 (see ``docs/schedules.md``) and keeps
the definitions below explicit. Every instant is rounded to the nearest second.

Definitions (angles are the geometric, unrefracted elevation of the sun's centre):

- sunrise / sunset: -0.8333 deg, the upper limb on a sea-level horizon (34' standard
  refraction + 16' semi-diameter), the standard definition that SPA, published almanacs and
  other systems' astro clocks use. Only a site that opts in (``Site.horizon_dip``) lowers
  it by the dip of the horizon seen from ``site.elevation_m`` above the surroundings, so
  that a higher observer sees the sun earlier in the morning and later at night (about
  25 s at 10 m in Đông Hà).
- civil dawn / dusk: -6 deg; nautical dawn / dusk: -12 deg. Twilight is defined against the
  astronomical horizon, as almanacs do, so neither the elevation nor the dip moves it.

Missing events are values, not exceptions: an event that does not happen on the local date
(the sun never sets, never rises, or never gets 6 or 12 deg below the horizon) is ``None``,
and :class:`SunStatus` says whether the date is an ordinary one or a polar day or night.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from astral import Observer, SunDirection
from astral.sun import elevation, noon, time_at_elevation

HORIZON_DEG = -0.8333
"""Geometric elevation of the sun's centre at sunrise/sunset for an observer at sea level."""

CIVIL_DEG = -6.0
NAUTICAL_DEG = -12.0

EARTH_RADIUS_M = 6_356_900.0
"""Radius astral uses for the horizon dip; kept so elevation effects match astral's."""

_BRACKET = timedelta(minutes=20)
_WIDE_BRACKET = timedelta(minutes=120)
_TOLERANCE = timedelta(milliseconds=100)
_SCAN_STEP = timedelta(minutes=10)


class SunEvent(StrEnum):
    """The six sun events a program can be anchored to."""

    SUNRISE = "sunrise"
    SUNSET = "sunset"
    CIVIL_DAWN = "civil_dawn"
    CIVIL_DUSK = "civil_dusk"
    NAUTICAL_DAWN = "nautical_dawn"
    NAUTICAL_DUSK = "nautical_dusk"

    @property
    def is_dusk(self) -> bool:
        """True for evening events (sunset and the dusks), False for morning ones."""
        return self in (SunEvent.SUNSET, SunEvent.CIVIL_DUSK, SunEvent.NAUTICAL_DUSK)

    @property
    def brighter(self) -> SunEvent | None:
        """The same-side event that happens while it is lighter, used as a fallback.

        nautical dusk -> civil dusk -> sunset (and the same for dawn); ``None`` for sunset
        and sunrise (see :mod:`schedules.program` for what happens then).
        """
        return _BRIGHTER.get(self)


_BRIGHTER: dict[SunEvent, SunEvent] = {
    SunEvent.NAUTICAL_DUSK: SunEvent.CIVIL_DUSK,
    SunEvent.CIVIL_DUSK: SunEvent.SUNSET,
    SunEvent.NAUTICAL_DAWN: SunEvent.CIVIL_DAWN,
    SunEvent.CIVIL_DAWN: SunEvent.SUNRISE,
}


class SunStatus(StrEnum):
    """What kind of day a local date is at a site.

    ``normal``: the sun rises or sets on the date (on the few transition days next to a
    polar season one of the two may still be missing). ``polar_day``: the sun stays above
    the horizon all date long. ``polar_night``: it stays below.
    """

    NORMAL = "normal"
    POLAR_DAY = "polar_day"
    POLAR_NIGHT = "polar_night"


@dataclass(frozen=True, slots=True)
class Site:
    """Where the luminaires are.

    ``latitude`` and ``longitude`` are in decimal degrees (north and east positive),
    ``elevation_m`` is the observer's height in metres above the surrounding terrain (0 or
    more), ``timezone`` an IANA zone name. The local date of every computation is read in
    that zone. ``horizon_dip``: lower the sunrise/sunset horizon by the dip seen from
    ``elevation_m`` (off by default: the standard definition ignores the height).
    """

    name: str
    latitude: float
    longitude: float
    elevation_m: float
    timezone: str
    horizon_dip: bool = False

    def __post_init__(self) -> None:
        if not -90.0 <= self.latitude <= 90.0:
            raise ValueError(f"latitude must be -90..90 degrees, got {self.latitude}")
        if not -180.0 <= self.longitude <= 180.0:
            raise ValueError(f"longitude must be -180..180 degrees, got {self.longitude}")
        if not (math.isfinite(self.elevation_m) and self.elevation_m >= 0.0):
            raise ValueError(f"elevation_m must be 0 or more metres, got {self.elevation_m}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def horizon_deg(self) -> float:
        """Geometric elevation of the sun's centre at sunrise/sunset for this observer."""
        if not self.horizon_dip:
            return HORIZON_DEG
        return HORIZON_DEG - horizon_dip_deg(self.elevation_m)


DONG_HA = Site(
    name="Đông Hà",
    latitude=16.8163,
    longitude=107.1003,
    elevation_m=10.0,
    timezone="Asia/Ho_Chi_Minh",
)
"""The first city, and the default site."""


@dataclass(frozen=True, slots=True)
class SunEvents:
    """The sun events of one local date at one site.

    Every instant is aware, in the site's zone, rounded to the whole second and on
    ``date`` (local). A ``None`` event does not happen on that date. ``solar_noon`` (the
    sun's highest point) always exists.
    """

    date: date
    status: SunStatus
    solar_noon: datetime
    sunrise: datetime | None
    sunset: datetime | None
    civil_dawn: datetime | None
    civil_dusk: datetime | None
    nautical_dawn: datetime | None
    nautical_dusk: datetime | None

    def get(self, event: SunEvent) -> datetime | None:
        """The instant of ``event`` on this date, or ``None`` if it does not happen."""
        value: datetime | None = getattr(self, event.value)
        return value


def horizon_dip_deg(elevation_m: float) -> float:
    """Degrees the visible horizon lies below the astronomical one for an observer this high.

    Purely geometric (as astral's ``adjust_to_horizon``): about 0.10 deg at 10 m, which moves
    sunrise and sunset by roughly 25 s at Đông Hà.
    """
    if elevation_m <= 0.0:
        return 0.0
    return math.degrees(math.acos(EARTH_RADIUS_M / (EARTH_RADIUS_M + elevation_m)))


@functools.lru_cache(maxsize=8192)
def compute_sun_events(site: Site, day: date) -> SunEvents:
    """Compute the sun events of local date ``day`` at ``site``.

    Pure and cached (a year of nights is checked at a time when validating a program).
    """
    tz = site.tzinfo
    observer = Observer(site.latitude, site.longitude, 0.0)
    solar_noon = _solar_noon(observer, day, tz)
    sunrise = _crossing(observer, day, tz, site.horizon_deg, rising=True)
    sunset = _crossing(observer, day, tz, site.horizon_deg, rising=False)
    if sunrise is None and sunset is None:
        up_at_noon = _elevation_deg(observer, solar_noon) > site.horizon_deg
        status = SunStatus.POLAR_DAY if up_at_noon else SunStatus.POLAR_NIGHT
    else:
        status = SunStatus.NORMAL
    return SunEvents(
        date=day,
        status=status,
        solar_noon=_round_to_second(solar_noon),
        sunrise=sunrise,
        sunset=sunset,
        civil_dawn=_crossing(observer, day, tz, CIVIL_DEG, rising=True),
        civil_dusk=_crossing(observer, day, tz, CIVIL_DEG, rising=False),
        nautical_dawn=_crossing(observer, day, tz, NAUTICAL_DEG, rising=True),
        nautical_dusk=_crossing(observer, day, tz, NAUTICAL_DEG, rising=False),
    )


def event_elevation_deg(site: Site, event: SunEvent) -> float:
    """The geometric elevation (degrees) of the sun's centre at ``event`` for ``site``."""
    if event in (SunEvent.SUNRISE, SunEvent.SUNSET):
        return site.horizon_deg
    if event in (SunEvent.CIVIL_DAWN, SunEvent.CIVIL_DUSK):
        return CIVIL_DEG
    return NAUTICAL_DEG


def sun_elevation_deg(site: Site, at: datetime) -> float:
    """The geometric (unrefracted) elevation of the sun's centre at ``at``, in degrees."""
    return _elevation_deg(Observer(site.latitude, site.longitude, 0.0), at)


def find_crossings(
    site: Site, start: datetime, end: datetime, elevation_deg: float, *, rising: bool
) -> list[datetime]:
    """Every instant in ``start``..``end`` (aware, end excluded) the sun's centre passes
    ``elevation_deg`` going up (``rising``) or down, in order, in the site's zone.

    A slower, date-free search (a 10-minute scan, then bisection) for the cases the
    per-date :func:`compute_sun_events` cannot express: near a polar season a date can
    hold two sunsets (00:20 and 23:59) and the one that matters for a night is not the
    one a per-date table keeps.
    """
    observer = Observer(site.latitude, site.longitude, 0.0)
    return [
        _round_to_second(at.astimezone(site.tzinfo))
        for at in _scan_window(
            observer, start.astimezone(UTC), end.astimezone(UTC), elevation_deg, rising=rising
        )
    ]


def _elevation_deg(observer: Observer, at: datetime) -> float:
    value: float = elevation(observer, at, with_refraction=False)
    return value


def _solar_noon(observer: Observer, day: date, tz: ZoneInfo) -> datetime:
    # astral's noon() reads ``date`` as a UTC date, so far from Greenwich it can land on the
    # local day before or after: step the requested date until the local date matches.
    for shift in (0, -1, 1):
        candidate: datetime = noon(observer, day + timedelta(days=shift), tzinfo=tz)
        if candidate.date() == day:
            return candidate
    raise AssertionError(f"no solar noon on {day}")  # every date has exactly one


def _crossing(
    observer: Observer, day: date, tz: ZoneInfo, target_deg: float, *, rising: bool
) -> datetime | None:
    """The instant on local ``day`` the sun's centre passes ``target_deg`` going up/down.

    astral's ``time_at_elevation`` gives a first estimate; like ``noon`` it reads the date
    in UTC, so estimates for the neighbouring dates are tried as well and the refined
    instant that lies on ``day`` is kept. Near a polar season astral's estimate can miss
    (it assumes one declination for the whole day), so the day is then scanned instead.
    ``None`` when the sun does not cross the target that way on that date.
    """
    direction = SunDirection.RISING if rising else SunDirection.SETTING
    for shift in (0, -1, 1):
        try:
            estimate: datetime = time_at_elevation(
                observer,
                target_deg,
                day + timedelta(days=shift),
                direction,
                tzinfo=tz,
                with_refraction=False,
            )
        except ValueError:  # astral: the sun never reaches this elevation on that date
            continue
        refined = _refine(observer, estimate, target_deg, rising=rising)
        if refined is not None and refined.astimezone(tz).date() == day:
            return _round_to_second(refined.astimezone(tz))
    scanned = _scan(observer, day, tz, target_deg, rising=rising)
    return None if scanned is None else _round_to_second(scanned.astimezone(tz))


def _scan(
    observer: Observer, day: date, tz: ZoneInfo, target_deg: float, *, rising: bool
) -> datetime | None:
    """The first crossing during local ``day``, found by :func:`_scan_window`."""
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    found = _scan_window(observer, start, end, target_deg, rising=rising)
    return found[0] if found else None


def _scan_window(
    observer: Observer, start: datetime, end: datetime, target_deg: float, *, rising: bool
) -> list[datetime]:
    """Walk ``start``..``end`` in 10-minute steps and bisect every crossing found.

    A crossing and its return inside one step (the sun grazing the target for under ten
    minutes, on a day or two a year near a polar season) is not seen.
    """
    found = []
    low = start
    low_before = _below(observer, low, target_deg, rising)
    while low < end:
        high = min(low + _SCAN_STEP, end)
        high_before = _below(observer, high, target_deg, rising)
        if low_before and not high_before:
            crossing = _bisect(observer, low, high, target_deg, rising=rising)
            if crossing < end:
                found.append(crossing)
        low, low_before = high, high_before
    return found


def _refine(
    observer: Observer, estimate: datetime, target_deg: float, *, rising: bool
) -> datetime | None:
    """Find the crossing near ``estimate``: bracket it, then bisect.

    The bracket must be below the target at its start and above at its end when rising
    (the reverse when setting). 20 minutes either side almost always does; 2 hours covers
    the rest; ``None`` if even that fails (near a polar season, where the estimate is only
    approximate).
    """
    for half_width in (_BRACKET, _WIDE_BRACKET):
        low, high = estimate - half_width, estimate + half_width
        if _below(observer, low, target_deg, rising) and not _below(
            observer, high, target_deg, rising
        ):
            return _bisect(observer, low, high, target_deg, rising=rising)
    return None


def _below(observer: Observer, at: datetime, target_deg: float, rising: bool) -> bool:
    """Whether the sun at ``at`` is still on the 'before' side of the crossing."""
    height = _elevation_deg(observer, at) - target_deg
    return height < 0.0 if rising else height > 0.0


def _bisect(
    observer: Observer, low: datetime, high: datetime, target_deg: float, *, rising: bool
) -> datetime:
    """Narrow a bracket (before the crossing at ``low``, after at ``high``) to 0.1 s."""
    while high - low > _TOLERANCE:
        middle = low + (high - low) / 2
        if _below(observer, middle, target_deg, rising):
            low = middle
        else:
            high = middle
    return low + (high - low) / 2


def _round_to_second(at: datetime) -> datetime:
    """Round to the nearest whole second (half up), keeping the zone."""
    tz = at.tzinfo
    utc = at.astimezone(UTC)
    whole = utc.replace(microsecond=0)
    if utc.microsecond >= 500_000:
        whole += timedelta(seconds=1)
    return whole.astimezone(tz)
