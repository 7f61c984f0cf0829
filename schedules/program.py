"""Night programs: "at ANCHOR + offset minutes, set level L %", evaluated noon to noon.

A **night** is named by the date of its evening: night ``D`` runs from ``D`` 12:00 local
time to ``D+1`` 12:00 local time (half-open, so 12:00 of ``D+1`` already belongs to night
``D+1``). Within night ``D``:

- dusk anchors (``sunset``, ``civil_dusk``, ``nautical_dusk``) are the events of date ``D``;
- dawn anchors (``sunrise``, ``civil_dawn``, ``nautical_dawn``) are those of date ``D+1``;
- a clock anchor ``HH:MM`` at or after 12:00 is on ``D``, one before 12:00 on ``D+1``.

The offset (minutes, may be negative) is added in absolute time. A step that resolves
before the night's start is moved to the start (``clamped``); one at or after the night's
end is dropped: it would take effect in the next night, which has its own steps.

The level at an instant is the level of the latest step at or before it, steps ordered by
(resolved instant, step index), so of two steps at the same instant the later-listed one
wins. Before the first step the program's ``default_level`` applies (0 unless set).

**Sun anchors, precisely, and what happens when an event is missing.** Each sun event is
the sun's centre crossing an elevation (:func:`schedules.sun.event_elevation_deg`). A dusk
anchor is the first time during the night the sun goes *down* through that elevation; a
dawn anchor the last time it comes *up* through it. Away from the polar circles that is
simply date ``D``'s dusk and date ``D+1``'s dawn. When there is no such crossing:

- dusk, and the sun is already at or below the elevation when the night starts (polar
  night, or a sun that set before noon): the step applies from the night's start, its
  offset ignored: it is already that dark;
- dusk, and the sun stays above the elevation all night (light nights, midnight sun): the
  next brighter dusk event stands in (nautical dusk -> civil dusk -> sunset), so lights
  come on earlier rather than not at all; if even the sun never sets, the step is skipped;
- dawn, and the sun is still below the elevation when the night ends (polar night): the
  step is skipped, dawn comes after this night, and the light keeps its level into the
  next night;
- dawn, and the sun stays above the elevation all night: the next brighter dawn event
  stands in (nautical dawn -> civil dawn -> sunrise); if even the sun never sets, the step
  applies from the night's start, its offset ignored: it is light all night.

Clock steps are kept as entered in every season. A polar site should give its polar
seasons their own calendar rules; :func:`check_program_year` warns where fallbacks apply.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from schedules.errors import InvalidProgram
from schedules.sun import (
    Site,
    SunEvent,
    compute_sun_events,
    event_elevation_deg,
    find_crossings,
    sun_elevation_deg,
)

NOON = time(12, 0)
MAX_OFFSET_MIN = 720
"""Largest |offset| in minutes: half a night; more would move a step into another night."""

MIN_LEVEL, MAX_LEVEL = 0, 100

NIGHT_START = "night_start"
"""``ResolvedStep.source`` of a sun step placed at the night's start (see above)."""
SKIPPED = "skipped"

_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a program, as entered: it may be invalid (see :func:`validate_program`).

    ``anchor`` is a :class:`~schedules.sun.SunEvent` value (``"sunset"``, ...) or a local
    clock time ``"HH:MM"`` (24 h, two digits each). ``offset_min`` is added to it in minutes
    (negative = earlier, at most ``MAX_OFFSET_MIN`` either way), ``level`` is 0..100 %.
    ``fade_s`` is the fade time in seconds handed to the gateway with the command; the
    schedule itself switches the target at the step's instant.
    """

    anchor: str
    offset_min: int = 0
    level: int = 100
    fade_s: float | None = None

    def describe(self) -> str:
        """``sunset``, ``sunrise-10``, ``22:00+30``: how operators write the step."""
        if self.offset_min == 0:
            return self.anchor
        return f"{self.anchor}{self.offset_min:+d}"


@dataclass(frozen=True, slots=True)
class Program:
    """A named night profile: steps in any order, plus the level before the first one."""

    name: str
    steps: tuple[Step, ...] = field(default=())
    default_level: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.steps, tuple):  # accept any sequence, store it immutably
            object.__setattr__(self, "steps", tuple(self.steps))


class Severity(StrEnum):
    """An ``error`` makes a program unusable (the API answers 422); a ``warning`` does not."""

    ERROR = "error"
    WARNING = "warning"


class ProblemCode(StrEnum):
    """Stable machine-readable reasons, for the API and the UI."""

    EMPTY_NAME = "empty_name"
    EMPTY_PROGRAM = "empty_program"
    NEVER_ON = "never_on"
    DEFAULT_LEVEL_OUT_OF_RANGE = "default_level_out_of_range"
    LEVEL_OUT_OF_RANGE = "level_out_of_range"
    UNKNOWN_ANCHOR = "unknown_anchor"
    OFFSET_OUT_OF_RANGE = "offset_out_of_range"
    FADE_OUT_OF_RANGE = "fade_out_of_range"
    DUPLICATE_STEP = "duplicate_step"
    ORDER_SWAP = "order_swap"
    OUTSIDE_NIGHT = "outside_night"
    ANCHOR_FALLBACK = "anchor_fallback"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a program.

    ``step`` is the index in ``program.steps`` it is about (``None``: the program as a
    whole); ``other_step`` the step it clashes with (the earlier duplicate, or the step it
    swaps order with). ``message`` is a sentence for people, naming the step(s).
    """

    severity: Severity
    code: ProblemCode
    message: str
    step: int | None = None
    other_step: int | None = None


@dataclass(frozen=True, slots=True)
class ResolvedStep:
    """A step placed in one night.

    ``at`` is aware, in the site's zone, to the second. ``source`` says what it was taken
    from: the anchor's own event, the event it fell back to (``"sunset"`` for a missing
    civil dusk, ...), ``"night_start"`` when the event has no crossing and the step applies
    from the night's start (see the module docstring), or ``"clock"``. ``clamped`` is true
    when the step resolved before the night started and was moved to the start.
    """

    at: datetime
    level: int
    step_index: int
    fade_s: float | None
    source: str
    clamped: bool = False


def parse_anchor(text: str) -> SunEvent | time:
    """``"sunset"`` -> ``SunEvent.SUNSET``; ``"22:00"`` -> ``time(22, 0)``; else ``ValueError``."""
    try:
        return SunEvent(text)
    except ValueError:
        pass
    match = _CLOCK.fullmatch(text)
    if match is None:
        names = ", ".join(event.value for event in SunEvent)
        raise ValueError(f"unknown anchor {text!r}: expected one of {names} or HH:MM")
    return time(int(match[1]), int(match[2]))


def night_of(site: Site, at: datetime) -> date:
    """The night that ``at`` (aware) belongs to: its local date, or the day before if a.m."""
    if at.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    local = at.astimezone(site.tzinfo)
    return local.date() if local.time() >= NOON else local.date() - timedelta(days=1)


def tonight(site: Site, at: datetime) -> date:
    """The night an operator means by "tonight" at ``at`` (aware).

    The night ``at`` belongs to (:func:`night_of`) until the sunrise that ends it; from that
    sunrise on, the coming night (whose evening is today): at 11:24, after a 05:19 sunrise,
    "tonight" is the night that starts this evening, not the one that just ended. On a
    morning without a sunrise (polar night, midnight sun) it changes at noon, with
    :func:`night_of`. For what to *show*; the lights follow :func:`night_of`, whose
    morning steps (e.g. ``sunrise+30``) still apply until noon.
    """
    night = night_of(site, at)
    morning = compute_sun_events(site, night + timedelta(days=1)).sunrise
    if morning is not None and at >= morning:
        return night + timedelta(days=1)
    return night


def step_number(step_index: int) -> int:
    """What people call a program's step: 1 for the first (``step_index`` 0).

    The CLI and the dashboard show step numbers; data (``step_index``, ``steps.N`` in a
    422, the API's ``step``) keeps the 0-based index into ``Program.steps``.
    """
    return step_index + 1


def night_bounds(site: Site, night: date) -> tuple[datetime, datetime]:
    """Start (``night`` 12:00) and end (next day 12:00), local; the end is excluded."""
    tz = site.tzinfo
    return (
        datetime.combine(night, NOON, tzinfo=tz),
        datetime.combine(night + timedelta(days=1), NOON, tzinfo=tz),
    )


def validate_program(program: Program) -> tuple[Problem, ...]:
    """Every error in ``program`` (empty when it is usable). Never raises.

    Checks: a name; at least one step; default level and every step level within 0..100;
    known anchors; offsets within +/-``MAX_OFFSET_MIN``; fade times finite and >= 0; no two
    steps at the same anchor and offset (two clock steps at the same time of night count
    as the same); at least one step that switches the light on (level > 0).
    """
    problems: list[Problem] = []

    def error(
        code: ProblemCode, message: str, step: int | None = None, other: int | None = None
    ) -> None:
        problems.append(Problem(Severity.ERROR, code, message, step, other))

    if not program.name.strip():
        error(ProblemCode.EMPTY_NAME, "the program needs a name")
    if not MIN_LEVEL <= program.default_level <= MAX_LEVEL:
        error(
            ProblemCode.DEFAULT_LEVEL_OUT_OF_RANGE,
            f"default level {program.default_level} % is outside 0..100",
        )
    if not program.steps:
        error(ProblemCode.EMPTY_PROGRAM, "the program has no steps")
        return tuple(problems)

    seen: dict[object, int] = {}
    for index, step in enumerate(program.steps):
        label = f"step {index} ({step.describe()})"
        if not MIN_LEVEL <= step.level <= MAX_LEVEL:
            error(
                ProblemCode.LEVEL_OUT_OF_RANGE,
                f"{label}: level {step.level} % is outside 0..100",
                index,
            )
        if not -MAX_OFFSET_MIN <= step.offset_min <= MAX_OFFSET_MIN:
            error(
                ProblemCode.OFFSET_OUT_OF_RANGE,
                f"{label}: offset {step.offset_min} min is beyond +/-{MAX_OFFSET_MIN} min",
                index,
            )
        if step.fade_s is not None and not (math.isfinite(step.fade_s) and step.fade_s >= 0):
            error(
                ProblemCode.FADE_OUT_OF_RANGE,
                f"{label}: fade {step.fade_s} s must be a finite number of seconds >= 0",
                index,
            )
        try:
            anchor = parse_anchor(step.anchor)
        except ValueError as exc:
            error(ProblemCode.UNKNOWN_ANCHOR, f"step {index}: {exc}", index)
            continue
        key = _identity(anchor, step.offset_min)
        if key in seen:
            first = seen[key]
            error(
                ProblemCode.DUPLICATE_STEP,
                f"{label} is at the same time as step {first} ({program.steps[first].describe()})",
                index,
                first,
            )
        else:
            seen[key] = index

    if not any(step.level > 0 for step in program.steps):
        error(ProblemCode.NEVER_ON, "no step switches the light on (every level is 0 %)")
    return tuple(problems)


def resolve_night(program: Program, site: Site, night: date) -> tuple[ResolvedStep, ...]:
    """Place every step of ``program`` in night ``night`` at ``site``, sorted.

    Sorted by (instant, step index); steps that fall at or after the night's end, or whose
    sun event does not happen in this night (see the module docstring), are left out, and
    those before its start are clamped to it. Raises
    :class:`~schedules.errors.InvalidProgram` if :func:`validate_program` finds errors.
    """
    _require_valid(program)
    start, end = night_bounds(site, night)
    resolved: list[ResolvedStep] = []
    for index, (at, source) in enumerate(_place_steps(program, site, night)):
        if at is None or at >= end:
            continue
        step = program.steps[index]
        resolved.append(
            ResolvedStep(
                at=max(at, start),
                level=step.level,
                step_index=index,
                fade_s=step.fade_s,
                source=source,
                clamped=at < start,
            )
        )
    resolved.sort(key=lambda r: (r.at, r.step_index))
    return tuple(resolved)


def level_in_night(
    resolved: Sequence[ResolvedStep], default_level: int, at: datetime
) -> tuple[int, int | None]:
    """Level at ``at`` given a night's :func:`resolve_night` result: (level, step index).

    The step index is ``None`` before the first step, where ``default_level`` applies.
    ``at`` is assumed to lie in that night.
    """
    current: ResolvedStep | None = None
    for step in resolved:
        if step.at > at:
            break
        current = step
    if current is None:
        return default_level, None
    return current.level, current.step_index


def check_program_year(program: Program, site: Site, year: int) -> tuple[Problem, ...]:
    """Warnings about ``program`` over every night of ``year`` at ``site``.

    - ``order_swap``: two steps come in one order on some nights and the other order on
      others (``22:00`` and ``sunset+240`` in Đông Hà: sunset+240 is 21:23 in December,
      22:27 in June), so the profile changes shape across the year.
    - ``outside_night``: a step resolves before the night's start (clamped) or after its
      end (dropped) on some nights.
    - ``anchor_fallback``: a step's sun event does not happen during some nights (polar
      sites), so a fallback from the module docstring applies.

    Raises :class:`~schedules.errors.InvalidProgram` if the program has errors.
    """
    _require_valid(program)
    count = len(program.steps)
    first_on: dict[tuple[int, int], date] = {}
    first_after: dict[tuple[int, int], date] = {}
    nights_before: dict[tuple[int, int], int] = {}
    nights_after: dict[tuple[int, int], int] = {}
    outside: dict[int, list[date]] = {}
    fallback: dict[int, list[date]] = {}
    anchors = [parse_anchor(step.anchor) for step in program.steps]

    for night in _nights_of(year):
        start, end = night_bounds(site, night)
        placed = _place_steps(program, site, night)
        # a step on a fallback is reported as such, not as swapping order
        instants: list[datetime | None] = []
        for index, (at, source) in enumerate(placed):
            anchor = anchors[index]
            if isinstance(anchor, SunEvent) and source != anchor.value:
                fallback.setdefault(index, []).append(night)
                instants.append(None)
                continue
            if at is not None and not start <= at < end:
                outside.setdefault(index, []).append(night)
            instants.append(at)
        for i in range(count):
            at_i = instants[i]
            for j in range(i + 1, count):
                at_j = instants[j]
                if at_i is None or at_j is None:
                    continue
                if at_i < at_j:
                    nights_before[(i, j)] = nights_before.get((i, j), 0) + 1
                    first_on.setdefault((i, j), night)
                elif at_i > at_j:
                    nights_after[(i, j)] = nights_after.get((i, j), 0) + 1
                    first_after.setdefault((i, j), night)

    problems: list[Problem] = []
    for i, j in sorted(set(nights_before) & set(nights_after)):
        a, b = program.steps[i].describe(), program.steps[j].describe()
        problems.append(
            Problem(
                Severity.WARNING,
                ProblemCode.ORDER_SWAP,
                f"steps {i} ({a}) and {j} ({b}) swap order in {year}: {a} comes first on "
                f"{nights_before[(i, j)]} nights (e.g. {first_on[(i, j)]}), {b} first on "
                f"{nights_after[(i, j)]} nights (e.g. {first_after[(i, j)]})",
                j,
                i,
            )
        )
    for index, nights in sorted(outside.items()):
        problems.append(
            Problem(
                Severity.WARNING,
                ProblemCode.OUTSIDE_NIGHT,
                f"step {index} ({program.steps[index].describe()}) falls outside its night "
                f"(12:00 to 12:00) on {len(nights)} nights in {year} (e.g. {nights[0]})",
                index,
            )
        )
    for index, nights in sorted(fallback.items()):
        problems.append(
            Problem(
                Severity.WARNING,
                ProblemCode.ANCHOR_FALLBACK,
                f"step {index} ({program.steps[index].describe()}): its sun event does not "
                f"happen during {len(nights)} nights of {year} at this site (e.g. "
                f"{nights[0]}); a fallback applies (another event, the night's start, or "
                "the step is skipped)",
                index,
            )
        )
    return tuple(problems)


def _require_valid(program: Program) -> None:
    problems = validate_program(program)
    if problems:
        raise InvalidProgram(program.name, problems)


def _identity(anchor: SunEvent | time, offset_min: int) -> object:
    """What makes two steps 'the same': the anchor and offset, clock times normalised."""
    if isinstance(anchor, time):
        return ("clock", _minutes_into_night(anchor) + offset_min)
    return (anchor, offset_min)


def _minutes_into_night(clock: time) -> int:
    minutes = clock.hour * 60 + clock.minute - 12 * 60
    return minutes if minutes >= 0 else minutes + 24 * 60


def _nights_of(year: int) -> Iterator[date]:
    night = date(year, 1, 1)
    while night.year == year:
        yield night
        night += timedelta(days=1)


def _place_steps(program: Program, site: Site, night: date) -> list[tuple[datetime | None, str]]:
    """(instant or None if skipped, source) for every step, in step order, unclamped."""
    start, end = night_bounds(site, night)
    placed: list[tuple[datetime | None, str]] = []
    for step in program.steps:
        anchor = parse_anchor(step.anchor)
        if isinstance(anchor, time):
            day = night if anchor >= NOON else night + timedelta(days=1)
            base: datetime | None = datetime.combine(day, anchor, tzinfo=site.tzinfo)
            source = "clock"
        else:
            base, source = _sun_anchor(anchor, site, night, start, end)
            if source == NIGHT_START:
                placed.append((start, source))  # the offset does not apply
                continue
        if base is None:
            placed.append((None, source))
            continue
        at = (base.astimezone(UTC) + timedelta(minutes=step.offset_min)).astimezone(site.tzinfo)
        placed.append((at, source))
    return placed


def _sun_anchor(
    event: SunEvent, site: Site, night: date, start: datetime, end: datetime
) -> tuple[datetime | None, str]:
    """Where a sun anchor falls in the night ``start``..``end``; rules in the module doc."""
    current: SunEvent | None = event
    while current is not None:
        target = event_elevation_deg(site, current)
        if current.is_dusk:
            if sun_elevation_deg(site, start) <= target:
                return start, NIGHT_START
            crossings = _crossings(site, night, current, start, end)
            if crossings:
                return crossings[0], current.value
        else:
            if sun_elevation_deg(site, end) < target:
                return None, SKIPPED
            crossings = _crossings(site, night, current, start, end)
            if crossings:
                return crossings[-1], current.value
        brighter = current.brighter
        if brighter is None:
            return (None, SKIPPED) if current.is_dusk else (start, NIGHT_START)
        current = brighter
    raise AssertionError("unreachable: sunrise and sunset have no brighter event")


def _crossings(
    site: Site, night: date, event: SunEvent, start: datetime, end: datetime
) -> list[datetime]:
    """The instants ``event`` happens during the night, in order.

    First from the cached per-date events (dusk on ``D``, dawn on ``D+1``: all that ever
    happens outside the polar circles); only if those hold none is the night scanned,
    since near a polar season a date can hold two sunsets and keep the wrong one.
    """
    found = []
    for day in (night, night + timedelta(days=1)):
        at = compute_sun_events(site, day).get(event)
        if at is not None and start <= at < end:
            found.append(at)
    if found:
        return found
    target = event_elevation_deg(site, event)
    return find_crossings(site, start, end, target, rising=not event.is_dusk)
