"""Energy reports for the IOC: energy, baseline, savings, CO2 and cost per period and key.

Served from the rollups, aggregated in SQL (``GROUP BY`` period and key, paginated in SQL):

* ``day`` and ``month`` periods from ``energy_daily`` (local days of the site zone);
* ``hour`` periods from ``energy_hourly`` (UTC hours, shown in local time).

Definitions (docs/ioc.md has the long version):

* **energy**: what the luminaires' counters (or integrated power) booked into the rollups.
* **baseline**: the same luminaires at 100 % of their rated power from sunset to sunrise, i.e.
  for every rollup row (one luminaire in one local day, or in one hour) the luminaire's rated
  power (its current lamp type) times the dark time of that day or hour: the part of it
  between a sunset and the next sunrise (``schedules.sun``: the sun's upper limb on the
  horizon with standard refraction, as almanacs give them). A luminaire counts only in the
  days (hours) it has a rollup row, i.e. in which it reported; a luminaire that did not
  report has neither energy nor baseline, so missing data never shows as savings. Dark time
  after the moment of the request does not count (tonight's darkness is not a saving yet).
* **savings** = baseline - energy (negative when lamps burned more than the baseline, e.g.
  day burners); **savings_pct** = savings / baseline x 100 (``None`` when the baseline is 0).
* **co2_kg** = energy in kWh x the grid factor (tCO2/MWh = kg/kWh); **cost_vnd** = energy in
  kWh x the tariff (``settings.energy``).

Rounding, on output only: kWh and kg to 3 decimals (Wh, g), percent to 1, hours to 2, VND to
whole dong.

Keys: ``ward`` and ``gateway`` on day/month periods are the ones copied into
``energy_daily`` when the energy was recorded (true to where it was used); ``energy_hourly``
has no such copy, so hourly reports take the luminaire's current ward and gateway. ``group``
sums each group's current members (a luminaire in two groups counts in both).
"""

from __future__ import annotations

import asyncio
import calendar
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field
from sqlalchemy import (
    Date,
    Float,
    Integer,
    column,
    literal,
    union_all,
    values,
)
from sqlalchemy import select as core_select
from sqlalchemy.sql import Select
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.energy import co2_kg
from controller.errors import FieldProblem, InvalidInput
from controller.inventory import group_condition
from controller.schemas import Page, _Out
from controller.settings import EnergySettings
from controller.tables import (
    EnergyDaily,
    EnergyHourly,
    Gateway,
    LampType,
    Luminaire,
    LuminaireGroup,
)
from schedules.sun import Site, SunStatus, compute_sun_events

MAX_HOUR_RANGE_DAYS = 93
"""Longest range an hourly report covers (about a quarter: 2,232 rows per key)."""
MAX_DATE_RANGE_DAYS = 3660
"""Longest range a daily or monthly report covers (ten years)."""
EARLIEST = date(2000, 1, 1)
LATEST = date(2199, 12, 31)
"""Dates outside these are refused: no energy is recorded there, and at the ends of the
calendar a local midnight has no UTC instant."""


class Interval(StrEnum):
    """How long one period of the report is."""

    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


class GroupBy(StrEnum):
    """What one row of a period sums over."""

    TOTAL = "total"
    WARD = "ward"
    GROUP = "group"
    GATEWAY = "gateway"
    LUMINAIRE = "luminaire"


class EnergyRow(_Out):
    """One period and one key. Field names are stable: the IOC's dashboards depend on them."""

    period: str = Field(description="2026-06-21T18:00+07:00 (hour), 2026-06-21 (day), 2026-06")
    period_start: datetime = Field(description="Start of the period covered (local time)")
    period_end: datetime = Field(description="End of the period covered, exclusive (local)")
    key: str = Field(description="'all', the ward, or the group / gateway / luminaire id")
    name: str | None = Field(description="The site, ward, group, gateway or luminaire name")
    energy_kwh: float
    baseline_kwh: float = Field(description="Same luminaires at 100 % from sunset to sunrise")
    savings_kwh: float = Field(description="baseline_kwh - energy_kwh")
    savings_pct: float | None = Field(description="savings / baseline x 100; null if no baseline")
    co2_kg: float = Field(description="energy_kwh x grid factor (kg CO2)")
    cost_vnd: int = Field(description="energy_kwh x tariff, whole VND, VAT excluded")
    burning_hours: float = Field(description="Lamp-hours lit, summed over the luminaires")
    luminaires: int = Field(description="Luminaires that reported in the period")


FIELDS: tuple[str, ...] = tuple(EnergyRow.model_fields)
"""The CSV header, in this order: the same names as the JSON rows."""


class EnergyReport(Page[EnergyRow]):
    """One page of report rows, ordered by period then key, with what they were computed with."""

    model_config = ConfigDict(populate_by_name=True)

    interval: Interval
    group_by: GroupBy
    from_: str = Field(alias="from", description="The range start as understood")
    to: str = Field(description="The range end as understood")
    timezone: str
    co2_t_per_mwh: float
    tariff_vnd_per_kwh: float


@dataclass(frozen=True, slots=True)
class ReportRange:
    """A validated range: ``start``..``end`` (aware, end exclusive) and, for day/month, days."""

    interval: Interval
    start: datetime
    end: datetime
    first_day: date | None = None
    last_day: date | None = None

    def echo(self, tz: ZoneInfo) -> tuple[str, str]:
        """The range as the report states it back."""
        if self.first_day is not None and self.last_day is not None:
            return self.first_day.isoformat(), self.last_day.isoformat()
        return (
            self.start.astimezone(tz).isoformat(timespec="seconds"),
            self.end.astimezone(tz).isoformat(timespec="seconds"),
        )


# --- range parsing ---------------------------------------------------------------------------


_Moment = TypeVar("_Moment", date, datetime)


def _problem(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", [FieldProblem(f"{field} (query)", message)])


def _parse_day(text: str, field: str, *, month_end: bool) -> date:
    text = text.strip()
    try:
        if len(text) == 7:  # YYYY-MM
            first = date.fromisoformat(f"{text}-01")
            if not month_end:
                return first
            return first.replace(day=calendar.monthrange(first.year, first.month)[1])
        return date.fromisoformat(text)
    except ValueError:
        raise _problem(field, f"{text!r} is not a local date (YYYY-MM-DD or YYYY-MM)") from None


def _parse_instant(text: str, field: str, tz: ZoneInfo) -> datetime:
    text = text.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _problem(
            field,
            f"{text!r} is not an ISO 8601 instant (2026-06-21T18:00:00+07:00; "
            "send '+' as %2B; without an offset the site's local time is meant)",
        ) from None
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def _in_calendar(value: _Moment, field: str) -> _Moment:
    day = value.date() if isinstance(value, datetime) else value
    if not EARLIEST <= day <= LATEST:
        raise _problem(field, f"must be between {EARLIEST} and {LATEST}")
    return value


def parse_range(interval: Interval, from_text: str, to_text: str, tz: ZoneInfo) -> ReportRange:
    """Validate ``from``/``to`` for ``interval``; :class:`InvalidInput` names the field.

    hour: instants, ``from`` inclusive and ``to`` exclusive, at most
    :data:`MAX_HOUR_RANGE_DAYS` apart. day/month: local dates, both inclusive (``YYYY-MM``
    is the whole month), at most :data:`MAX_DATE_RANGE_DAYS` days.
    """
    if interval is Interval.HOUR:
        start = _in_calendar(_parse_instant(from_text, "from", tz), "from")
        end = _in_calendar(_parse_instant(to_text, "to", tz), "to")
        if end <= start:
            raise _problem("to", "must be after from (to is exclusive for hourly reports)")
        if end - start > timedelta(days=MAX_HOUR_RANGE_DAYS):
            raise _problem(
                "to",
                f"an hourly report covers at most {MAX_HOUR_RANGE_DAYS} days; "
                "use interval=day or month for longer ranges",
            )
        return ReportRange(interval, start.astimezone(UTC), end.astimezone(UTC))
    first = _in_calendar(_parse_day(from_text, "from", month_end=False), "from")
    last = _in_calendar(_parse_day(to_text, "to", month_end=True), "to")
    if last < first:
        raise _problem("to", "must not be before from")
    if (last - first).days + 1 > MAX_DATE_RANGE_DAYS:
        raise _problem("to", f"a report covers at most {MAX_DATE_RANGE_DAYS} days")
    return ReportRange(
        interval,
        _local_midnight(first, tz).astimezone(UTC),
        _local_midnight(last + timedelta(days=1), tz).astimezone(UTC),
        first,
        last,
    )


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


# --- dark time (pure) ------------------------------------------------------------------------


def dark_intervals(site: Site, day: date) -> list[tuple[datetime, datetime]]:
    """The parts of local ``day`` between a sunset and the next sunrise, in UTC.

    Ordinary day: midnight to sunrise, and sunset to midnight. Polar night: the whole day;
    polar day: nothing. Near a polar season a date may hold a sunset but no sunrise (dark
    from sunset on) or the reverse, or a sunset before the sunrise (dark in between).
    """
    tz = site.tzinfo
    start = _local_midnight(day, tz).astimezone(UTC)
    end = _local_midnight(day + timedelta(days=1), tz).astimezone(UTC)
    events = compute_sun_events(site, day)
    rise = None if events.sunrise is None else events.sunrise.astimezone(UTC)
    sets = None if events.sunset is None else events.sunset.astimezone(UTC)
    if rise is None and sets is None:
        return [(start, end)] if events.status is SunStatus.POLAR_NIGHT else []
    if rise is not None and sets is not None and sets < rise:
        return [(sets, rise)]
    out: list[tuple[datetime, datetime]] = []
    if rise is not None:
        out.append((start, rise))
    if sets is not None:
        out.append((sets, end))
    return out


def dark_seconds(site: Site, start: datetime, end: datetime) -> float:
    """Seconds of ``start``..``end`` (aware, end exclusive) between sunset and sunrise."""
    if end <= start:
        return 0.0
    tz = site.tzinfo
    day = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    total = 0.0
    while day <= last:
        for a, b in dark_intervals(site, day):
            overlap = (min(b, end) - max(a, start)).total_seconds()
            if overlap > 0:
                total += overlap
        day += timedelta(days=1)
    return total


@dataclass(frozen=True, slots=True)
class _Bucket:
    label: str
    start: datetime  # aware UTC
    end: datetime


def _date_buckets(
    site: Site, rng: ReportRange, now: datetime | None
) -> tuple[list[_Bucket], list[tuple[date, int, float]]]:
    """Buckets of a day/month report, and (day, bucket index, dark seconds) for every day.

    Dark time after ``now`` does not count: today's darkness still to come is no saving.
    """
    assert rng.first_day is not None and rng.last_day is not None
    tz = site.tzinfo
    buckets: list[_Bucket] = []
    days: list[tuple[date, int, float]] = []
    index: dict[str, int] = {}
    day = rng.first_day
    while day <= rng.last_day:
        label = day.isoformat() if rng.interval is Interval.DAY else day.strftime("%Y-%m")
        day_start = _local_midnight(day, tz).astimezone(UTC)
        day_end = _local_midnight(day + timedelta(days=1), tz).astimezone(UTC)
        if label not in index:
            index[label] = len(buckets)
            buckets.append(_Bucket(label, day_start, day_end))
        else:
            previous = buckets[index[label]]
            buckets[index[label]] = _Bucket(label, previous.start, day_end)
        dark_end = day_end if now is None else min(day_end, now)
        days.append((day, index[label], dark_seconds(site, day_start, dark_end)))
        day += timedelta(days=1)
    return buckets, days


# --- SQL -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Aggregate:
    bucket: Any
    key: Any
    energy_wh: float
    burning_s: float
    baseline_factor: float  # Wh*3600 (day/month: rated W x dark s) or W (hour: rated W)
    luminaires: int


def _membership(groups: Sequence[LuminaireGroup]) -> Any:
    """(group_id, luminaire_id) for every group's current members, as a subquery."""
    parts: list[Any] = [
        core_select(
            literal(g.id, Integer).label("group_id"), col(Luminaire.id).label("luminaire_id")
        ).where(group_condition(g))
        for g in groups
    ]
    return union_all(*parts).subquery("membership")


def _keyed(
    stmt: Select[Any],
    group_by: GroupBy,
    luminaire_id: Any,
    ward_or_gateway: Any,
    groups: Sequence[LuminaireGroup],
) -> tuple[Select[Any], Any]:
    """The key column (``None`` for total), joining the group membership when needed.

    ``ward_or_gateway`` is the column to key on for ``ward`` and ``gateway``.
    """
    if group_by is GroupBy.TOTAL:
        return stmt, None
    if group_by is GroupBy.LUMINAIRE:
        return stmt, luminaire_id
    if group_by is GroupBy.GROUP:
        members = _membership(groups)
        return stmt.join(members, members.c.luminaire_id == luminaire_id), members.c.group_id
    return stmt, ward_or_gateway


async def _aggregate(
    session: AsyncSession,
    stmt: Select[Any],
    bucket: Any,
    key: Any,
    measures: list[Any],
    limit: int,
    offset: int,
) -> tuple[list[_Aggregate], int]:
    """Group ``stmt`` by (bucket, key), one page of it, and the number of groups."""
    key_col = key if key is not None else literal("all")
    grouping = [bucket] if key is None else [bucket, key]
    paged = (
        stmt.with_only_columns(
            bucket.label("bucket"),
            key_col.label("key"),
            *measures,
            func.count().over().label("total_rows"),
        )
        .group_by(*grouping)
        .order_by(*grouping)
        .limit(limit)
        .offset(offset)
    )
    rows = (await session.exec(paged)).all()  # type: ignore[call-overload]
    if rows:
        total = int(rows[0][-1])
    else:  # past the last page: count the groups alone
        counted = stmt.with_only_columns(bucket.label("bucket"), key_col.label("key")).group_by(
            *grouping
        )
        total = (await session.exec(select(func.count()).select_from(counted.subquery()))).one()
    out = [
        _Aggregate(r[0], r[1], float(r[2] or 0), float(r[3] or 0), float(r[4] or 0), int(r[5]))
        for r in rows
    ]
    return out, total


async def _names(
    session: AsyncSession, group_by: GroupBy, keys: set[Any], site_name: str
) -> dict[Any, str | None]:
    if group_by is GroupBy.TOTAL:
        return {"all": site_name}
    if group_by is GroupBy.WARD:
        return {k: k for k in keys}
    table: Any = {
        GroupBy.GATEWAY: Gateway,
        GroupBy.LUMINAIRE: Luminaire,
        GroupBy.GROUP: LuminaireGroup,
    }[group_by]
    if not keys:
        return {}
    rows = (await session.exec(select(table.id, table.name).where(table.id.in_(keys)))).all()
    return {row[0]: row[1] for row in rows}


def _row(
    bucket: _Bucket,
    key: Any,
    name: str | None,
    agg: _Aggregate,
    baseline_wh: float,
    energy: EnergySettings,
    tz: ZoneInfo,
) -> EnergyRow:
    energy_wh = agg.energy_wh
    savings_wh = baseline_wh - energy_wh
    kwh = energy_wh / 1000.0
    return EnergyRow(
        period=bucket.label,
        period_start=bucket.start.astimezone(tz),
        period_end=bucket.end.astimezone(tz),
        key=str(key),
        name=name,
        energy_kwh=round(kwh, 3),
        baseline_kwh=round(baseline_wh / 1000.0, 3),
        savings_kwh=round(savings_wh / 1000.0, 3),
        savings_pct=round(savings_wh / baseline_wh * 100.0, 1) if baseline_wh > 0 else None,
        co2_kg=round(co2_kg(energy_wh, energy.co2_t_per_mwh), 3),
        cost_vnd=round(kwh * energy.tariff_vnd_per_kwh),
        burning_hours=round(agg.burning_s / 3600.0, 2),
        luminaires=agg.luminaires,
    )


@dataclass(frozen=True, slots=True)
class _Request:
    site: Site
    energy: EnergySettings
    rng: ReportRange
    group_by: GroupBy
    groups: Sequence[LuminaireGroup]
    limit: int
    offset: int
    now: datetime | None


async def energy_report(
    *,
    session: AsyncSession,
    site: Site,
    energy: EnergySettings,
    rng: ReportRange,
    group_by: GroupBy,
    limit: int,
    offset: int,
    now: datetime | None = None,
) -> EnergyReport:
    """One page of the report for ``rng`` (see the module doc for every definition).

    With ``now``, the baseline counts dark time only up to ``now``, so a period still under
    way is compared with the darkness that has passed, not with the whole night.
    """
    groups: list[LuminaireGroup] = []
    if group_by is GroupBy.GROUP:
        groups = list(
            (await session.exec(select(LuminaireGroup).order_by(col(LuminaireGroup.id)))).all()
        )
    req = _Request(site, energy, rng, group_by, groups, limit, offset, now)
    rows: list[EnergyRow] = []
    total = 0
    if group_by is not GroupBy.GROUP or groups:
        if rng.interval is Interval.HOUR:
            rows, total = await _hourly(session, req)
        else:
            rows, total = await _daily(session, req)
    first, last = rng.echo(site.tzinfo)
    return EnergyReport(
        items=rows,
        total=total,
        limit=limit,
        offset=offset,
        interval=rng.interval,
        group_by=group_by,
        from_=first,
        to=last,
        timezone=site.timezone,
        co2_t_per_mwh=energy.co2_t_per_mwh,
        tariff_vnd_per_kwh=energy.tariff_vnd_per_kwh,
    )


async def _daily(session: AsyncSession, req: _Request) -> tuple[list[EnergyRow], int]:
    rng, group_by = req.rng, req.group_by
    # Sun events cost about a millisecond per uncached day: off the event loop.
    buckets, days = await asyncio.to_thread(_date_buckets, req.site, rng, req.now)
    nights = (
        values(
            column("day", Date), column("bucket", Integer), column("dark_s", Float), name="nights"
        )
        .data(days)
        .cte("nights")
    )
    # Months: first per luminaire (and ward or gateway, as booked) and month, reading the big
    # table with no join but the small calendar, then per key with the rated power. Days: one
    # step, as a rollup row already is one luminaire and one day.
    e = EnergyDaily
    booked = {GroupBy.WARD: col(e.ward), GroupBy.GATEWAY: col(e.gateway_id)}.get(group_by)
    keys = [col(e.luminaire_id).label("lid"), nights.c.bucket.label("bucket")]
    if booked is not None:
        keys.append(booked.label("booked"))
    month = rng.interval is Interval.MONTH
    sums = [
        (func.sum(e.energy_wh) if month else col(e.energy_wh)).label("energy_wh"),
        (func.sum(e.burning_s) if month else col(e.burning_s)).label("burning_s"),
        (func.sum(nights.c.dark_s) if month else nights.c.dark_s).label("dark_s"),
    ]
    inner_stmt = (
        core_select(*keys, *sums)
        .join(nights, nights.c.day == col(e.day))
        .where(col(e.day) >= rng.first_day, col(e.day) <= rng.last_day)
    )
    inner = (inner_stmt.group_by(*keys) if month else inner_stmt).subquery("per_luminaire")
    stmt = (
        core_select(inner.c.lid)
        .join(Luminaire, col(Luminaire.id) == inner.c.lid)
        .join(LampType, col(LampType.id) == col(Luminaire.lamp_type_id))
    )
    stmt, key = _keyed(
        stmt, group_by, inner.c.lid, inner.c.booked if booked is not None else None, req.groups
    )
    measures = [
        func.sum(inner.c.energy_wh),
        func.sum(inner.c.burning_s),
        func.sum(col(LampType.rated_power_w) * inner.c.dark_s),
        func.count(),  # one inner row per luminaire and key
    ]
    aggs, total = await _aggregate(
        session, stmt, inner.c.bucket, key, measures, req.limit, req.offset
    )
    names = await _names(session, group_by, {a.key for a in aggs}, req.site.name)
    tz = req.site.tzinfo
    return [
        _row(buckets[a.bucket], a.key, names.get(a.key), a, a.baseline_factor / 3600.0,
             req.energy, tz)
        for a in aggs
    ], total  # fmt: skip


async def _hourly(session: AsyncSession, req: _Request) -> tuple[list[EnergyRow], int]:
    h = EnergyHourly
    base = (
        core_select(col(h.luminaire_id))
        .join(Luminaire, col(Luminaire.id) == col(h.luminaire_id))
        .join(LampType, col(LampType.id) == col(Luminaire.lamp_type_id))
        .where(col(h.hour) >= req.rng.start, col(h.hour) < req.rng.end)
    )
    current = {GroupBy.WARD: col(Luminaire.ward), GroupBy.GATEWAY: col(Luminaire.gateway_id)}
    stmt, key = _keyed(
        base, req.group_by, col(h.luminaire_id), current.get(req.group_by), req.groups
    )
    measures = [
        func.sum(h.energy_wh),
        func.sum(h.burning_s),
        func.sum(LampType.rated_power_w),
        func.count(),  # one row per luminaire and hour
    ]
    aggs, total = await _aggregate(session, stmt, col(h.hour), key, measures, req.limit, req.offset)
    names = await _names(session, req.group_by, {a.key for a in aggs}, req.site.name)
    tz = req.site.tzinfo
    hours = sorted({_as_utc(a.bucket) for a in aggs})

    def dark_of_hours() -> dict[datetime, float]:
        out = {}
        for hour in hours:
            end = hour + timedelta(hours=1)
            out[hour] = dark_seconds(req.site, hour, end if req.now is None else min(end, req.now))
        return out

    dark = await asyncio.to_thread(dark_of_hours)
    rows = []
    for a in aggs:
        hour = _as_utc(a.bucket)
        label = hour.astimezone(tz).isoformat(timespec="minutes")
        bucket = _Bucket(label, hour, hour + timedelta(hours=1))
        baseline_wh = a.baseline_factor * dark[hour] / 3600.0
        rows.append(_row(bucket, a.key, names.get(a.key), a, baseline_wh, req.energy, tz))
    return rows, total


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- CSV -------------------------------------------------------------------------------------


def to_csv(report: EnergyReport) -> str:
    """The report's rows as CSV: a header with :data:`FIELDS`, ``\\r\\n`` line ends (RFC 4180)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    for row in report.items:
        data = row.model_dump(mode="json")
        writer.writerow(["" if data[f] is None else data[f] for f in FIELDS])
    return out.getvalue()
