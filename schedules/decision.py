"""What level a luminaire should have at an instant, and why: the target and its source.

Precedence, highest first:

1. an **override** active at the instant (``start <= at < end``); of several, the newest
   by ``created_at`` wins, then the highest id;
2. the program the **calendar** assigns to the night containing the instant (first
   matching rule, else the calendar's default program), at the level of its latest step
   at or before the instant, or the program's default level before its first step;
3. the caller's **default level** (no calendar, or a calendar with no match and no
   default program).

:func:`timeline` lists every change of that answer over one night, override boundaries
included, so an operator sees tonight before it happens. :func:`pick_calendar` chooses
which calendar governs a luminaire that belongs to several groups
(:func:`governing_calendar`, :func:`assign_calendars`: the one rule the controller, the
timelines and the API all use).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from schedules.calendar import Calendar, ProgramRef, SelectionKind, select_program
from schedules.errors import UnknownProgram
from schedules.program import (
    MAX_LEVEL,
    MIN_LEVEL,
    Program,
    ResolvedStep,
    level_in_night,
    night_bounds,
    night_of,
    resolve_night,
)
from schedules.sun import Site


class Source(StrEnum):
    """Why the target is what it is (same values as ``controller.core.values.CommandSource``)."""

    DEFAULT = "default"
    PROGRAM = "program"
    OVERRIDE = "override"


@dataclass(frozen=True, slots=True)
class Override:
    """A manual level for ``start <= t < end`` (aware instants), e.g. for an event.

    The caller passes only the overrides that target the luminaire in question. Among
    overlapping ones the newest (``created_at``, then ``id``) wins.
    """

    id: int
    level: int
    start: datetime
    end: datetime
    created_at: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end", "created_at"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"override {name} must be timezone-aware")
        if not self.start < self.end:
            raise ValueError(f"override ends ({self.end}) at or before it starts ({self.start})")
        if not MIN_LEVEL <= self.level <= MAX_LEVEL:
            raise ValueError(f"override level {self.level} % is outside 0..100")

    def is_active(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class Decision:
    """The target level at an instant and where it comes from.

    ``night`` is the night the instant belongs to. With ``source == "program"``:
    ``program`` is the program's name, ``step_index`` the step in effect (``None`` before
    the first step, at the program's default level) and ``rule_index`` the calendar rule
    that chose the program (``None``: the calendar's default program). With
    ``source == "override"``: ``override_id``. With ``source == "default"``: nothing else.
    """

    level: int
    source: Source
    night: date
    program: str | None = None
    step_index: int | None = None
    rule_index: int | None = None
    override_id: int | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """From ``at`` (aware, site zone) on, the target is ``decision`` until the next change."""

    at: datetime
    decision: Decision

    @property
    def level(self) -> int:
        return self.decision.level

    @property
    def source(self) -> Source:
        return self.decision.source


@dataclass(frozen=True, slots=True)
class GroupCalendar:
    """A calendar (by id) offered by one of the groups a luminaire belongs to."""

    group_id: int
    priority: int
    calendar_id: int


def decide(
    at: datetime,
    *,
    site: Site,
    calendar: Calendar | None,
    programs: Mapping[ProgramRef, Program],
    overrides: Iterable[Override] = (),
    default_level: int = 0,
) -> Decision:
    """The target level at ``at`` (aware) and its source; see the module docstring.

    Raises :class:`~schedules.errors.UnknownProgram` if the calendar names a program not
    in ``programs``, :class:`~schedules.errors.InvalidProgram` if that program is invalid.
    """
    night = night_of(site, at)
    plan = _plan_night(night, site, calendar, programs, default_level)
    return plan.decide(at, tuple(overrides))


def timeline(
    night: date,
    *,
    site: Site,
    calendar: Calendar | None,
    programs: Mapping[ProgramRef, Program],
    overrides: Iterable[Override] = (),
    default_level: int = 0,
) -> tuple[Change, ...]:
    """Every change of :func:`decide`'s answer during night ``night``, in order.

    The first change is at the night's start (12:00 local); each further one where a
    program step takes effect or an override starts or ends, and only where the decision
    actually changes. Between two changes (and from the last one to the night's end,
    12:00 the next day) :func:`decide` gives the earlier change's decision.
    """
    plan = _plan_night(night, site, calendar, programs, default_level)
    active = tuple(overrides)
    boundaries = {plan.start}
    boundaries.update(step.at for step in plan.steps)
    for override in active:
        for edge in (override.start, override.end):
            if plan.start < edge < plan.end:
                boundaries.add(edge.astimezone(site.tzinfo))
    changes: list[Change] = []
    for at in sorted(boundaries):
        decision = plan.decide(at, active)
        if not changes or changes[-1].decision != decision:
            changes.append(Change(at.astimezone(site.tzinfo), decision))
    return tuple(changes)


def pick_calendar(candidates: Iterable[GroupCalendar]) -> GroupCalendar | None:
    """The calendar that governs a luminaire in several groups, or ``None`` if none does.

    The highest ``priority`` wins; among equal priorities the lowest ``group_id``.
    """
    best: GroupCalendar | None = None
    for candidate in candidates:
        if best is None or (-candidate.priority, candidate.group_id) < (
            -best.priority,
            best.group_id,
        ):
            best = candidate
    return best


def governing_calendar(candidates: Iterable[GroupCalendar], default: int | None) -> int | None:
    """The id of the calendar that drives a luminaire whose groups offer ``candidates``.

    :func:`pick_calendar`'s winner; the site's ``default`` calendar when no group of the
    luminaire has a calendar; ``None`` (the default level applies) when there is none either.
    """
    picked = pick_calendar(candidates)
    return picked.calendar_id if picked is not None else default


def assign_calendars(
    luminaires: Iterable[int],
    offers: Mapping[int, Iterable[GroupCalendar]],
    default: int | None,
) -> dict[int, int]:
    """luminaire id -> its governing calendar id (:func:`governing_calendar`).

    ``offers`` maps a luminaire to the calendars of the groups it belongs to (absent: in
    no group with a calendar). Luminaires that end up with no calendar are left out.
    """
    out: dict[int, int] = {}
    for luminaire in luminaires:
        calendar_id = governing_calendar(offers.get(luminaire, ()), default)
        if calendar_id is not None:
            out[luminaire] = calendar_id
    return out


@dataclass(frozen=True, slots=True)
class _NightPlan:
    """One night's calendar choice and resolved steps, computed once per night."""

    night: date
    start: datetime
    end: datetime
    default_level: int
    program: Program | None
    rule_index: int | None
    steps: Sequence[ResolvedStep]

    def decide(self, at: datetime, overrides: Sequence[Override]) -> Decision:
        active = [override for override in overrides if override.is_active(at)]
        if active:
            winner = max(active, key=lambda o: (o.created_at, o.id))
            return Decision(winner.level, Source.OVERRIDE, self.night, override_id=winner.id)
        if self.program is None:
            return Decision(self.default_level, Source.DEFAULT, self.night)
        level, step_index = level_in_night(self.steps, self.program.default_level, at)
        return Decision(
            level,
            Source.PROGRAM,
            self.night,
            program=self.program.name,
            step_index=step_index,
            rule_index=self.rule_index,
        )


def _plan_night(
    night: date,
    site: Site,
    calendar: Calendar | None,
    programs: Mapping[ProgramRef, Program],
    default_level: int,
) -> _NightPlan:
    if not MIN_LEVEL <= default_level <= MAX_LEVEL:
        raise ValueError(f"default level {default_level} % is outside 0..100")
    start, end = night_bounds(site, night)
    program: Program | None = None
    rule_index: int | None = None
    if calendar is not None:
        selection = select_program(calendar, night)
        if selection.kind is not SelectionKind.NONE and selection.program is not None:
            if selection.program not in programs:
                raise UnknownProgram(selection.program)
            program = programs[selection.program]
            rule_index = selection.rule_index
    steps = resolve_night(program, site, night) if program is not None else ()
    return _NightPlan(night, start, end, default_level, program, rule_index, steps)
