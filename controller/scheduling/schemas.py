"""API/data models for programs and calendars, and their conversion to the pure core.

The pure types live in :mod:`schedules`; these models are what clients send and get.
Conversion collects *every* problem with a field path (``steps.2.level``,
``rules.0.start``) so a 422 names exactly what is wrong.
"""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from controller.core.errors import FieldProblem, InvalidInput
from controller.inventory.schemas import Omittable
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
    Weekday,
)
from schedules.holiday import HolidayKey
from schedules.program import Problem, ProblemCode, Program, Severity, Step, validate_program

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class StepIn(_In):
    """One step: at ``anchor`` + ``offset_min`` minutes, set ``level`` % (fade in seconds)."""

    anchor: str = Field(
        description="sunset, sunrise, civil_dusk, civil_dawn, nautical_dusk, nautical_dawn "
        "or a local clock time HH:MM",
        examples=["sunset", "22:00"],
    )
    offset_min: int = Field(0, description="Minutes added to the anchor (may be negative)")
    level: int = Field(description="0..100 %")
    fade_s: float | None = Field(None, description="Fade time handed to the gateway, seconds")


class ProgramCreate(_In):
    name: Name
    description: str | None = Field(default=None, max_length=500)
    steps: list[StepIn]
    default_level: int = Field(0, description="Level before the first step of the night, %")


class ProgramUpdate(_In):
    name: Omittable[Name] = None
    description: str | None = Field(default=None, max_length=500)
    steps: Omittable[list[StepIn]] = None
    default_level: Omittable[int] = None


class ProblemPublic(BaseModel):
    """A warning about a program: it is accepted, but an operator should look."""

    code: str
    message: str
    step: int | None = None
    other_step: int | None = None


class ProgramPublic(_Out):
    id: int
    name: str
    description: str | None
    steps: list[StepIn]
    default_level: int
    builtin: bool
    warnings: list[ProblemPublic] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


_FIELD_OF_CODE = {
    ProblemCode.LEVEL_OUT_OF_RANGE: "level",
    ProblemCode.OFFSET_OUT_OF_RANGE: "offset_min",
    ProblemCode.UNKNOWN_ANCHOR: "anchor",
    ProblemCode.FADE_OUT_OF_RANGE: "fade_s",
}


def _problem_field(problem: Problem) -> str:
    if problem.code is ProblemCode.EMPTY_NAME:
        return "name"
    if problem.code is ProblemCode.DEFAULT_LEVEL_OUT_OF_RANGE:
        return "default_level"
    if problem.step is None:
        return "steps"
    leaf = _FIELD_OF_CODE.get(problem.code)
    return f"steps.{problem.step}" + (f".{leaf}" if leaf else "")


def to_program(name: str, steps: list[StepIn], default_level: int) -> Program:
    """Build the pure program, refusing it with every error named by field."""
    program = Program(
        name=name,
        steps=tuple(Step(s.anchor, s.offset_min, s.level, s.fade_s) for s in steps),
        default_level=default_level,
    )
    errors = [p for p in validate_program(program) if p.severity is Severity.ERROR]
    if errors:
        raise InvalidInput(
            f"program {name!r} is invalid: " + "; ".join(p.message for p in errors),
            [FieldProblem(_problem_field(p), p.message) for p in errors],
        )
    return program


def program_from_row(name: str, steps: list[dict[str, Any]], default_level: int) -> Program:
    """The pure program of a stored row (stored rows were validated on the way in)."""
    return Program(
        name=name,
        steps=tuple(
            Step(s["anchor"], int(s.get("offset_min", 0)), int(s["level"]), s.get("fade_s"))
            for s in steps
        ),
        default_level=default_level,
    )


# --- calendars ----------------------------------------------------------------------------


class RuleKind(StrEnum):
    DATE = "date"
    RANGE = "range"
    ANNUAL = "annual"
    WEEKDAYS = "weekdays"
    HOLIDAY = "holiday"


class RuleIn(_In):
    """One calendar rule; which fields apply depends on ``kind``.

    - ``date``: ``date``
    - ``range``: ``start``, ``end`` as dates (``YYYY-MM-DD``), both included
    - ``annual``: ``start``, ``end`` as ``MM-DD``, every year (may wrap the year end)
    - ``weekdays``: ``days`` (``mon`` .. ``sun``; the night of Friday = ``fri``)
    - ``holiday``: ``holiday`` (omit for any Vietnamese public holiday), ``include_observed``
    """

    kind: RuleKind
    program_id: int = Field(ge=1, le=2**31 - 1)
    date: dt.date | None = None
    start: str | None = None
    end: str | None = None
    days: list[Weekday] | None = None
    holiday: HolidayKey | None = None
    include_observed: bool = False
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None


class CalendarCreate(_In):
    name: Name
    description: str | None = Field(default=None, max_length=500)
    rules: list[RuleIn] = Field(default_factory=list)
    default_program_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class CalendarUpdate(_In):
    name: Omittable[Name] = None
    description: str | None = Field(default=None, max_length=500)
    rules: Omittable[list[RuleIn]] = None
    default_program_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class CalendarPublic(_Out):
    id: int
    name: str
    description: str | None
    rules: list[RuleIn]
    default_program_id: int | None
    created_at: datetime
    updated_at: datetime


def _need(value: Any, field: str, problems: list[FieldProblem], what: str) -> Any:
    if value is None:
        problems.append(FieldProblem(field, f"required for this rule kind ({what})"))
    return value


def _match(rule: RuleIn, prefix: str, problems: list[FieldProblem]) -> Match | None:
    try:
        if rule.kind is RuleKind.DATE:
            day = _need(rule.date, f"{prefix}.date", problems, "date")
            return None if day is None else OnDate(day)
        if rule.kind is RuleKind.RANGE:
            start = _need(rule.start, f"{prefix}.start", problems, "YYYY-MM-DD")
            end = _need(rule.end, f"{prefix}.end", problems, "YYYY-MM-DD")
            if start is None or end is None:
                return None
            try:
                first, last = date.fromisoformat(start), date.fromisoformat(end)
            except ValueError:
                problems.append(FieldProblem(f"{prefix}.start", "start and end must be YYYY-MM-DD"))
                return None
            return DateRange(first, last)
        if rule.kind is RuleKind.ANNUAL:
            start = _need(rule.start, f"{prefix}.start", problems, "MM-DD")
            end = _need(rule.end, f"{prefix}.end", problems, "MM-DD")
            if start is None or end is None:
                return None
            return AnnualRange(MonthDay.parse(start), MonthDay.parse(end))
        if rule.kind is RuleKind.WEEKDAYS:
            days = _need(rule.days, f"{prefix}.days", problems, "days")
            return None if days is None else OnWeekdays(frozenset(days))
        return OnHoliday(rule.holiday, rule.include_observed)
    except ValueError as exc:
        problems.append(FieldProblem(prefix, str(exc)))
        return None


def to_calendar(rules: list[RuleIn], default_program_id: int | None) -> Calendar:
    """Build the pure calendar (programs referenced by id as text), naming every bad field."""
    problems: list[FieldProblem] = []
    built: list[Rule] = []
    for index, rule in enumerate(rules):
        prefix = f"rules.{index}"
        match = _match(rule, prefix, problems)
        if match is None:
            continue
        try:
            built.append(Rule(match, str(rule.program_id), rule.valid_from, rule.valid_until))
        except ValueError as exc:
            problems.append(FieldProblem(f"{prefix}.valid_until", str(exc)))
    if problems:
        raise InvalidInput(
            "calendar is invalid: " + "; ".join(f"{p.field}: {p.message}" for p in problems),
            problems,
        )
    return Calendar(
        rules=tuple(built),
        default_program=None if default_program_id is None else str(default_program_id),
    )
