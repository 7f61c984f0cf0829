"""Calendars: which program runs on which night.

A calendar is an ordered list of rules plus a default program. For night ``D`` (the
night whose evening is on date ``D``, see :mod:`schedules.program`) the first rule that
matches ``D`` and is valid on ``D`` wins; if none does, the default program runs; if
there is none either, the caller's default level applies. So a rule for 30 April matches
the night from the evening of 30 April to the morning of 1 May, and a Tết rule matches
the night of Giao thừa (the eve), which holds the turn of the lunar year.

Programs are referred to by :data:`ProgramRef` (a name, or a database id as a string); the
calendar only carries references, and evaluation takes a mapping from reference to program.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from schedules.holiday import HolidayKey, holidays_on
from schedules.program import Program

ProgramRef = str
"""How a calendar names a program: its name, or its database id written as a string.

One type on purpose: ``Mapping`` is invariant in its key, so a ``str | int`` reference
would make ``Mapping[str, Program]`` (e.g. ``BUILTIN_PROGRAMS``) unusable under mypy."""

_MONTH_DAY = re.compile(r"(\d{2})-(\d{2})")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # leap year: 29 Feb exists


class Weekday(StrEnum):
    """Days of the week, Monday first (``date.weekday()`` order)."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @classmethod
    def of(cls, day: date) -> Weekday:
        return list(cls)[day.weekday()]


@dataclass(frozen=True, slots=True, order=True)
class MonthDay:
    """A day of the year without a year (``MM-DD``); 02-29 is allowed and only exists in
    leap years."""

    month: int
    day: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1 <= self.day <= _DAYS_IN_MONTH[self.month - 1]:
            raise ValueError(f"no such day of the year: {self.month:02d}-{self.day:02d}")

    @classmethod
    def parse(cls, text: str) -> MonthDay:
        """``"12-20"`` -> ``MonthDay(12, 20)``; ``ValueError`` for anything else."""
        match = _MONTH_DAY.fullmatch(text)
        if match is None:
            raise ValueError(f"expected MM-DD, got {text!r}")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, day: date) -> MonthDay:
        return cls(day.month, day.day)

    def __str__(self) -> str:
        return f"{self.month:02d}-{self.day:02d}"


@dataclass(frozen=True, slots=True)
class OnDate:
    """Matches one night: the night of ``day``."""

    day: date

    def matches(self, night: date) -> bool:
        return night == self.day


@dataclass(frozen=True, slots=True)
class DateRange:
    """Matches the nights ``start`` to ``end``, both included (``start <= end``)."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError(f"date range ends ({self.end}) before it starts ({self.start})")

    def matches(self, night: date) -> bool:
        return self.start <= night <= self.end


@dataclass(frozen=True, slots=True)
class AnnualRange:
    """Matches the same days every year, ``start`` to ``end`` (``MM-DD``) both included.

    When ``start`` is after ``end`` the range wraps the year end: 12-20..01-05 matches
    20 December to 5 January. 02-29 as a bound only exists in leap years: 02-29..03-01
    matches just 1 March in other years.
    """

    start: MonthDay
    end: MonthDay

    def matches(self, night: date) -> bool:
        day = MonthDay.of(night)
        if self.start <= self.end:
            return self.start <= day <= self.end
        return day >= self.start or day <= self.end


@dataclass(frozen=True, slots=True)
class OnWeekdays:
    """Matches nights whose evening falls on one of ``days`` (Friday night = ``fri``)."""

    days: frozenset[Weekday]

    def __post_init__(self) -> None:
        if not isinstance(self.days, frozenset):
            object.__setattr__(self, "days", frozenset(Weekday(day) for day in self.days))
        if not self.days:
            raise ValueError("a weekday rule needs at least one weekday")

    def matches(self, night: date) -> bool:
        return Weekday.of(night) in self.days


@dataclass(frozen=True, slots=True)
class OnHoliday:
    """Matches Vietnamese public holidays: any (``holiday=None``) or one kind.

    Observed / in-lieu / bridge days (see :mod:`schedules.holiday`) match only with
    ``include_observed=True``.
    """

    holiday: HolidayKey | None = None
    include_observed: bool = False

    def matches(self, night: date) -> bool:
        return any(
            (self.holiday is None or found.key is self.holiday)
            and (self.include_observed or not found.observed)
            for found in holidays_on(night)
        )


Match = OnDate | DateRange | AnnualRange | OnWeekdays | OnHoliday
"""The kinds of rule condition."""


@dataclass(frozen=True, slots=True)
class Rule:
    """Run ``program`` on the nights ``match`` selects, between ``valid_from`` and
    ``valid_until`` (nights, both included; ``None`` = unbounded)."""

    match: Match
    program: ProgramRef
    valid_from: date | None = None
    valid_until: date | None = None

    def __post_init__(self) -> None:
        if (
            self.valid_from is not None
            and self.valid_until is not None
            and self.valid_from > self.valid_until
        ):
            raise ValueError(
                f"rule is valid until {self.valid_until}, before it is valid from {self.valid_from}"
            )

    def applies(self, night: date) -> bool:
        """Whether this rule selects ``night``: within its validity, and matching."""
        if self.valid_from is not None and night < self.valid_from:
            return False
        if self.valid_until is not None and night > self.valid_until:
            return False
        return self.match.matches(night)


@dataclass(frozen=True, slots=True)
class Calendar:
    """Ordered rules (first match wins) and the program for nights no rule matches."""

    rules: tuple[Rule, ...] = ()
    default_program: ProgramRef | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rules, tuple):
            object.__setattr__(self, "rules", tuple(self.rules))


class SelectionKind(StrEnum):
    RULE = "rule"
    DEFAULT_PROGRAM = "default_program"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Selection:
    """What a calendar picks for a night: a program reference and why.

    ``rule_index`` is the winning rule's index (``kind == "rule"``); ``program`` is
    ``None`` only when ``kind == "none"`` (no rule matched and there is no default).
    """

    kind: SelectionKind
    program: ProgramRef | None = None
    rule_index: int | None = None


@dataclass(frozen=True, slots=True)
class CalendarProblem:
    """A calendar refers to a program the caller does not have (``rule`` None: default)."""

    rule: int | None
    program: ProgramRef
    message: str


def select_program(calendar: Calendar, night: date) -> Selection:
    """The program reference ``calendar`` assigns to night ``night`` (first match wins)."""
    for index, rule in enumerate(calendar.rules):
        if rule.applies(night):
            return Selection(SelectionKind.RULE, rule.program, index)
    if calendar.default_program is not None:
        return Selection(SelectionKind.DEFAULT_PROGRAM, calendar.default_program)
    return Selection(SelectionKind.NONE)


def validate_calendar(
    calendar: Calendar, programs: Mapping[ProgramRef, Program]
) -> tuple[CalendarProblem, ...]:
    """Every program reference in ``calendar`` that ``programs`` does not hold."""
    problems: list[CalendarProblem] = []
    refs: Iterable[tuple[int | None, ProgramRef | None]] = [
        *((index, rule.program) for index, rule in enumerate(calendar.rules)),
        (None, calendar.default_program),
    ]
    for index, ref in refs:
        if ref is not None and ref not in programs:
            where = "the default program" if index is None else f"rule {index}"
            problems.append(
                CalendarProblem(index, ref, f"{where} refers to unknown program {ref!r}")
            )
    return tuple(problems)
