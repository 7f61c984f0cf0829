"""Tonight at a glance: sun times and the program's steps for a calendar, group or light.

Group and luminaire timelines are the API's own (``api.routers.schedules``), so the page
and ``GET /api/v1/.../timeline`` never disagree; the default calendar's timeline (what a
luminaire in no group with a calendar follows) is built from the same pieces. "Tonight"
is the night of the controller's clock, which runs fast in the demo and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from api.dashboard.charts import StepChart, step_chart
from api.dashboard.i18n import Translator
from api.routers import schedules as schedule_routes
from controller.access.auth import Principal
from controller.config.settings import Settings
from controller.scheduling import data as scheduling
from controller.scheduling.overrides import overlapping, to_pure
from schedules.program import night_bounds, night_of
from schedules.sun import compute_sun_events

CHART_START = time(16, 0)
CHART_END = time(8, 0)


@dataclass(frozen=True, slots=True)
class Step:
    at: datetime
    level: int
    source: str
    program: str | None
    step: int | None
    override_id: int | None


@dataclass(frozen=True, slots=True)
class Night:
    night: date
    calendar: str | None
    steps: tuple[Step, ...]
    sunset: datetime | None
    civil_dusk: datetime | None
    civil_dawn: datetime | None
    sunrise: datetime | None
    chart: StepChart


async def tonight(
    *,
    session: AsyncSession,
    settings: Settings,
    now: datetime,
    t: Translator,
    principal: Principal,
    group_id: int | None = None,
    luminaire_id: int | None = None,
) -> Night:
    site = settings.site.to_site()
    the_night = night_of(site, now)
    if group_id is not None or luminaire_id is not None:
        if group_id is not None:
            timeline = await schedule_routes.group_timeline(
                group_id=group_id, session=session, settings=settings, _=principal,
                night=the_night,
            )  # fmt: skip
        else:
            assert luminaire_id is not None
            timeline = await schedule_routes.luminaire_timeline(
                luminaire_id=luminaire_id, session=session, settings=settings, _=principal,
                night=the_night,
            )  # fmt: skip
        calendar = timeline.calendar
        steps = tuple(
            Step(c.at, c.level, c.source, c.program, c.step, c.override_id)
            for c in timeline.changes
        )
    else:
        calendar, steps = await _default_calendar(session, settings, the_night)
    evening = compute_sun_events(site, the_night)
    morning = compute_sun_events(site, the_night + timedelta(days=1))
    tz = settings.site.tz
    start = datetime.combine(the_night, CHART_START, tzinfo=tz)
    end = datetime.combine(the_night + timedelta(days=1), CHART_END, tzinfo=tz)
    if evening.sunset is not None:
        start = min(start, evening.sunset - timedelta(hours=1))
    if morning.sunrise is not None:
        end = max(end, morning.sunrise + timedelta(hours=1))
    bounds = night_bounds(site, the_night)
    start, end = max(start, bounds[0]), min(end, bounds[1])
    chart = step_chart(
        [(s.at, s.level) for s in steps],
        start,
        end,
        time_label=t.hm,
        markers={t("sunset"): evening.sunset, t("sunrise"): morning.sunrise},
        now=now,
    )
    return Night(
        night=the_night,
        calendar=calendar,
        steps=steps,
        sunset=evening.sunset,
        civil_dusk=evening.civil_dusk,
        civil_dawn=morning.civil_dawn,
        sunrise=morning.sunrise,
        chart=chart,
    )


async def _default_calendar(
    session: AsyncSession, settings: Settings, the_night: date
) -> tuple[str | None, tuple[Step, ...]]:
    site = settings.site.to_site()
    book = await scheduling.load_book(session=session, settings=settings)
    start, end = night_bounds(site, the_night)
    overrides = [
        to_pure(row)
        for row in await overlapping(session=session, start=start, end=end)
        if row.all_luminaires
    ]
    changes = scheduling.night_timeline(
        book,
        book.default_calendar_id,
        the_night,
        site,
        overrides,
        settings.schedule.default_level,
    )
    names = await scheduling.calendar_names(session=session)
    calendar = names.get(book.default_calendar_id) if book.default_calendar_id else None
    return calendar, tuple(
        Step(
            c.at,
            c.level,
            c.source.value,
            c.decision.program,
            c.decision.step_index,
            c.decision.override_id,
        )
        for c in changes
    )
