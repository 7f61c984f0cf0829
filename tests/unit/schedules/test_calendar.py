"""Calendars: rule kinds, first match wins, validity, holidays, references."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.builtin import BUILTIN_PROGRAMS
from schedules.calendar import (
    AnnualRange,
    Calendar,
    DateRange,
    Match,
    MonthDay,
    OnDate,
    OnHoliday,
    OnWeekdays,
    Rule,
    Selection,
    SelectionKind,
    Weekday,
    select_program,
    validate_calendar,
)
from schedules.holiday import HolidayKey

W = Weekday


def nights(*years: int) -> list[date]:
    days = []
    for year in years:
        day = date(year, 1, 1)
        while day.year == year:
            days.append(day)
            day += timedelta(days=1)
    return days


def span(first: date, last: date) -> set[date]:
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}


def matched(match: Match) -> set[date]:
    return {night for night in nights(2026, 2027) if match.matches(night)}


# Expected sets are written out by hand (calendar knowledge), not computed by the code.
MATCH_CASES: list[tuple[str, Match, set[date]]] = [
    ("one date", OnDate(date(2026, 9, 2)), {date(2026, 9, 2)}),
    (
        "date range",
        DateRange(date(2026, 12, 30), date(2027, 1, 2)),
        {date(2026, 12, 30), date(2026, 12, 31), date(2027, 1, 1), date(2027, 1, 2)},
    ),
    (
        "annual range wrapping the year end",
        AnnualRange(MonthDay(12, 20), MonthDay(1, 5)),
        span(date(2026, 1, 1), date(2026, 1, 5))
        | span(date(2026, 12, 20), date(2027, 1, 5))
        | span(date(2027, 12, 20), date(2027, 12, 31)),
    ),
    (
        "annual range inside a year",
        AnnualRange(MonthDay(4, 29), MonthDay(5, 2)),
        span(date(2026, 4, 29), date(2026, 5, 2)) | span(date(2027, 4, 29), date(2027, 5, 2)),
    ),
    (
        "29 February does not exist in 2026 or 2027",
        AnnualRange(MonthDay(2, 29), MonthDay(3, 1)),
        {date(2026, 3, 1), date(2027, 3, 1)},
    ),
    (
        "one-day annual range",
        AnnualRange(MonthDay(9, 2), MonthDay(9, 2)),
        {date(2026, 9, 2), date(2027, 9, 2)},
    ),
    # 1 January 2026 is a Thursday, 1 January 2027 a Friday
    (
        "Friday and Saturday nights",
        OnWeekdays(frozenset({W.FRI, W.SAT})),
        {date(2026, 1, 2) + timedelta(weeks=w) for w in range(52)}
        | {date(2026, 1, 3) + timedelta(weeks=w) for w in range(52)}
        | {date(2027, 1, 1) + timedelta(weeks=w) for w in range(53)}
        | {date(2027, 1, 2) + timedelta(weeks=w) for w in range(52)},
    ),
    (
        "Tết nights",
        OnHoliday(HolidayKey.TET),
        span(date(2026, 2, 16), date(2026, 2, 20)) | span(date(2027, 2, 5), date(2027, 2, 9)),
    ),
    (
        "Tết nights with bridge days",
        OnHoliday(HolidayKey.TET, include_observed=True),
        span(date(2026, 2, 16), date(2026, 2, 20)) | span(date(2027, 2, 4), date(2027, 2, 10)),
    ),
    ("Giỗ Tổ", OnHoliday(HolidayKey.HUNG_KINGS), {date(2026, 4, 26), date(2027, 4, 16)}),
    (
        "Giỗ Tổ and its day in lieu",
        OnHoliday(HolidayKey.HUNG_KINGS, include_observed=True),
        {date(2026, 4, 26), date(2026, 4, 27), date(2027, 4, 16)},
    ),
    ("30 April", OnHoliday(HolidayKey.REUNIFICATION), {date(2026, 4, 30), date(2027, 4, 30)}),
    ("1 May", OnHoliday(HolidayKey.LABOUR), {date(2026, 5, 1), date(2027, 5, 1)}),
    (
        "National Day (two days since 2021)",
        OnHoliday(HolidayKey.NATIONAL),
        {date(2026, 9, 1), date(2026, 9, 2), date(2027, 9, 2), date(2027, 9, 3)},
    ),
    ("Tết Dương lịch", OnHoliday(HolidayKey.NEW_YEAR), {date(2026, 1, 1), date(2027, 1, 1)}),
    (
        "any public holiday",
        OnHoliday(),
        {date(2026, 1, 1), date(2027, 1, 1)}
        | span(date(2026, 2, 16), date(2026, 2, 20))
        | span(date(2027, 2, 5), date(2027, 2, 9))
        | {date(2026, 4, 26), date(2027, 4, 16)}
        | {date(2026, 4, 30), date(2026, 5, 1), date(2027, 4, 30), date(2027, 5, 1)}
        | {date(2026, 9, 1), date(2026, 9, 2), date(2027, 9, 2), date(2027, 9, 3)}
        | {date(2026, 11, 24), date(2027, 11, 24)},
    ),
    (
        "any day off, observed included",
        OnHoliday(include_observed=True),
        {date(2026, 1, 1), date(2027, 1, 1)}
        | span(date(2026, 2, 16), date(2026, 2, 20))
        | span(date(2027, 2, 4), date(2027, 2, 10))
        | {date(2026, 4, 26), date(2026, 4, 27), date(2027, 4, 16)}
        | {date(2026, 4, 30), date(2026, 5, 1), date(2027, 4, 30), date(2027, 5, 1)}
        | {date(2027, 5, 3), date(2026, 8, 31)}
        | {date(2026, 9, 1), date(2026, 9, 2), date(2027, 9, 2), date(2027, 9, 3)}
        | {date(2026, 11, 24), date(2027, 11, 24)},
    ),
]


@pytest.mark.parametrize(
    ("match", "expected"),
    [case[1:] for case in MATCH_CASES],
    ids=[case[0] for case in MATCH_CASES],
)
def test_rule_kinds_over_2026_and_2027(match: Match, expected: set[date]) -> None:
    assert matched(match) == expected


def test_weekdays_follow_the_calendar() -> None:
    assert Weekday.of(date(2026, 1, 1)) is W.THU
    assert Weekday.of(date(2027, 2, 6)) is W.SAT  # Tết 2027 falls on a Saturday
    assert Weekday.of(date(2026, 2, 17)) is W.TUE  # Tết 2026 on a Tuesday
    assert OnWeekdays(["sun"]).days == frozenset({W.SUN})  # type: ignore[arg-type]


def test_leap_day_is_matched_in_leap_years() -> None:
    leap = AnnualRange(MonthDay(2, 29), MonthDay(2, 29))
    assert leap.matches(date(2028, 2, 29))
    assert not leap.matches(date(2028, 2, 28)) and not leap.matches(date(2028, 3, 1))


# --- first match wins, validity, default -----------------------------------------------------

CALENDAR = Calendar(
    rules=(
        Rule(OnHoliday(HolidayKey.TET), "holiday"),
        Rule(OnHoliday(), "full night"),
        Rule(OnWeekdays(frozenset({W.SAT})), "full night", valid_from=date(2026, 6, 1)),
        Rule(
            AnnualRange(MonthDay(12, 24), MonthDay(12, 25)),
            "holiday",
            valid_until=date(2026, 12, 31),
        ),
    ),
    default_program="Đông Hà standard",
)


@pytest.mark.parametrize(
    ("night", "expected"),
    [
        (date(2026, 2, 17), Selection(SelectionKind.RULE, "holiday", 0)),  # Tết, a Tuesday
        (date(2027, 2, 6), Selection(SelectionKind.RULE, "holiday", 0)),  # Tết, a Saturday
        (date(2026, 4, 30), Selection(SelectionKind.RULE, "full night", 1)),
        (date(2026, 5, 30), Selection(SelectionKind.DEFAULT_PROGRAM, "Đông Hà standard")),
        (date(2026, 6, 6), Selection(SelectionKind.RULE, "full night", 2)),  # first Sat valid
        (date(2026, 12, 24), Selection(SelectionKind.RULE, "holiday", 3)),
        (date(2026, 12, 26), Selection(SelectionKind.RULE, "full night", 2)),  # a Saturday
        (date(2027, 12, 24), Selection(SelectionKind.DEFAULT_PROGRAM, "Đông Hà standard")),
        (date(2027, 12, 25), Selection(SelectionKind.RULE, "full night", 2)),  # Sat, rule 3 over
    ],
)
def test_first_matching_valid_rule_wins(night: date, expected: Selection) -> None:
    assert select_program(CALENDAR, night) == expected


def test_validity_bounds_are_inclusive() -> None:
    rule = Rule(OnWeekdays(frozenset(Weekday)), "x", date(2026, 3, 1), date(2026, 3, 31))
    assert [rule.applies(d) for d in (date(2026, 2, 28), date(2026, 3, 1))] == [False, True]
    assert [rule.applies(d) for d in (date(2026, 3, 31), date(2026, 4, 1))] == [True, False]


def test_calendar_without_default_selects_nothing_on_other_nights() -> None:
    calendar = Calendar((Rule(OnDate(date(2026, 9, 2)), "7"),))
    assert select_program(calendar, date(2026, 9, 2)) == Selection(SelectionKind.RULE, "7", 0)
    assert select_program(calendar, date(2026, 9, 3)) == Selection(SelectionKind.NONE)
    assert select_program(Calendar(), date(2026, 9, 3)) == Selection(SelectionKind.NONE)


@settings(max_examples=100, deadline=None)
@given(
    night=st.dates(date(2020, 1, 1), date(2035, 12, 31)),
    kinds=st.lists(st.sampled_from(list(Weekday)), min_size=1, unique=True),
)
def test_selection_is_the_first_rule_that_applies(night: date, kinds: list[Weekday]) -> None:
    rules = tuple(Rule(OnWeekdays(frozenset(kinds[: i + 1])), f"p{i}") for i in range(len(kinds)))
    calendar = Calendar(rules, default_program="fallback")
    selection = select_program(calendar, night)
    applying = [i for i, rule in enumerate(rules) if rule.applies(night)]
    if applying:
        assert selection.rule_index == applying[0]
        assert selection.program == f"p{applying[0]}"
    else:
        assert selection == Selection(SelectionKind.DEFAULT_PROGRAM, "fallback")


# --- references and construction --------------------------------------------------------------


def test_validate_calendar_names_unknown_programs() -> None:
    calendar = Calendar(
        (Rule(OnHoliday(), "holiday"), Rule(OnDate(date(2026, 1, 1)), "fireworks")),
        default_program="nightly",
    )
    problems = validate_calendar(calendar, BUILTIN_PROGRAMS)
    assert [(p.rule, p.program) for p in problems] == [(1, "fireworks"), (None, "nightly")]
    assert "rule 1" in problems[0].message and "default" in problems[1].message
    assert validate_calendar(CALENDAR, BUILTIN_PROGRAMS) == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12-20", MonthDay(12, 20)), ("01-05", MonthDay(1, 5)), ("02-29", MonthDay(2, 29))],
)
def test_month_day_parse(text: str, expected: MonthDay) -> None:
    assert MonthDay.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize("text", ["2-29", "13-01", "02-30", "04-31", "00-10", "12/20", ""])
def test_month_day_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"MM-DD|no such day"):
        MonthDay.parse(text)


@pytest.mark.parametrize(
    "build",
    [
        lambda: DateRange(date(2026, 5, 2), date(2026, 5, 1)),
        lambda: OnWeekdays(frozenset()),
        lambda: Rule(OnHoliday(), "x", valid_from=date(2026, 2, 1), valid_until=date(2026, 1, 1)),
        lambda: MonthDay(2, 30),
    ],
)
def test_impossible_rules_are_refused(build: object) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        build()  # type: ignore[operator]
