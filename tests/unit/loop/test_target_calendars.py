"""The calendar that drives a light: luminaires in several groups, targets per calendar.

The controller computes one decision per (calendar, overrides) and shares it between the
luminaires that have the same; these properties check that this gives every luminaire what
a computation for that luminaire alone gives, with the calendar its groups choose.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config.settings import SiteSettings
from controller.core.values import Address
from controller.loop.targets import ActiveOverride, LuminaireInfo, TargetBook, to_target
from controller.scheduling.data import ScheduleBook
from schedules.builtin import BUILTIN_PROGRAMS
from schedules.calendar import Calendar, OnWeekdays, Rule, Weekday
from schedules.decision import GroupCalendar, Override, assign_calendars, decide, pick_calendar

SITE = SiteSettings().to_site()
T0 = datetime(2026, 11, 28, tzinfo=UTC)
PROGRAMS = dict(BUILTIN_PROGRAMS)
CALENDARS = {
    1: Calendar(default_program="Đông Hà standard"),
    2: Calendar(default_program="full night"),
    3: Calendar((Rule(OnWeekdays(frozenset({Weekday.SAT})), "holiday"),)),  # else default level
}
LUMINAIRES = range(1, 9)


@st.composite
def fleets(draw: st.DrawFn) -> tuple[dict[int, list[GroupCalendar]], int | None]:
    """Groups with calendars and priorities, luminaires in any number of them, a default."""
    groups = draw(
        st.lists(
            st.builds(
                GroupCalendar,
                st.integers(1, 20),
                st.integers(-2, 2),
                st.sampled_from(sorted(CALENDARS)),
            ),
            max_size=6,
            unique_by=lambda g: g.group_id,
        )
    )
    offers: dict[int, list[GroupCalendar]] = {}
    for lid in LUMINAIRES:
        mine = draw(st.lists(st.sampled_from(groups), unique=True)) if groups else []
        if mine:
            offers[lid] = mine
    default = draw(st.sampled_from([None, *CALENDARS]))
    return offers, default


def overrides_for(draw: Callable[[st.SearchStrategy[Any]], Any]) -> list[ActiveOverride]:
    """Up to three overrides over three days, for all luminaires or some."""
    found = []
    for oid in range(1, draw(st.integers(0, 3)) + 1):
        start = T0 + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
        end = start + timedelta(minutes=draw(st.integers(1, 600)))
        targets = draw(st.none() | st.frozensets(st.sampled_from(list(LUMINAIRES)), min_size=1))
        level = draw(st.integers(0, 100))
        found.append(ActiveOverride(Override(oid, level, start, end, T0), targets))
    return found


@settings(max_examples=60, deadline=None)
@given(fleet=fleets(), data=st.data(), offset_min=st.integers(0, 3 * 24 * 60))
def test_targets_per_calendar_agree_with_each_luminaire_alone(
    fleet: tuple[dict[int, list[GroupCalendar]], int | None], data: st.DataObject, offset_min: int
) -> None:
    offers, default = fleet
    overrides = overrides_for(data.draw)
    book = TargetBook(
        site=SITE,
        default_level=0,
        book=ScheduleBook(PROGRAMS, CALENDARS, default),
        luminaires={
            i: LuminaireInfo(i, f"L{i}", 1, Address(i), "Phường 1", "Lê Duẩn", 100.0)
            for i in LUMINAIRES
        },
        gateways={},
        calendar_of=assign_calendars(LUMINAIRES, offers, default),
        overrides=overrides,
    )
    at = T0 + timedelta(minutes=offset_min)
    targets = book.targets(at)
    for lid in LUMINAIRES:
        # alone: its own groups' best calendar, else the default; its own overrides
        picked = pick_calendar(offers.get(lid, ()))
        calendar_id = picked.calendar_id if picked is not None else default
        mine = [o.override for o in overrides if o.luminaires is None or lid in o.luminaires]
        alone = decide(
            at,
            site=SITE,
            calendar=CALENDARS[calendar_id] if calendar_id is not None else None,
            programs=PROGRAMS,
            overrides=mine,
            default_level=0,
        )
        assert targets[lid] == to_target(alone, PROGRAMS), lid


@settings(max_examples=60, deadline=None)
@given(fleet=fleets())
def test_the_driving_calendar_has_the_highest_priority_of_the_luminaires_groups(
    fleet: tuple[dict[int, list[GroupCalendar]], int | None],
) -> None:
    offers, default = fleet
    calendar_of = assign_calendars(LUMINAIRES, offers, default)
    for lid in LUMINAIRES:
        mine = offers.get(lid, [])
        if not mine:
            assert calendar_of.get(lid) == default
            continue
        top = max(g.priority for g in mine)
        winner = min(g.group_id for g in mine if g.priority == top)
        assert calendar_of[lid] == next(g.calendar_id for g in mine if g.group_id == winner)
