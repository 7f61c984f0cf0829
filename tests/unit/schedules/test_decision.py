"""The decision: override > calendar program > default level; timelines; group choice."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.builtin import BUILTIN_PROGRAMS, DONG_HA_STANDARD
from schedules.calendar import Calendar, OnDate, OnHoliday, Rule
from schedules.decision import (
    Change,
    Decision,
    GroupCalendar,
    Override,
    Source,
    assign_calendars,
    decide,
    governing_calendar,
    pick_calendar,
    timeline,
)
from schedules.errors import UnknownProgram
from schedules.holiday import HolidayKey
from schedules.program import Program, night_bounds
from schedules.sun import DONG_HA, SunEvent
from tests.unit.schedules.reference_data import DONG_HA_SEA_LEVEL, spa_reference
from tests.unit.schedules.strategies import NIGHTS, VALID_PROGRAMS, overrides_in

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2026, 1, 1, tzinfo=UTC)

CALENDAR = Calendar(
    (Rule(OnHoliday(HolidayKey.TET), "holiday"), Rule(OnDate(date(2026, 9, 2)), "full night")),
    default_program="Đông Hà standard",
)


def local(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=HCM)


def override(
    id_: int, level: int, start: datetime, end: datetime, created: datetime = T0
) -> Override:
    return Override(id=id_, level=level, start=start, end=end, created_at=created)


def decide_dh(at: datetime, overrides: list[Override] | None = None, **kwargs: object) -> Decision:
    options: dict[str, object] = {
        "site": DONG_HA,
        "calendar": CALENDAR,
        "programs": BUILTIN_PROGRAMS,
        "overrides": overrides or [],
    }
    options.update(kwargs)
    return decide(at, **options)  # type: ignore[arg-type]


# --- precedence ----------------------------------------------------------------------------

EVENING_OVERRIDE = override(7, 30, local(2026, 6, 21, 20, 0), local(2026, 6, 21, 23, 0))


@pytest.mark.parametrize(
    ("at", "overrides", "kwargs", "expected"),
    [
        # calendar default program, step 0 (sunset) in effect
        (
            local(2026, 6, 21, 21, 0),
            [],
            {},
            Decision(100, Source.PROGRAM, date(2026, 6, 21), "Đông Hà standard", 0, None),
        ),
        # before sunset the program's own default level applies (no step yet)
        (
            local(2026, 6, 21, 15, 0),
            [],
            {},
            Decision(0, Source.PROGRAM, date(2026, 6, 21), "Đông Hà standard", None, None),
        ),
        # an active override beats the program
        (
            local(2026, 6, 21, 21, 0),
            [EVENING_OVERRIDE],
            {},
            Decision(30, Source.OVERRIDE, date(2026, 6, 21), override_id=7),
        ),
        # overrides are half-open: at its end the program is back
        (
            local(2026, 6, 21, 23, 0),
            [EVENING_OVERRIDE],
            {},
            Decision(70, Source.PROGRAM, date(2026, 6, 21), "Đông Hà standard", 1, None),
        ),
        (
            local(2026, 6, 21, 20, 0),
            [EVENING_OVERRIDE],
            {},
            Decision(30, Source.OVERRIDE, date(2026, 6, 21), override_id=7),
        ),
        # a rule beats the calendar's default program; the night is that of the evening
        (
            local(2026, 2, 17, 3, 0),
            [],
            {},
            Decision(100, Source.PROGRAM, date(2026, 2, 16), "holiday", 0, 0),
        ),
        (
            local(2026, 9, 3, 5, 0),
            [],
            {},
            Decision(100, Source.PROGRAM, date(2026, 9, 2), "full night", 0, 1),
        ),
        # no calendar: the default level
        (
            local(2026, 6, 21, 21, 0),
            [],
            {"calendar": None, "default_level": 40},
            Decision(40, Source.DEFAULT, date(2026, 6, 21)),
        ),
        # calendar with nothing for the night: the default level too
        (
            local(2026, 6, 21, 21, 0),
            [],
            {"calendar": Calendar((Rule(OnDate(date(2026, 1, 1)), "holiday"),))},
            Decision(0, Source.DEFAULT, date(2026, 6, 21)),
        ),
        # ...and an override still beats the default level
        (
            local(2026, 6, 21, 21, 0),
            [EVENING_OVERRIDE],
            {"calendar": None, "default_level": 40},
            Decision(30, Source.OVERRIDE, date(2026, 6, 21), override_id=7),
        ),
    ],
)
def test_precedence(
    at: datetime, overrides: list[Override], kwargs: dict[str, object], expected: Decision
) -> None:
    assert decide_dh(at, overrides, **kwargs) == expected


@pytest.mark.parametrize(
    ("overrides", "winner"),
    [
        # newest created wins, whatever the order given
        (
            [
                override(1, 10, local(2026, 6, 21, 18), local(2026, 6, 22, 6), T0),
                override(2, 20, local(2026, 6, 21, 20), local(2026, 6, 21, 22), T0 + timedelta(1)),
            ],
            2,
        ),
        (
            [
                override(2, 20, local(2026, 6, 21, 20), local(2026, 6, 21, 22), T0),
                override(1, 10, local(2026, 6, 21, 18), local(2026, 6, 22, 6), T0 + timedelta(1)),
            ],
            1,
        ),
        # same creation instant: the higher id
        (
            [
                override(5, 10, local(2026, 6, 21, 18), local(2026, 6, 22, 6), T0),
                override(9, 20, local(2026, 6, 21, 20), local(2026, 6, 21, 22), T0),
            ],
            9,
        ),
        # a newer override that is not active yet does not count
        (
            [
                override(1, 10, local(2026, 6, 21, 18), local(2026, 6, 22, 6), T0),
                override(
                    2, 20, local(2026, 6, 21, 21, 1), local(2026, 6, 21, 22), T0 + timedelta(1)
                ),
            ],
            1,
        ),
    ],
)
def test_newest_active_override_wins(overrides: list[Override], winner: int) -> None:
    decision = decide_dh(local(2026, 6, 21, 21, 0), overrides)
    assert decision.source is Source.OVERRIDE
    assert decision.override_id == winner
    assert decision.level == next(o.level for o in overrides if o.id == winner)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"level": 101},
        {"level": -1},
        {"end": local(2026, 6, 21, 20, 0)},  # empty
        {"start": datetime(2026, 6, 21, 20, 0)},  # naive
        {"created_at": datetime(2026, 6, 1)},
    ],
)
def test_override_refuses_impossible_values(kwargs: dict[str, object]) -> None:
    values: dict[str, object] = {
        "id": 1,
        "level": 50,
        "start": local(2026, 6, 21, 20, 0),
        "end": local(2026, 6, 21, 22, 0),
        "created_at": T0,
    }
    values.update(kwargs)
    with pytest.raises(ValueError, match=r"override"):
        Override(**values)  # type: ignore[arg-type]


def test_unknown_program_reference_raises() -> None:
    calendar = Calendar(default_program="missing")
    with pytest.raises(UnknownProgram, match="missing"):
        decide_dh(local(2026, 6, 21, 21, 0), calendar=calendar)
    with pytest.raises(LookupError):
        timeline(date(2026, 6, 21), site=DONG_HA, calendar=calendar, programs={})


def test_programs_can_be_referred_to_by_id() -> None:
    calendar = Calendar(default_program="3")
    decision = decide_dh(
        local(2026, 6, 21, 23, 0), calendar=calendar, programs={"3": DONG_HA_STANDARD}
    )
    assert (decision.program, decision.level, decision.step_index) == ("Đông Hà standard", 70, 1)


# --- timelines -----------------------------------------------------------------------------


@pytest.mark.parametrize("night", [date(2026, 6, 21), date(2026, 12, 21)])
def test_standard_timeline_in_dong_ha(night: date) -> None:
    spa = spa_reference()
    changes = timeline(
        night,
        site=DONG_HA_SEA_LEVEL,
        calendar=Calendar(default_program="Đông Hà standard"),
        programs=BUILTIN_PROGRAMS,
    )
    morning = night + timedelta(days=1)
    expected = [
        (local(night.year, night.month, night.day, 12, 0), 0, None),
        (spa[night][SunEvent.SUNSET], 100, 0),
        (local(night.year, night.month, night.day, 22, 0), 70, 1),
        (local(morning.year, morning.month, morning.day, 0, 0), 50, 2),
        (local(morning.year, morning.month, morning.day, 4, 30), 70, 3),
        (spa[morning][SunEvent.SUNRISE] - timedelta(minutes=10), 0, 4),
    ]
    assert [(c.level, c.decision.step_index) for c in changes] == [
        (lvl, s) for _, lvl, s in expected
    ]
    for change, (at, _, _) in zip(changes, expected, strict=True):
        assert abs((change.at - at).total_seconds()) <= 30
        assert change.source is Source.PROGRAM
        assert change.at.utcoffset() == timedelta(hours=7)


def test_timeline_includes_override_boundaries_inside_the_night() -> None:
    night = date(2026, 6, 21)
    overrides = [
        override(1, 30, local(2026, 6, 21, 23, 0), local(2026, 6, 22, 1, 0)),
        override(2, 100, local(2026, 6, 22, 10, 0), local(2026, 6, 22, 14, 0)),  # past the end
        override(3, 55, local(2026, 6, 20, 8, 0), local(2026, 6, 20, 9, 0)),  # other night
    ]
    changes = timeline(
        night, site=DONG_HA, calendar=CALENDAR, programs=BUILTIN_PROGRAMS, overrides=overrides
    )
    summary = [(c.at.strftime("%d %H:%M"), c.level, c.source.value) for c in changes]
    assert summary[0] == ("21 12:00", 0, "program")
    assert ("21 23:00", 30, "override") in summary
    assert ("22 01:00", 50, "program") in summary  # back to the 00:00 step's level
    assert ("22 00:00", 50, "program") not in summary  # hidden under override 1
    assert summary[-1] == ("22 10:00", 100, "override")
    assert all(c.decision.override_id != 3 for c in changes)


def test_timeline_skips_boundaries_that_change_nothing() -> None:
    # an override at the same level still changes the source, so it is listed...
    same = override(1, 70, local(2026, 6, 21, 22, 0), local(2026, 6, 21, 23, 0))
    changes = timeline(
        date(2026, 6, 21),
        site=DONG_HA,
        calendar=CALENDAR,
        programs=BUILTIN_PROGRAMS,
        overrides=[same],
    )
    at_22 = [c for c in changes if c.at == local(2026, 6, 21, 22, 0)]
    assert [(c.level, c.source) for c in at_22] == [(70, Source.OVERRIDE)]
    # ...but consecutive entries always differ
    assert all(a.decision != b.decision for a, b in itertools.pairwise(changes))


def test_timeline_without_calendar_is_one_default_entry() -> None:
    changes = timeline(
        date(2026, 6, 21), site=DONG_HA, calendar=None, programs={}, default_level=25
    )
    assert changes == (
        Change(local(2026, 6, 21, 12, 0), Decision(25, Source.DEFAULT, date(2026, 6, 21))),
    )


@settings(max_examples=25, deadline=None)
@given(data=st.data(), program=VALID_PROGRAMS, night=NIGHTS)
def test_timeline_agrees_with_decide_at_every_minute(
    data: st.DataObject, program: Program, night: date
) -> None:
    overrides = data.draw(overrides_in(night))
    programs = {"p": program}
    calendar = Calendar(default_program="p")
    changes = timeline(
        night, site=DONG_HA, calendar=calendar, programs=programs, overrides=overrides
    )
    start, end = night_bounds(DONG_HA, night)
    assert changes[0].at == start
    assert [c.at for c in changes] == sorted({c.at for c in changes})  # strictly increasing
    assert all(start <= c.at < end for c in changes)
    index = 0
    for minute in range(24 * 60):
        at = start + timedelta(minutes=minute)
        while index + 1 < len(changes) and changes[index + 1].at <= at:
            index += 1
        expected = decide(
            at, site=DONG_HA, calendar=calendar, programs=programs, overrides=overrides
        )
        assert changes[index].decision == expected, at
        assert 0 <= expected.level <= 100
    for change in changes:  # exactly at each change too
        assert (
            decide(
                change.at, site=DONG_HA, calendar=calendar, programs=programs, overrides=overrides
            )
            == change.decision
        )


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    program=VALID_PROGRAMS,
    night=NIGHTS,
    second=st.integers(0, 24 * 3600 - 1),
    default_level=st.integers(0, 100),
    with_calendar=st.booleans(),
)
def test_level_is_always_a_percentage(
    data: st.DataObject,
    program: Program,
    night: date,
    second: int,
    default_level: int,
    with_calendar: bool,
) -> None:
    overrides = data.draw(overrides_in(night))
    start, _ = night_bounds(DONG_HA, night)
    decision = decide(
        start + timedelta(seconds=second),
        site=DONG_HA,
        calendar=Calendar(default_program="p") if with_calendar else None,
        programs={"p": program},
        overrides=overrides,
        default_level=default_level,
    )
    assert 0 <= decision.level <= 100
    assert decision.night == night
    assert (decision.override_id is not None) == (decision.source is Source.OVERRIDE)
    assert (decision.program is not None) == (decision.source is Source.PROGRAM)


def test_nights_join_at_noon_with_the_standard_calendar() -> None:
    # the level just before noon (night D) equals the level at noon (night D+1): both off
    for night in (date(2026, 2, 15), date(2026, 6, 21), date(2027, 12, 31)):
        _, end = night_bounds(DONG_HA, night)
        before = decide_dh(end - timedelta(seconds=1))
        after = decide_dh(end)
        assert (before.night, after.night) == (night, night + timedelta(days=1))
        assert before.level == after.level == 0


# --- several groups -------------------------------------------------------------------------

A, B, C_ = 101, 102, 103  # calendar ids


@pytest.mark.parametrize(
    ("candidates", "winner"),
    [
        ([], None),
        ([GroupCalendar(4, 0, A)], 4),
        ([GroupCalendar(4, 1, A), GroupCalendar(2, 5, B)], 2),  # highest priority
        ([GroupCalendar(4, 5, A), GroupCalendar(2, 5, B)], 2),  # tie: lowest group id
        ([GroupCalendar(2, 5, B), GroupCalendar(4, 5, A)], 2),  # order does not matter
        ([GroupCalendar(9, -1, A), GroupCalendar(3, -2, C_)], 9),  # negative priorities
        ([GroupCalendar(1, 0, A), GroupCalendar(1, 0, B)], 1),
    ],
)
def test_pick_calendar(candidates: list[GroupCalendar], winner: int | None) -> None:
    picked = pick_calendar(candidates)
    assert (picked.group_id if picked else None) == winner
    if candidates and winner is not None:
        assert picked in candidates


_OFFERS = st.lists(
    st.builds(GroupCalendar, st.integers(1, 50), st.integers(-3, 3), st.sampled_from([A, B, C_])),
    max_size=8,
    unique_by=lambda c: c.group_id,  # a group has one calendar
)


@settings(max_examples=100, deadline=None)
@given(_OFFERS)
def test_pick_calendar_is_order_independent(candidates: list[GroupCalendar]) -> None:
    picked = pick_calendar(candidates)
    assert picked == pick_calendar(list(reversed(candidates)))
    if candidates:
        assert picked is not None
        top = max(c.priority for c in candidates)
        assert picked.priority == top
        assert picked.group_id == min(c.group_id for c in candidates if c.priority == top)


@settings(max_examples=200, deadline=None)
@given(
    offers=st.dictionaries(st.integers(1, 30), _OFFERS, max_size=12),
    luminaires=st.sets(st.integers(1, 40), max_size=20),
    default=st.none() | st.just(999),
)
def test_every_luminaire_gets_the_highest_priority_calendar_of_its_groups(
    offers: dict[int, list[GroupCalendar]], luminaires: set[int], default: int | None
) -> None:
    assigned = assign_calendars(luminaires, offers, default)
    for luminaire in luminaires:
        mine = offers.get(luminaire, [])
        if not mine:  # in no group with a calendar: the site default, or none at all
            assert assigned.get(luminaire) == default
            continue
        top = max(c.priority for c in mine)
        lowest = min(c.group_id for c in mine if c.priority == top)
        [winner] = [c for c in mine if c.group_id == lowest]
        assert assigned[luminaire] == winner.calendar_id
        # no group of the luminaire has a higher priority than the one that drives it
        assert all(c.priority <= winner.priority for c in mine)
        assert governing_calendar(mine, default) == assigned[luminaire]
    assert set(assigned) <= luminaires
    assert None not in assigned.values()
