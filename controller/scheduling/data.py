"""Programs, calendars and their assignment to luminaires: storage and evaluation.

Keyword-only async functions over the database, plus the glue from stored rows to
the pure decision function in :mod:`schedules.decision`.

Which calendar governs a luminaire: among the groups it belongs to that have a
calendar, the one with the highest ``priority`` wins, ties broken by the lowest
group id (:func:`schedules.decision.governing_calendar`, the one rule the controller's
targets, the timelines and the API all go through). A luminaire in no such group
follows the site's default calendar (``schedule.default_calendar`` in the settings,
"Đông Hà default" out of the box); if that does not exist either, the default
level applies (``schedule.default_level``, 0 = off).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.access import audit
from controller.access.auth import Principal
from controller.config.settings import Settings
from controller.core.changes import ConfigChange, note_change
from controller.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from controller.core.page import Page
from controller.inventory.data import group_condition
from controller.scheduling.schemas import (
    CalendarCreate,
    CalendarPublic,
    CalendarUpdate,
    ProblemPublic,
    ProgramCreate,
    ProgramPublic,
    ProgramUpdate,
    RuleIn,
    program_from_row,
    to_calendar,
    to_program,
)
from controller.store.tables import CalendarRow, Luminaire, LuminaireGroup, ProgramRow
from schedules.builtin import BUILTIN_PROGRAMS
from schedules.calendar import Calendar, ProgramRef
from schedules.decision import (
    Change,
    GroupCalendar,
    Override,
    assign_calendars,
    governing_calendar,
    timeline,
)
from schedules.holiday import HolidayKey
from schedules.program import Program, Severity, check_program_year
from schedules.sun import Site

DEFAULT_CALENDAR_NAME = "Đông Hà default"


def _now() -> datetime:
    return datetime.now(UTC)


# --- programs ------------------------------------------------------------------------------


def _program_public(row: ProgramRow, warnings: Sequence[ProblemPublic] = ()) -> ProgramPublic:
    return ProgramPublic.model_validate({**row.model_dump(), "warnings": list(warnings)})


def program_warnings(program: Program, site: Site, year: int) -> list[ProblemPublic]:
    """Warnings over every night of ``year`` and the next (order swaps, fallbacks)."""
    seen: set[tuple[str, int | None, int | None]] = set()
    out: list[ProblemPublic] = []
    for y in (year, year + 1):
        for p in check_program_year(program, site, y):
            if p.severity is not Severity.WARNING:
                continue
            key = (p.code.value, p.step, p.other_step)
            if key not in seen:
                seen.add(key)
                out.append(
                    ProblemPublic(
                        code=p.code.value, message=p.message, step=p.step, other_step=p.other_step
                    )
                )
    return out


async def _unique_program_name(session: AsyncSession, name: str, exclude: int | None) -> None:
    stmt = select(ProgramRow).where(ProgramRow.name == name)
    if exclude is not None:
        stmt = stmt.where(ProgramRow.id != exclude)
    if (await session.exec(stmt)).first() is not None:
        raise Conflict(f"a program named {name!r} already exists", field="name")


async def list_programs(*, session: AsyncSession, limit: int, offset: int) -> Page[ProgramPublic]:
    total = (await session.exec(select(func.count()).select_from(ProgramRow))).one()
    rows = (
        await session.exec(
            select(ProgramRow).order_by(col(ProgramRow.id)).offset(offset).limit(limit)
        )
    ).all()
    return Page(items=[_program_public(r) for r in rows], total=total, limit=limit, offset=offset)


async def _program_row(session: AsyncSession, program_id: int) -> ProgramRow:
    row = await session.get(ProgramRow, program_id)
    if row is None:
        raise NotFound("program", program_id)
    return row


async def get_program(
    *, session: AsyncSession, program_id: int, site: Site, year: int
) -> ProgramPublic:
    row = await _program_row(session, program_id)
    pure = program_from_row(row.name, row.steps, row.default_level)
    return _program_public(row, program_warnings(pure, site, year))


async def create_program(
    *, session: AsyncSession, data: ProgramCreate, actor: Principal, site: Site, year: int
) -> ProgramPublic:
    pure = to_program(data.name, data.steps, data.default_level)
    await _unique_program_name(session, data.name, None)
    row = ProgramRow(
        name=data.name,
        description=data.description,
        steps=[s.model_dump() for s in data.steps],
        default_level=data.default_level,
    )
    session.add(row)
    await session.flush()
    public = _program_public(row, program_warnings(pure, site, year))
    audit.record(
        session=session, actor=actor, action="create", entity="program", entity_id=row.id,
        after=public,
    )  # fmt: skip
    await session.commit()
    note_change(session, ConfigChange.CONFIGURATION)
    return public


async def update_program(
    *,
    session: AsyncSession,
    program_id: int,
    data: ProgramUpdate,
    actor: Principal,
    site: Site,
    year: int,
) -> ProgramPublic:
    row = await _program_row(session, program_id)
    before = _program_public(row)
    merged = ProgramCreate.model_validate(
        {
            "name": row.name,
            "description": row.description,
            "steps": row.steps,
            "default_level": row.default_level,
        }
        | data.model_dump(exclude_unset=True)
    )
    pure = to_program(merged.name, merged.steps, merged.default_level)
    await _unique_program_name(session, merged.name, program_id)
    row.name, row.description = merged.name, merged.description
    row.steps = [s.model_dump() for s in merged.steps]
    row.default_level = merged.default_level
    row.updated_at = _now()
    session.add(row)
    await session.flush()
    after = _program_public(row, program_warnings(pure, site, year))
    audit.record(
        session=session, actor=actor, action="update", entity="program", entity_id=program_id,
        before=before, after=after,
    )  # fmt: skip
    await session.commit()
    note_change(session, ConfigChange.CONFIGURATION)
    return after


async def delete_program(*, session: AsyncSession, program_id: int, actor: Principal) -> None:
    row = await _program_row(session, program_id)
    users = [
        c.name for c in (await session.exec(select(CalendarRow))).all() if _uses(c, program_id)
    ]
    if users:
        raise Conflict(f"program {program_id} is used by calendar(s) {', '.join(users)}")
    before = _program_public(row)
    await session.delete(row)
    audit.record(
        session=session, actor=actor, action="delete", entity="program", entity_id=program_id,
        before=before,
    )  # fmt: skip
    await session.commit()
    note_change(session, ConfigChange.CONFIGURATION)


def _uses(calendar: CalendarRow, program_id: int) -> bool:
    return calendar.default_program_id == program_id or any(
        r.get("program_id") == program_id for r in calendar.rules
    )


# --- calendars -----------------------------------------------------------------------------


async def _check_calendar(session: AsyncSession, data: CalendarCreate, exclude: int | None) -> None:
    to_calendar(data.rules, data.default_program_id)  # shape of every rule
    stmt = select(CalendarRow).where(CalendarRow.name == data.name)
    if exclude is not None:
        stmt = stmt.where(CalendarRow.id != exclude)
    if (await session.exec(stmt)).first() is not None:
        raise Conflict(f"a calendar named {data.name!r} already exists", field="name")
    wanted = {r.program_id for r in data.rules}
    if data.default_program_id is not None:
        wanted.add(data.default_program_id)
    found = set(
        (await session.exec(select(ProgramRow.id).where(col(ProgramRow.id).in_(wanted)))).all()
    )
    problems = [
        FieldProblem(f"rules.{i}.program_id", f"program {r.program_id} does not exist")
        for i, r in enumerate(data.rules)
        if r.program_id not in found
    ]
    if data.default_program_id is not None and data.default_program_id not in found:
        problems.append(
            FieldProblem("default_program_id", f"program {data.default_program_id} does not exist")
        )
    if problems:
        raise InvalidInput("calendar refers to unknown programs", problems)


def _rule_dump(rule: RuleIn) -> dict[str, Any]:
    return rule.model_dump(mode="json", exclude_none=True)


async def list_calendars(*, session: AsyncSession, limit: int, offset: int) -> Page[CalendarPublic]:
    total = (await session.exec(select(func.count()).select_from(CalendarRow))).one()
    rows = (
        await session.exec(
            select(CalendarRow).order_by(col(CalendarRow.id)).offset(offset).limit(limit)
        )
    ).all()
    items = [CalendarPublic.model_validate(r) for r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


async def _calendar_row(session: AsyncSession, calendar_id: int) -> CalendarRow:
    row = await session.get(CalendarRow, calendar_id)
    if row is None:
        raise NotFound("calendar", calendar_id)
    return row


async def get_calendar(*, session: AsyncSession, calendar_id: int) -> CalendarPublic:
    return CalendarPublic.model_validate(await _calendar_row(session, calendar_id))


async def create_calendar(
    *, session: AsyncSession, data: CalendarCreate, actor: Principal
) -> CalendarPublic:
    await _check_calendar(session, data, None)
    row = CalendarRow(
        name=data.name,
        description=data.description,
        rules=[_rule_dump(r) for r in data.rules],
        default_program_id=data.default_program_id,
    )
    session.add(row)
    await session.flush()
    public = CalendarPublic.model_validate(row)
    audit.record(
        session=session, actor=actor, action="create", entity="calendar", entity_id=row.id,
        after=public,
    )  # fmt: skip
    await session.commit()
    note_change(session, ConfigChange.CONFIGURATION)
    return public


async def update_calendar(
    *, session: AsyncSession, calendar_id: int, data: CalendarUpdate, actor: Principal
) -> CalendarPublic:
    row = await _calendar_row(session, calendar_id)
    before = CalendarPublic.model_validate(row)
    merged = CalendarCreate.model_validate(
        {
            "name": row.name,
            "description": row.description,
            "rules": row.rules,
            "default_program_id": row.default_program_id,
        }
        | data.model_dump(exclude_unset=True)
    )
    await _check_calendar(session, merged, calendar_id)
    row.name, row.description = merged.name, merged.description
    row.rules = [_rule_dump(r) for r in merged.rules]
    row.default_program_id = merged.default_program_id
    row.updated_at = _now()
    session.add(row)
    await session.flush()
    after = CalendarPublic.model_validate(row)
    audit.record(
        session=session, actor=actor, action="update", entity="calendar",
        entity_id=calendar_id, before=before, after=after,
    )  # fmt: skip
    await session.commit()
    note_change(session, ConfigChange.CONFIGURATION)
    return after


async def delete_calendar(*, session: AsyncSession, calendar_id: int, actor: Principal) -> None:
    row = await _calendar_row(session, calendar_id)
    groups = (
        await session.exec(
            select(LuminaireGroup.name).where(LuminaireGroup.calendar_id == calendar_id)
        )
    ).all()
    if groups:
        raise Conflict(f"calendar {calendar_id} is assigned to group(s) {', '.join(groups)}")
    before = CalendarPublic.model_validate(row)
    await session.delete(row)
    audit.record(
        session=session, actor=actor, action="delete", entity="calendar",
        entity_id=calendar_id, before=before,
    )  # fmt: skip
    await session.commit()
    note_change(session, ConfigChange.CONFIGURATION)


# --- built-ins -----------------------------------------------------------------------------


async def ensure_builtins(*, session: AsyncSession) -> None:
    """Create the shipped programs and the default calendar when they are missing."""
    have = {r.name: r for r in (await session.exec(select(ProgramRow))).all()}
    for name, program in BUILTIN_PROGRAMS.items():
        if name not in have:
            row = ProgramRow(
                name=name,
                description="Shipped with streetlight",
                steps=[
                    {
                        "anchor": s.anchor,
                        "offset_min": s.offset_min,
                        "level": s.level,
                        "fade_s": s.fade_s,
                    }
                    for s in program.steps
                ],
                default_level=program.default_level,
                builtin=True,
            )
            session.add(row)
            have[name] = row
    await session.flush()
    exists = (
        await session.exec(select(CalendarRow).where(CalendarRow.name == DEFAULT_CALENDAR_NAME))
    ).first()
    if exists is None:
        holiday = have["holiday"].id
        session.add(
            CalendarRow(
                name=DEFAULT_CALENDAR_NAME,
                description="Public holidays (Tết included) lit all night; other nights dimmed",
                rules=[
                    {"kind": "holiday", "program_id": holiday, "include_observed": False},
                    {
                        "kind": "holiday",
                        "program_id": holiday,
                        "holiday": HolidayKey.TET.value,
                        "include_observed": True,
                    },
                ],
                default_program_id=have["Đông Hà standard"].id,
            )
        )
    await session.commit()


# --- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleBook:
    """Every program and calendar, converted to the pure types (for evaluation)."""

    programs: Mapping[ProgramRef, Program]
    calendars: Mapping[int, Calendar]
    default_calendar_id: int | None


async def load_book(*, session: AsyncSession, settings: Settings) -> ScheduleBook:
    programs: dict[ProgramRef, Program] = {
        str(r.id): program_from_row(r.name, r.steps, r.default_level)
        for r in (await session.exec(select(ProgramRow))).all()
        if r.id is not None
    }
    calendars: dict[int, Calendar] = {}
    default_id: int | None = None
    for row in (await session.exec(select(CalendarRow))).all():
        assert row.id is not None
        rules = [RuleIn.model_validate(r) for r in row.rules]
        calendars[row.id] = to_calendar(rules, row.default_program_id)
        if row.name == settings.schedule.default_calendar:
            default_id = row.id
    return ScheduleBook(programs, calendars, default_id)


async def calendar_offers(
    *, session: AsyncSession, luminaire_id: int | None = None
) -> dict[int, list[GroupCalendar]]:
    """luminaire id -> the calendars of the groups it belongs to (groups with a calendar).

    Every luminaire, or only ``luminaire_id``. Luminaires in no such group are absent.
    """
    groups = (
        await session.exec(
            select(LuminaireGroup).where(col(LuminaireGroup.calendar_id).is_not(None))
        )
    ).all()
    out: dict[int, list[GroupCalendar]] = {}
    for group in groups:
        assert group.id is not None and group.calendar_id is not None
        members = select(Luminaire.id).where(group_condition(group))
        if luminaire_id is not None:
            members = members.where(Luminaire.id == luminaire_id)
        offer = GroupCalendar(group.id, group.priority, group.calendar_id)
        for lid in (await session.exec(members)).all():
            if lid is not None:
                out.setdefault(lid, []).append(offer)
    return out


async def calendar_assignment(*, session: AsyncSession, default: int | None) -> dict[int, int]:
    """luminaire id -> calendar id for every luminaire that has one (rule in the module doc)."""
    luminaires = [i for i in (await session.exec(select(Luminaire.id))).all() if i is not None]
    return assign_calendars(luminaires, await calendar_offers(session=session), default)


def night_timeline(
    book: ScheduleBook,
    calendar_id: int | None,
    night: date,
    site: Site,
    overrides: Sequence[Override] = (),
    default_level: int = 0,
) -> tuple[Change, ...]:
    calendar = book.calendars.get(calendar_id) if calendar_id is not None else None
    return timeline(
        night,
        site=site,
        calendar=calendar,
        programs=book.programs,
        overrides=overrides,
        default_level=default_level,
    )


async def group_calendar_id(
    *, session: AsyncSession, group_id: int, book: ScheduleBook
) -> int | None:
    group = await session.get(LuminaireGroup, group_id)
    if group is None:
        raise NotFound("group", group_id)
    return group.calendar_id if group.calendar_id is not None else book.default_calendar_id


async def luminaire_calendar_id(
    *, session: AsyncSession, luminaire_id: int, book: ScheduleBook
) -> int | None:
    """The calendar that drives one luminaire: the same rule as :func:`calendar_assignment`."""
    if await session.get(Luminaire, luminaire_id) is None:
        raise NotFound("luminaire", luminaire_id)
    offers = await calendar_offers(session=session, luminaire_id=luminaire_id)
    return governing_calendar(offers.get(luminaire_id, ()), book.default_calendar_id)


async def calendar_names(*, session: AsyncSession) -> dict[int, str]:
    return {
        r.id: r.name for r in (await session.exec(select(CalendarRow))).all() if r.id is not None
    }
