"""The energy page: daily kWh per ward, energy against baseline per ward, CSV downloads.

Figures come from :mod:`controller.energy.report`, the code behind ``GET /api/v1/energy``,
and the CSV download is that module's ``to_csv`` over the same report (the browser has a
session cookie, not a bearer key, so it cannot fetch the API's URL itself): the same
columns and rows as ``GET /api/v1/energy?format=csv``, every page at once.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.dashboard.charts import PALETTE, paired_bars, stacked_bars
from api.dashboard.energy_summary import EnergyTotals
from api.dashboard.web import (
    PageRoute,
    error_page,
    now_of,
    render,
    require_user,
    settings_of,
    translator,
)
from api.deps import SessionDep
from controller.core.errors import FieldProblem, InvalidInput
from controller.energy.report import GroupBy, Interval, energy_report, parse_range, to_csv

router = APIRouter(route_class=PageRoute, include_in_schema=False)

DEFAULT_DAYS = 14
MAX_CHART_DAYS = 93
MAX_CSV_ROWS = 200_000
BASELINE_FILL = "#b8c0c8"
ENERGY_FILL = PALETTE[0]


def _day(text: str | None, fallback: date) -> str:
    return text.strip() if text and text.strip() else fallback.isoformat()


@router.get("/energy")
async def energy_page(
    request: Request,
    session: SessionDep,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
) -> Response:
    user = await require_user(request, session)
    t = translator(request)
    settings = settings_of(request)
    tz = settings.site.tz
    today = now_of(request).astimezone(tz).date()
    first_text = _day(from_, today - timedelta(days=DEFAULT_DAYS - 1))
    last_text = _day(to, today)
    context: dict[str, object] = {"from_": first_text, "to": last_text, "errors": []}
    try:
        rng = parse_range(Interval.DAY, first_text, last_text, tz)
        assert rng.first_day is not None and rng.last_day is not None
        if (rng.last_day - rng.first_day).days + 1 > MAX_CHART_DAYS:
            message = t("range_too_long", days=MAX_CHART_DAYS)
            raise InvalidInput(message, [FieldProblem("to", message)])
    except InvalidInput as exc:
        context["errors"] = [
            {"field": p.field.replace(" (query)", ""), "message": p.message} for p in exc.errors
        ]
        return render(request, "energy.html", context, user=user, nav="energy", status=422)
    # per ward, and in total: a day's coverage counts the wards that did not report too
    report, site_total = [
        await energy_report(
            session=session, site=settings.site.to_site(), energy=settings.energy, rng=rng,
            group_by=group_by, limit=MAX_CHART_DAYS * 1000, offset=0, now=now_of(request),
        )
        for group_by in (GroupBy.WARD, GroupBy.TOTAL)
    ]  # fmt: skip
    days = [
        (rng.first_day + timedelta(days=i)).isoformat()
        for i in range((rng.last_day - rng.first_day).days + 1)
    ]
    wards = sorted({row.key for row in report.items})
    per_day: dict[str, EnergyTotals] = {d: EnergyTotals() for d in days}
    per_ward: dict[str, EnergyTotals] = {w: EnergyTotals() for w in wards}
    values: dict[tuple[str, str], float] = {}
    for row in report.items:
        per_ward[row.key] = per_ward[row.key] + EnergyTotals.of(row)
        values[(row.period, row.key)] = row.energy_kwh
    total = EnergyTotals()
    for row in site_total.items:
        per_day[row.period] = EnergyTotals.of(row)
        total = total + per_day[row.period]
    daily = stacked_bars(
        days, wards, values, unit="kWh", number=lambda v: t.num(v, 1),
        category_label=t.short_day,
    )  # fmt: skip
    by_ward = paired_bars(
        wards,
        {w: per_ward[w].energy_kwh for w in wards},
        {w: per_ward[w].baseline_kwh for w in wards},
        labels=(t("energy_kwh"), t("baseline_kwh")),
        fills=(ENERGY_FILL, BASELINE_FILL),
        unit="kWh",
        number=lambda v: t.num(v, 1),
    )
    span = {"from": rng.first_day.isoformat(), "to": rng.last_day.isoformat()}
    context.update(
        {
            "daily": daily,
            "by_ward": by_ward,
            "per_day": per_day,
            "per_ward": per_ward,
            "total": total,
            "span": span,
            "co2_factor": settings.energy.co2_t_per_mwh,
            "tariff": settings.energy.tariff_vnd_per_kwh,
            "csv_links": [
                (t("csv_day_ward"), "day", "ward"),
                (t("csv_day_total"), "day", "total"),
                (t("csv_month_ward"), "month", "ward"),
                (t("csv_day_luminaire"), "day", "luminaire"),
            ],
        }
    )
    return render(request, "energy.html", context, user=user, nav="energy")


@router.get("/energy/report.csv")
async def energy_csv(
    request: Request,
    session: SessionDep,
    from_: Annotated[str, Query(alias="from")],
    to: str,
    interval: Interval = Interval.DAY,
    group_by: GroupBy = GroupBy.WARD,
) -> Response:
    """The IOC's CSV report for the signed-in user: every row, or a 422 page if too many."""
    user = await require_user(request, session)
    settings = settings_of(request)
    rng = parse_range(interval, from_, to, settings.site.tz)
    report = await energy_report(
        session=session, site=settings.site.to_site(), energy=settings.energy, rng=rng,
        group_by=group_by, limit=MAX_CSV_ROWS, offset=0, now=now_of(request),
    )  # fmt: skip
    if report.total > MAX_CSV_ROWS:
        message = translator(request)("csv_too_many", rows=MAX_CSV_ROWS)
        return error_page(request, 422, message, user=user)
    first, last = rng.echo(settings.site.tz)
    name = f"energy_{interval.value}_{group_by.value}_{first[:16]}_{last[:16]}.csv"
    return Response(
        content=to_csv(report).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name.replace(":", "")}"',
            "Cache-Control": "no-store",
        },
    )
