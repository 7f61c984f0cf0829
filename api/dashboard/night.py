"""Tonight at a glance: sun times and the program's steps for the site, a group or a light.

The steps come from :func:`controller.scheduling.timeline.subject_timeline`, the one
timeline function the API (``GET /api/v1/.../timeline``) and ``streetlight timeline`` use
too, so they never disagree; without a group or light it is the site's default calendar
(what a luminaire in no group with a calendar follows). "Tonight" is the night of the
controller's clock, which runs fast in the demo and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from api.dashboard.charts import StepChart, step_chart
from api.dashboard.i18n import Translator
from controller.config.settings import Settings
from controller.scheduling.timeline import Subject, subject_timeline
from schedules.program import night_bounds
from schedules.program import tonight as tonight_of
from schedules.sun import Site, compute_sun_events

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


def chart_window(site: Site, night: date) -> tuple[datetime, datetime]:
    """The stretch of ``night`` a chart shows: 16:00-08:00 local, widened to an hour
    either side of sunset and sunrise, within the night's bounds."""
    evening = compute_sun_events(site, night)
    morning = compute_sun_events(site, night + timedelta(days=1))
    start = datetime.combine(night, CHART_START, tzinfo=site.tzinfo)
    end = datetime.combine(night + timedelta(days=1), CHART_END, tzinfo=site.tzinfo)
    if evening.sunset is not None:
        start = min(start, evening.sunset - timedelta(hours=1))
    if morning.sunrise is not None:
        end = max(end, morning.sunrise + timedelta(hours=1))
    bounds = night_bounds(site, night)
    return max(start, bounds[0]), min(end, bounds[1])


async def tonight(
    *,
    session: AsyncSession,
    settings: Settings,
    now: datetime,
    t: Translator,
    group_id: int | None = None,
    luminaire_id: int | None = None,
) -> Night:
    """Tonight for a group, a luminaire, or (neither given) the site's default calendar.

    "Tonight" is :func:`schedules.program.tonight`: after sunrise, the coming night.
    """
    site = settings.site.to_site()
    the_night = tonight_of(site, now)
    if group_id is not None:
        subject = Subject.group(group_id)
    elif luminaire_id is not None:
        subject = Subject.luminaire(luminaire_id)
    else:
        subject = Subject.site()
    timeline = await subject_timeline(
        session=session, settings=settings, subject=subject, night=the_night
    )
    steps = tuple(
        Step(
            c.at,
            c.level,
            c.source.value,
            c.decision.program,
            c.decision.step_index,
            c.decision.override_id,
        )
        for c in timeline.changes
    )
    evening = compute_sun_events(site, the_night)
    morning = compute_sun_events(site, the_night + timedelta(days=1))
    start, end = chart_window(site, the_night)
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
        calendar=timeline.calendar,
        steps=steps,
        sunset=evening.sunset,
        civil_dusk=evening.civil_dusk,
        civil_dawn=morning.civil_dawn,
        sunrise=morning.sunrise,
        chart=chart,
    )
