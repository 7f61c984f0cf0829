"""Energy reports for the IOC: energy, baseline, savings, CO2 and cost, as JSON or CSV."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response

from api.deps import PageDep, PrincipalDep, SessionDep, SettingsDep
from controller.core.clock import Clock
from controller.energy.report import (
    EnergyReport,
    GroupBy,
    Interval,
    ReportRange,
    energy_report,
    parse_range,
    to_csv,
)

router = APIRouter(tags=["energy"])


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


def _filename(rng: ReportRange, group_by: GroupBy, tz: ZoneInfo) -> str:
    if rng.first_day is not None and rng.last_day is not None:
        span = f"{rng.first_day.isoformat()}_{rng.last_day.isoformat()}"
    else:
        span = "_".join(t.astimezone(tz).strftime("%Y%m%dT%H%M") for t in (rng.start, rng.end))
    return f"energy_{rng.interval.value}_{group_by.value}_{span}.csv"


def _now(request: Request) -> datetime:
    """The app's clock (the controller's, possibly accelerated) or, without one, real time."""
    clock: Clock | None = getattr(request.app.state, "clock", None)
    return clock.now() if clock is not None else datetime.now(UTC)


@router.get(
    "/energy",
    summary="Energy, baseline, savings, CO2 and cost per period and ward/group/gateway/luminaire",
    response_model=EnergyReport,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
)
async def energy(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
    _: PrincipalDep,
    from_: Annotated[
        str,
        Query(
            alias="from",
            description="Local date (day, month; YYYY-MM also for month) or instant (hour), "
            "inclusive",
        ),
    ],
    to: Annotated[
        str,
        Query(description="Local date, inclusive (day, month), or instant, exclusive (hour)"),
    ],
    interval: Interval = Interval.DAY,
    group_by: GroupBy = GroupBy.TOTAL,
    fmt: Annotated[ReportFormat, Query(alias="format")] = ReportFormat.JSON,
) -> Response | EnergyReport:
    rng = parse_range(interval, from_, to, settings.site.tz)
    report = await energy_report(
        session=session,
        site=settings.site.to_site(),
        energy=settings.energy,
        rng=rng,
        group_by=group_by,
        limit=page.limit,
        offset=page.offset,
        now=_now(request),
    )
    if fmt is ReportFormat.JSON:
        return report
    name = _filename(rng, group_by, settings.site.tz)
    return Response(
        content=to_csv(report).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Total-Count": str(report.total),
        },
    )
