"""Sun events: accuracy against NREL SPA, polar cases, observer elevation, invariants."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.sun import (
    DONG_HA,
    Site,
    SunEvent,
    SunStatus,
    compute_sun_events,
    event_elevation_deg,
    find_crossings,
    horizon_dip_deg,
    sun_elevation_deg,
)
from tests.unit.schedules.reference_data import DONG_HA_SEA_LEVEL, spa_reference

SPA_TOLERANCE_S = 5.0
"""The accuracy reached (docs/schedules.md has the table): every event within 5 s of SPA."""

TROMSO = Site("Tromsø", 69.6492, 18.9553, 0.0, "Europe/Oslo")
LONGYEARBYEN = Site("Longyearbyen", 78.2232, 15.6267, 0.0, "Arctic/Longyearbyen")


def _year_days(*years: int) -> list[date]:
    days = []
    for year in years:
        day = date(year, 1, 1)
        while day.year == year:
            days.append(day)
            day += timedelta(days=1)
    return days


# --- accuracy ---------------------------------------------------------------------------


def _deltas(event: SunEvent, site: Site = DONG_HA) -> list[tuple[date, float]]:
    reference = spa_reference()
    found = []
    for day in _year_days(2026, 2027):
        ours = compute_sun_events(site, day).get(event)
        assert ours is not None, f"{event} missing on {day} at Đông Hà"
        found.append((day, (ours - reference[day][event]).total_seconds()))
    return found


def test_reference_covers_every_day_of_2026_and_2027() -> None:
    assert sorted(spa_reference()) == _year_days(2026, 2027)


@pytest.mark.parametrize("site", [DONG_HA, DONG_HA_SEA_LEVEL], ids=["10 m", "sea level"])
@pytest.mark.parametrize("event", list(SunEvent))
def test_every_day_of_2026_and_2027_is_within_5_s_of_spa(event: SunEvent, site: Site) -> None:
    # The default site (10 m above its surroundings) uses the standard definition, like
    # SPA and the almanacs: its height changes nothing unless the dip is asked for.
    worst_day, worst = max(_deltas(event, site), key=lambda item: abs(item[1]))
    assert abs(worst) <= SPA_TOLERANCE_S, f"{event} on {worst_day}: {worst:+.1f} s from SPA"


@pytest.mark.parametrize("event", list(SunEvent))
def test_error_is_not_a_constant_bias(event: SunEvent) -> None:
    # The refinement on astral's solar position keeps every event within a few seconds;
    # astral's own sunrise()/dawn() shortcuts drift 5-18 s to one side.
    deltas = [delta for _, delta in _deltas(event)]
    assert abs(sum(deltas) / len(deltas)) < 3.0
    assert max(abs(delta) for delta in deltas) < 10.0


# --- calendar and zone handling ------------------------------------------------------------


@pytest.mark.parametrize(
    ("site", "day"),
    [
        (DONG_HA, date(2026, 6, 21)),
        (DONG_HA, date(2026, 12, 21)),
        # far from Greenwich: astral reads dates in UTC, local dates must still hold
        (Site("Kiritimati", 1.87, -157.4, 0.0, "Pacific/Kiritimati"), date(2026, 3, 8)),
        (Site("Auckland", -36.85, 174.76, 0.0, "Pacific/Auckland"), date(2026, 6, 21)),
        (Site("Los Angeles", 34.05, -118.24, 0.0, "America/Los_Angeles"), date(2026, 3, 8)),
        (Site("Reykjavík", 64.15, -21.94, 0.0, "Atlantic/Reykjavik"), date(2026, 6, 21)),
    ],
)
def test_every_event_is_on_the_requested_local_date_in_the_site_zone(site: Site, day: date) -> None:
    events = compute_sun_events(site, day)
    assert events.date == day
    present = [at for at in (events.get(e) for e in SunEvent) if at is not None]
    for at in [*present, events.solar_noon]:
        assert at.tzinfo is not None
        assert at.utcoffset() == at.astimezone(site.tzinfo).utcoffset()
        assert at.astimezone(site.tzinfo).date() == day
        assert at.microsecond == 0


def test_dong_ha_events_come_in_order_every_day() -> None:
    for day in _year_days(2026):
        e = compute_sun_events(DONG_HA, day)
        assert e.status is SunStatus.NORMAL
        order = [
            e.nautical_dawn,
            e.civil_dawn,
            e.sunrise,
            e.solar_noon,
            e.sunset,
            e.civil_dusk,
            e.nautical_dusk,
        ]
        assert all(at is not None for at in order)
        assert order == sorted(order)  # type: ignore[type-var]


def test_civil_dusk_is_about_24_minutes_after_sunset_in_dong_ha() -> None:
    # at 16.8° N civil dusk comes about 24 minutes after sunset (docs/schedules.md)
    for day in _year_days(2026):
        e = compute_sun_events(DONG_HA, day)
        assert e.civil_dusk is not None and e.sunset is not None
        gap = (e.civil_dusk - e.sunset).total_seconds() / 60
        assert 21 <= gap <= 26


@pytest.mark.parametrize("event", list(SunEvent))
def test_sun_elevation_at_spa_events_is_the_event_elevation(event: SunEvent) -> None:
    # the elevation model and the event definitions agree with SPA's instants
    target = event_elevation_deg(DONG_HA_SEA_LEVEL, event)
    assert target == {"sunrise": -0.8333, "sunset": -0.8333}.get(event.value, target)
    assert target in (-0.8333, -6.0, -12.0)
    for day, events in list(spa_reference().items())[::30]:
        elevation = sun_elevation_deg(DONG_HA_SEA_LEVEL, events[event])
        assert elevation == pytest.approx(target, abs=0.02), day


def test_event_elevation_is_the_standard_one_unless_the_dip_is_asked_for() -> None:
    assert DONG_HA.elevation_m == 10.0 and not DONG_HA.horizon_dip
    assert event_elevation_deg(DONG_HA, SunEvent.SUNSET) == -0.8333
    dipped = replace(DONG_HA, horizon_dip=True)
    assert event_elevation_deg(dipped, SunEvent.SUNSET) == pytest.approx(-0.8333 - 0.1016, abs=1e-3)
    for site in (DONG_HA, dipped):  # the dip never moves twilight
        assert event_elevation_deg(site, SunEvent.CIVIL_DUSK) == -6.0
        assert event_elevation_deg(site, SunEvent.NAUTICAL_DAWN) == -12.0


# --- observer elevation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elevation_m", "dip_deg"),
    [(0.0, 0.0), (10.0, 0.1016), (100.0, 0.3214), (1000.0, 1.0162)],
)
def test_horizon_dip_matches_geometry(elevation_m: float, dip_deg: float) -> None:
    # dip = acos(R / (R + h)), approximately sqrt(2h/R) rad
    assert horizon_dip_deg(elevation_m) == pytest.approx(dip_deg, abs=5e-4)


@pytest.mark.parametrize("height_m", [10.0, 100.0])
def test_without_the_dip_height_changes_nothing(height_m: float) -> None:
    high = Site("high", DONG_HA.latitude, DONG_HA.longitude, height_m, DONG_HA.timezone)
    for day in _year_days(2026)[::7]:
        assert compute_sun_events(high, day) == compute_sun_events(DONG_HA_SEA_LEVEL, day)


@pytest.mark.parametrize("height_m", [10.0, 100.0])
def test_with_the_dip_a_higher_observer_sees_sunrise_earlier_and_sunset_later(
    height_m: float,
) -> None:
    high = Site(
        "high", DONG_HA.latitude, DONG_HA.longitude, height_m, DONG_HA.timezone, horizon_dip=True
    )
    for day in _year_days(2026)[::7]:
        low_e = compute_sun_events(DONG_HA_SEA_LEVEL, day)
        high_e = compute_sun_events(high, day)
        assert low_e.sunrise and low_e.sunset and high_e.sunrise and high_e.sunset
        earlier = (low_e.sunrise - high_e.sunrise).total_seconds()
        later = (high_e.sunset - low_e.sunset).total_seconds()
        # the dip over the sun's vertical speed at the horizon (0.20-0.24 deg/min here)
        expected = horizon_dip_deg(height_m) / 0.22 * 60
        assert expected * 0.8 - 1 <= earlier <= expected * 1.25 + 1
        assert expected * 0.8 - 1 <= later <= expected * 1.25 + 1
        # twilight is measured from the astronomical horizon: height does not move it
        assert high_e.civil_dusk == low_e.civil_dusk
        assert high_e.nautical_dawn == low_e.nautical_dawn


# --- polar sites ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("site", "day", "status", "missing"),
    [
        # midnight sun in Tromsø (about 20 May to 22 July): no event at all
        (TROMSO, date(2026, 6, 21), SunStatus.POLAR_DAY, set(SunEvent)),
        (TROMSO, date(2027, 7, 1), SunStatus.POLAR_DAY, set(SunEvent)),
        # polar night (about 27 November to 15 January): twilight only
        (TROMSO, date(2026, 12, 21), SunStatus.POLAR_NIGHT, {SunEvent.SUNRISE, SunEvent.SUNSET}),
        (TROMSO, date(2027, 1, 5), SunStatus.POLAR_NIGHT, {SunEvent.SUNRISE, SunEvent.SUNSET}),
        # light nights in May: the sun sets but never gets 6 degrees down
        (
            TROMSO,
            date(2026, 5, 10),
            SunStatus.NORMAL,
            {
                SunEvent.CIVIL_DAWN,
                SunEvent.CIVIL_DUSK,
                SunEvent.NAUTICAL_DAWN,
                SunEvent.NAUTICAL_DUSK,
            },
        ),
        # equinox: everything happens
        (TROMSO, date(2026, 3, 20), SunStatus.NORMAL, set()),
        # Longyearbyen at midwinter: the sun does not even reach -6 degrees
        (
            LONGYEARBYEN,
            date(2026, 12, 21),
            SunStatus.POLAR_NIGHT,
            {SunEvent.SUNRISE, SunEvent.SUNSET, SunEvent.CIVIL_DAWN, SunEvent.CIVIL_DUSK},
        ),
        (LONGYEARBYEN, date(2026, 6, 21), SunStatus.POLAR_DAY, set(SunEvent)),
    ],
)
def test_polar_dates(site: Site, day: date, status: SunStatus, missing: set[SunEvent]) -> None:
    events = compute_sun_events(site, day)
    assert events.status is status
    assert {event for event in SunEvent if events.get(event) is None} == missing


def test_tromso_polar_night_and_midnight_sun_seasons() -> None:
    # Published for Tromsø: polar night about 27 Nov - 15 Jan, midnight sun about
    # 18 May - 26 Jul (for the sun's centre at -0.83 deg; the upper limb is a few days
    # longer). Allow two days either way at each end.
    statuses = {day: compute_sun_events(TROMSO, day).status for day in _year_days(2026)}
    night = [day for day, s in statuses.items() if s is SunStatus.POLAR_NIGHT]
    day_ = [day for day, s in statuses.items() if s is SunStatus.POLAR_DAY]
    last_winter = max(d for d in night if d.month == 1)
    first_winter = min(d for d in night if d.month >= 11)
    assert date(2026, 1, 12) <= last_winter <= date(2026, 1, 17)
    assert date(2026, 11, 25) <= first_winter <= date(2026, 11, 30)
    assert date(2026, 5, 16) <= min(day_) <= date(2026, 5, 22)
    assert date(2026, 7, 22) <= max(day_) <= date(2026, 7, 28)


# --- invariants -------------------------------------------------------------------------------


@st.composite
def _temperate_sites(draw: st.DrawFn) -> Site:
    """Sites up to 50 degrees latitude in their solar-ish zone (Etc/GMT is sign-flipped)."""
    latitude = draw(st.floats(-50.0, 50.0))
    longitude = draw(st.floats(-179.0, 179.0))
    hours = round(longitude / 15)
    zone = "Etc/GMT" if hours == 0 else f"Etc/GMT{-hours:+d}"
    elevation_m = draw(st.sampled_from([0.0, 10.0, 250.0]))
    return Site("random", latitude, longitude, elevation_m, zone)


_DAYS = st.dates(date(1950, 1, 1), date(2100, 12, 31))


@settings(max_examples=60, deadline=None)
@given(site=_temperate_sites(), day=_DAYS)
def test_below_50_degrees_every_event_happens_in_order(site: Site, day: date) -> None:
    e = compute_sun_events(site, day)
    assert e.status is SunStatus.NORMAL
    order = [
        e.nautical_dawn,
        e.civil_dawn,
        e.sunrise,
        e.solar_noon,
        e.sunset,
        e.civil_dusk,
        e.nautical_dusk,
    ]
    assert all(at is not None for at in order), order
    assert order == sorted(order)  # type: ignore[type-var]
    for at in order:
        assert at is not None and at.astimezone(site.tzinfo).date() == day


@settings(max_examples=40, deadline=None)
@given(latitude=st.floats(62.0, 85.0) | st.floats(-85.0, -62.0), day=_DAYS)
def test_polar_status_is_consistent_with_events(latitude: float, day: date) -> None:
    site = Site("polar", latitude, 15.0, 0.0, "Etc/GMT-1")
    e = compute_sun_events(site, day)
    horizon_events = (e.sunrise, e.sunset)
    if e.status is SunStatus.NORMAL:
        assert any(at is not None for at in horizon_events)
    else:
        assert horizon_events == (None, None)
    if e.status is SunStatus.POLAR_DAY:  # never below the horizon: no twilight either
        assert all(e.get(event) is None for event in SunEvent)
    for event in SunEvent:
        at = e.get(event)
        assert at is None or at.astimezone(site.tzinfo).date() == day


# --- site validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latitude": 91.0},
        {"latitude": -90.5},
        {"longitude": 180.5},
        {"elevation_m": -1.0},
        {"elevation_m": float("nan")},
        {"timezone": "Asia/Dong_Ha"},
        {"timezone": ""},
    ],
)
def test_site_refuses_impossible_values(kwargs: dict[str, object]) -> None:
    values: dict[str, object] = {
        "name": "x",
        "latitude": 16.8,
        "longitude": 107.1,
        "elevation_m": 0.0,
        "timezone": "Asia/Ho_Chi_Minh",
    }
    values.update(kwargs)
    with pytest.raises(ValueError, match=next(iter(kwargs)).split("_")[0]):
        Site(**values)  # type: ignore[arg-type]


def test_dong_ha_default_site() -> None:
    assert (DONG_HA.latitude, DONG_HA.longitude, DONG_HA.elevation_m) == (16.8163, 107.1003, 10)
    assert DONG_HA.tzinfo.utcoffset(datetime(2026, 7, 1)) == timedelta(hours=7)
    assert DONG_HA.tzinfo.utcoffset(datetime(2026, 1, 1)) == timedelta(hours=7)  # no DST
    assert datetime(2026, 1, 1, tzinfo=UTC).astimezone(DONG_HA.tzinfo).hour == 7


def test_find_crossings_agrees_with_the_daily_events() -> None:
    day = date(2026, 6, 21)
    events = compute_sun_events(DONG_HA, day)
    start = datetime.combine(day, datetime.min.time(), tzinfo=DONG_HA.tzinfo)
    end = start + timedelta(days=1)
    for event in SunEvent:
        found = find_crossings(
            DONG_HA, start, end, event_elevation_deg(DONG_HA, event), rising=not event.is_dusk
        )
        assert found == [events.get(event)], event


def test_a_date_can_hold_two_sunsets_near_the_midnight_sun() -> None:
    # Tromsø, 27 July 2026: the sun dips below the horizon just after midnight and again
    # just before the next midnight; the daily table keeps one of them.
    day = date(2026, 7, 27)
    start = datetime.combine(day, datetime.min.time(), tzinfo=TROMSO.tzinfo)
    target = event_elevation_deg(TROMSO, SunEvent.SUNSET)
    sunsets = find_crossings(TROMSO, start, start + timedelta(days=1), target, rising=False)
    assert [at.hour for at in sunsets] == [0, 23]
    for at in sunsets:  # really crossings: above just before, below just after
        assert sun_elevation_deg(TROMSO, at - timedelta(minutes=2)) > target
        assert sun_elevation_deg(TROMSO, at + timedelta(minutes=2)) < target
    assert compute_sun_events(TROMSO, day).sunset in sunsets
