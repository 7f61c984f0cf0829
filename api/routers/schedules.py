"""Programs, calendars, sun events and timelines ("what will the lights do tonight")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, Field

from api.deps import IdPath, NowDep, PageDep, PrincipalDep, SessionDep, SettingsDep, require
from controller.access.auth import Permission, Principal
from controller.core.page import Page
from controller.scheduling import data as scheduling
from controller.scheduling.schemas import (
    CalendarCreate,
    CalendarPublic,
    CalendarUpdate,
    ProgramCreate,
    ProgramPublic,
    ProgramUpdate,
)
from controller.scheduling.timeline import Subject, subject_timeline
from schedules.almanac import MAX_DAYS, tabulate_sun_events, to_records
from schedules.decision import Change
from schedules.program import tonight

router = APIRouter(tags=["schedules"])
Writer = Annotated[Principal, Depends(require(Permission.SCHEDULE_WRITE, "change schedules"))]


def _year(settings: SettingsDep, now: NowDep) -> int:
    """This year at the site, on the app's clock: program warnings cover it and the next."""
    return now.astimezone(settings.site.tz).year


YearDep = Annotated[int, Depends(_year)]


# --- programs ------------------------------------------------------------------------------


@router.get("/programs", summary="List night programs")
async def list_programs(session: SessionDep, _: PrincipalDep, page: PageDep) -> Page[ProgramPublic]:
    return await scheduling.list_programs(session=session, limit=page.limit, offset=page.offset)


@router.get("/programs/{program_id}", summary="Get a program, with warnings for this year")
async def get_program(
    program_id: IdPath, session: SessionDep, settings: SettingsDep, year: YearDep, _: PrincipalDep
) -> ProgramPublic:
    return await scheduling.get_program(
        session=session, program_id=program_id, site=settings.site.to_site(), year=year
    )


@router.post(
    "/programs",
    status_code=status.HTTP_201_CREATED,
    summary="Create a program (422 names the step; warnings in the answer)",
)
async def create_program(
    data: ProgramCreate, session: SessionDep, settings: SettingsDep, year: YearDep, who: Writer
) -> ProgramPublic:
    return await scheduling.create_program(
        session=session, data=data, actor=who, site=settings.site.to_site(), year=year
    )


@router.patch("/programs/{program_id}", summary="Update a program (partial)")
async def update_program(
    program_id: IdPath,
    data: ProgramUpdate,
    session: SessionDep,
    settings: SettingsDep,
    year: YearDep,
    who: Writer,
) -> ProgramPublic:
    return await scheduling.update_program(
        session=session,
        program_id=program_id,
        data=data,
        actor=who,
        site=settings.site.to_site(),
        year=year,
    )


@router.delete(
    "/programs/{program_id}", status_code=204, summary="Delete a program no calendar uses"
)
async def delete_program(program_id: IdPath, session: SessionDep, who: Writer) -> Response:
    await scheduling.delete_program(session=session, program_id=program_id, actor=who)
    return Response(status_code=204)


# --- calendars -----------------------------------------------------------------------------


@router.get("/calendars", summary="List calendars")
async def list_calendars(
    session: SessionDep, _: PrincipalDep, page: PageDep
) -> Page[CalendarPublic]:
    return await scheduling.list_calendars(session=session, limit=page.limit, offset=page.offset)


@router.get("/calendars/{calendar_id}", summary="Get a calendar")
async def get_calendar(calendar_id: IdPath, session: SessionDep, _: PrincipalDep) -> CalendarPublic:
    return await scheduling.get_calendar(session=session, calendar_id=calendar_id)


@router.post("/calendars", status_code=status.HTTP_201_CREATED, summary="Create a calendar")
async def create_calendar(data: CalendarCreate, session: SessionDep, who: Writer) -> CalendarPublic:
    return await scheduling.create_calendar(session=session, data=data, actor=who)


@router.patch("/calendars/{calendar_id}", summary="Update a calendar (rules replace the list)")
async def update_calendar(
    calendar_id: IdPath, data: CalendarUpdate, session: SessionDep, who: Writer
) -> CalendarPublic:
    return await scheduling.update_calendar(
        session=session, calendar_id=calendar_id, data=data, actor=who
    )


@router.delete(
    "/calendars/{calendar_id}", status_code=204, summary="Delete a calendar no group uses"
)
async def delete_calendar(calendar_id: IdPath, session: SessionDep, who: Writer) -> Response:
    await scheduling.delete_calendar(session=session, calendar_id=calendar_id, actor=who)
    return Response(status_code=204)


# --- sun and timelines ---------------------------------------------------------------------


@router.get("/sun", summary="Sun events at the site, local time with offset")
async def sun(
    settings: SettingsDep,
    now: NowDep,
    _: PrincipalDep,
    day: Annotated[
        date | None, Query(alias="date", description="First date (default today)")
    ] = None,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 1,
) -> list[dict[str, str | None]]:
    start = day or now.astimezone(settings.site.tz).date()
    return to_records(tabulate_sun_events(settings.site.to_site(), start, days))


class TimelineEntry(BaseModel):
    at: datetime
    level: int
    source: str
    program: str | None = None
    step: int | None = Field(
        None,
        description="0-based index into the program's steps (the dashboard and the CLI "
        "call it step N+1); null before the first step",
    )
    rule: int | None = Field(
        None, description="0-based index of the calendar rule; null: the default program"
    )
    override_id: int | None = None


class Timeline(BaseModel):
    night: date
    calendar_id: int | None
    calendar: str | None
    sun: dict[str, str | None]
    changes: list[TimelineEntry]


def _entries(changes: tuple[Change, ...]) -> list[TimelineEntry]:
    return [
        TimelineEntry(
            at=c.at,
            level=c.level,
            source=c.source.value,
            program=c.decision.program,
            step=c.decision.step_index,
            rule=c.decision.rule_index,
            override_id=c.decision.override_id,
        )
        for c in changes
    ]


async def _timeline(
    session: SessionDep, settings: SettingsDep, now: datetime, night: date | None, subject: Subject
) -> Timeline:
    site = settings.site.to_site()
    the_night = night or tonight(site, now)
    found = await subject_timeline(
        session=session, settings=settings, subject=subject, night=the_night
    )
    return Timeline(
        night=found.night,
        calendar_id=found.calendar_id,
        calendar=found.calendar,
        sun=to_records(tabulate_sun_events(site, found.night, 1))[0],
        changes=_entries(found.changes),
    )


NightQuery = Annotated[
    date | None,
    Query(
        alias="date",
        description="The night (its evening's date); default tonight: the current night "
        "until sunrise, then the coming one",
    ),
]


@router.get("/groups/{group_id}/timeline", summary="Tonight's steps for a group, local time")
async def group_timeline(
    group_id: IdPath,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    _: PrincipalDep,
    night: NightQuery = None,
) -> Timeline:
    return await _timeline(session, settings, now, night, Subject.group(group_id))


@router.get("/luminaires/{luminaire_id}/timeline", summary="Tonight's steps for a luminaire")
async def luminaire_timeline(
    luminaire_id: IdPath,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    _: PrincipalDep,
    night: NightQuery = None,
) -> Timeline:
    return await _timeline(session, settings, now, night, Subject.luminaire(luminaire_id))
