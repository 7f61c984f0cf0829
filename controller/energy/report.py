"""Energy reports for the IOC: energy, baseline, savings, CO2 and cost per period and key.

Served from the rollups, aggregated in SQL (``GROUP BY`` period and key, paginated in SQL):

* ``day`` and ``month`` periods from ``energy_daily`` (local days of the site zone);
  ``month`` periods take the days ``energy_monthly`` already sums from there instead
  (:mod:`controller.energy.rollup`: closed months, and the current one up to yesterday,
  when the nightly rollup is current), which gives the same figures from about 30 times
  fewer rows;
* ``hour`` periods from ``energy_hourly`` (UTC hours, shown in local time).

Definitions (docs/ioc.md has the long version):

* **energy**: what the luminaires' counters (or integrated power) booked into the rollups.
* **baseline**: the same luminaires at 100 % of their rated power from sunset to sunrise, over
  the time telemetry covered: for every rollup row (one luminaire in one local day, or in one
  hour) the luminaire's rated power (its current lamp type) times the row's
  ``covered_dark_s``, the dark part (``schedules.sun``: between a sunset and the next
  sunrise, upper limb on the horizon with standard refraction, as almanacs give them) of the
  time its consecutive readings covered (:mod:`controller.energy.coverage`). Time nobody
  measured (before a controller started, a gateway offline, before a luminaire was
  installed, tonight still to come) is never a saving.
* **coverage** = covered dark seconds / (the period's dark seconds up to ``now`` x the
  luminaires in the inventory for the key today), at most 1: how much of the full baseline
  the row's baseline is.
* **savings** = baseline - energy (negative when lamps burned more than the baseline, e.g.
  day burners); **savings_pct** = savings / baseline x 100 (``None`` when the baseline is 0).
* **co2_kg** = energy in kWh x the grid factor (tCO2/MWh = kg/kWh); **cost_vnd** = energy in
  kWh x the tariff (``settings.energy``).

Rounding, on output only: kWh and kg to 3 decimals (Wh, g), percent to 1, burning hours to 2,
the other hours and coverage to 3, VND to whole dong.

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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field
from sqlalchemy import (
    Date,
    Integer,
    and_,
    column,
    literal,
    or_,
    union_all,
    values,
)
from sqlalchemy import select as core_select
from sqlalchemy.sql import Select
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.config.settings import EnergySettings
from controller.core.errors import FieldProblem, InvalidInput
from controller.core.page import Page
from controller.energy.accounting import co2_kg
from controller.energy.coverage import dark_intervals, overlap_s
from controller.inventory.data import group_condition
from controller.inventory.schemas import _Out
from controller.store.tables import (
    EnergyDaily,
    EnergyHourly,
    EnergyMonthly,
    EnergyMonthlyState,
    GatewayRow,
    LampTypeRow,
    Luminaire,
    LuminaireGroup,
)
from schedules.sun import Site

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
    baseline_kwh: float = Field(
        description="Same luminaires at 100 % from sunset to sunrise, over the dark time "
        "telemetry covered (see coverage)"
    )
    savings_kwh: float = Field(description="baseline_kwh - energy_kwh")
    savings_pct: float | None = Field(description="savings / baseline x 100; null if no baseline")
    co2_kg: float = Field(description="energy_kwh x grid factor (kg CO2)")
    cost_vnd: int = Field(description="energy_kwh x tariff, whole VND, VAT excluded")
    burning_hours: float = Field(description="Lamp-hours lit, summed over the luminaires")
    luminaires: int = Field(description="Luminaires that reported in the period")
    luminaires_inventory: int = Field(
        description="Luminaires in the inventory for this key now (ward, gateway and group as "
        "they are today)"
    )
    covered_hours: float = Field(
        description="Luminaire-hours telemetry covered (readings at most "
        "energy.coverage_max_gap_s apart), day and night"
    )
    covered_dark_hours: float = Field(
        description="The dark part of covered_hours: baseline_kwh is rated power x this"
    )
    dark_hours: float = Field(
        description="Hours of the period between sunset and sunrise, up to now"
    )
    coverage: float | None = Field(
        description="covered_dark_hours / (dark_hours x luminaires_inventory), at most 1: the "
        "share of the whole inventory's dark time that baseline_kwh covers; null when that "
        "is 0"
    )


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


def dark_seconds(site: Site, start: datetime, end: datetime) -> float:
    """Seconds of ``start``..``end`` (aware, end exclusive) between sunset and sunrise."""
    if end <= start:
        return 0.0
    tz = site.tzinfo
    day = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    total = 0.0
    while day <= last:
        total += overlap_s(dark_intervals(site, day), start, end)
        day += timedelta(days=1)
    return total


@dataclass(frozen=True, slots=True)
class _Bucket:
    label: str
    start: datetime  # aware UTC
    end: datetime


def _date_buckets(
    site: Site, rng: ReportRange
) -> tuple[dict[date, _Bucket], list[tuple[date, date]]]:
    """Buckets of a day/month report by their key (the day, or the month's first day), and
    (day, bucket key) for every day of the range."""
    assert rng.first_day is not None and rng.last_day is not None
    tz = site.tzinfo
    buckets: dict[date, _Bucket] = {}
    days: list[tuple[date, date]] = []
    first = rng.first_day
    while first <= rng.last_day:
        if rng.interval is Interval.DAY:
            key, last, label = first, first, first.isoformat()
        else:
            key, label = first.replace(day=1), first.strftime("%Y-%m")
            month_end = first.replace(day=calendar.monthrange(first.year, first.month)[1])
            last = min(month_end, rng.last_day)
        start = _local_midnight(first, tz).astimezone(UTC)
        end = _local_midnight(last + timedelta(days=1), tz).astimezone(UTC)
        buckets[key] = _Bucket(label, start, end)
        days.extend((first + timedelta(days=n), key) for n in range((last - first).days + 1))
        first = last + timedelta(days=1)
    return buckets, days


def site_key(site: Site) -> str:
    """What dark seconds depend on: position, elevation, zone and the sunrise/sunset
    horizon (``site.horizon_dip``), not the site's name."""
    return (
        f"{site.latitude!r},{site.longitude!r},{site.elevation_m!r},{site.timezone},"
        f"{site.horizon_deg!r}"
    )


# --- SQL -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Aggregate:
    bucket: Any
    key: Any
    energy_wh: float
    burning_s: float
    baseline_ws: float  # rated W x covered dark s, summed over the luminaires
    luminaires: int
    covered_s: float
    covered_dark_s: float


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
    return [_aggregate_of(r) for r in rows], total


def _aggregate_of(r: Sequence[Any]) -> _Aggregate:
    """(bucket, key, energy, burning, baseline W s, luminaires, covered s, covered dark s)."""
    return _Aggregate(
        r[0], r[1], float(r[2] or 0), float(r[3] or 0), float(r[4] or 0), int(r[5]),
        float(r[6] or 0), float(r[7] or 0),
    )  # fmt: skip


async def _inventory(session: AsyncSession, req: _Request, keys: set[Any]) -> dict[Any, int]:
    """Luminaires in the inventory now, per key of ``keys`` (ward, gateway, group as today)."""
    lid = col(Luminaire.id)
    if req.group_by is GroupBy.LUMINAIRE:
        return dict.fromkeys(keys, 1)
    if not keys:
        return {}
    stmt: Any
    if req.group_by is GroupBy.TOTAL:
        stmt = select(literal("all"), func.count(lid))
    elif req.group_by is GroupBy.GROUP:
        members = _membership(req.groups)
        stmt = select(members.c.group_id, func.count()).group_by(members.c.group_id)
    else:
        column_ = col(Luminaire.ward) if req.group_by is GroupBy.WARD else col(Luminaire.gateway_id)
        stmt = select(column_, func.count(lid)).where(column_.in_(keys)).group_by(column_)
    return {row[0]: int(row[1]) for row in (await session.exec(stmt)).all()}


async def _names(
    session: AsyncSession, group_by: GroupBy, keys: set[Any], site_name: str
) -> dict[Any, str | None]:
    if group_by is GroupBy.TOTAL:
        return {"all": site_name}
    if group_by is GroupBy.WARD:
        return {k: k for k in keys}
    table: Any = {
        GroupBy.GATEWAY: GatewayRow,
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
    *,
    dark_s: float,
    inventory: int,
    energy: EnergySettings,
    tz: ZoneInfo,
) -> EnergyRow:
    """One row; ``dark_s`` is the bucket's dark time so far, ``inventory`` the key's count."""
    energy_wh = agg.energy_wh
    baseline_wh = agg.baseline_ws / 3600.0
    savings_wh = baseline_wh - energy_wh
    possible_s = dark_s * inventory
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
        luminaires_inventory=inventory,
        covered_hours=round(agg.covered_s / 3600.0, 3),
        covered_dark_hours=round(agg.covered_dark_s / 3600.0, 3),
        dark_hours=round(dark_s / 3600.0, 3),
        coverage=round(min(1.0, agg.covered_dark_s / possible_s), 3) if possible_s > 0 else None,
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
    monthly: bool


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
    monthly: bool = True,
) -> EnergyReport:
    """One page of the report for ``rng`` (see the module doc for every definition).

    With ``now``, a row's dark hours (coverage's denominator) stop at ``now``, so a period
    still under way is measured against the darkness that has passed.
    ``monthly=False`` reads ``energy_daily`` only (the same figures, slower: for comparisons).
    """
    groups: list[LuminaireGroup] = []
    if group_by is GroupBy.GROUP:
        groups = list(
            (await session.exec(select(LuminaireGroup).order_by(col(LuminaireGroup.id)))).all()
        )
    req = _Request(site, energy, rng, group_by, groups, limit, offset, now, monthly)
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
    buckets, days = _date_buckets(req.site, req.rng)
    rollup = req.monthly and req.rng.interval is Interval.MONTH
    for _attempt in range(3):
        covered = await _rolled_up(session, req) if rollup else {}
        aggs, total = await _date_aggregates(session, req, days, covered)
        # A rollup committed between the two reads could make a day count twice or not at
        # all; the state tells (every rebuild or stale mark changes it). Rare: plan again.
        if not covered or await _rolled_up(session, req) == covered:
            break
    else:
        covered = {}
        aggs, total = await _date_aggregates(session, req, days, covered)
    keys = {a.key for a in aggs}
    names = await _names(session, req.group_by, keys, req.site.name)
    inventory = await _inventory(session, req, keys)
    tz = req.site.tzinfo
    page = {a.bucket: buckets[a.bucket] for a in aggs}

    def dark_of_buckets() -> dict[Any, float]:
        """Dark seconds so far per bucket; a rolled-up month's days from its state (the
        same sum: whole seconds), so those need no sun events."""
        out = {}
        for k, b in page.items():
            end = b.end if req.now is None else min(b.end, req.now)
            rolled = covered.get(k)
            if rolled is None:
                out[k] = dark_seconds(req.site, b.start, end)
            else:
                after = _local_midnight(rolled.through_day + timedelta(days=1), tz)
                out[k] = rolled.dark_s + dark_seconds(req.site, after.astimezone(UTC), end)
        return out

    # Sun events cost about a millisecond per uncached day: off the event loop.
    dark = await asyncio.to_thread(dark_of_buckets)
    return [
        _row(buckets[a.bucket], a.key, names.get(a.key), a, dark_s=dark[a.bucket],
             inventory=inventory.get(a.key, 0), energy=req.energy, tz=tz)
        for a in aggs
    ], total  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Rolled:
    """A month of ``energy_monthly`` a report can use: its days up to ``through_day``."""

    through_day: date
    split: bool  # a luminaire has several rows (moved during the month)
    dark_s: float  # of the days month..through_day


async def _rolled_up(session: AsyncSession, req: _Request) -> dict[date, _Rolled]:
    """Months of the range that ``energy_monthly`` can stand in for, by first day.

    A month's rollup rows qualify when they are not stale, were computed for this site, and
    cover only days of the range (from the month's first day) that are over at ``now``;
    its days after ``through_day`` are then read from ``energy_daily``.
    """
    rng = req.rng
    assert rng.first_day is not None and rng.last_day is not None
    s = EnergyMonthlyState
    stmt = core_select(
        col(s.month), col(s.through_day), col(s.rows), col(s.luminaires), col(s.dark_s)
    ).where(
        col(s.month) >= rng.first_day,
        col(s.month) <= rng.last_day,
        col(s.stale).is_(False),
        col(s.site) == site_key(req.site),
    )
    rows = (await session.exec(stmt)).all()  # type: ignore[call-overload]
    tz = req.site.tzinfo
    return {
        month: _Rolled(through, n > luminaires, dark_s)
        for month, through, n, luminaires, dark_s in rows
        if month <= through <= rng.last_day
        and (req.now is None or _local_midnight(through + timedelta(days=1), tz) <= req.now)
    }


def _day_ranges(days: Sequence[date]) -> list[tuple[date, date]]:
    """Consecutive runs of ``days`` (ascending) as (first, last) pairs."""
    out: list[tuple[date, date]] = []
    for day in days:
        if out and out[-1][1] + timedelta(days=1) == day:
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


_BOOKED = frozenset({GroupBy.WARD, GroupBy.GATEWAY})
"""Keys taken from the ward or gateway booked in the rollups, not from the inventory."""


def _per_key(req: _Request, per_luminaire: Any, bucket: Any, *, distinct: bool) -> Select[Any]:
    """(bucket, key, energy, burning, baseline W s, luminaires, covered s, covered dark s)
    grouped by bucket and key.

    ``per_luminaire`` has columns lid, booked (ward or gateway), energy_wh, burning_s,
    covered_s and covered_dark_s, one row per luminaire and bucket unless ``distinct`` (then
    luminaires are counted distinct).
    """
    stmt = (
        core_select(per_luminaire.c.lid)
        .join(Luminaire, col(Luminaire.id) == per_luminaire.c.lid)
        .join(LampTypeRow, col(LampTypeRow.id) == col(Luminaire.lamp_type_id))
    )
    booked = per_luminaire.c.booked if req.group_by in _BOOKED else None
    stmt, key = _keyed(stmt, req.group_by, per_luminaire.c.lid, booked, req.groups)
    grouping = [bucket] if key is None else [bucket, key]
    return stmt.with_only_columns(
        bucket.label("bucket"),
        (literal("all") if key is None else key).label("key"),
        func.sum(per_luminaire.c.energy_wh).label("energy_wh"),
        func.sum(per_luminaire.c.burning_s).label("burning_s"),
        func.sum(col(LampTypeRow.rated_power_w) * per_luminaire.c.covered_dark_s).label("baseline"),
        (func.count(func.distinct(per_luminaire.c.lid)) if distinct else func.count()).label(
            "luminaires"
        ),
        func.sum(per_luminaire.c.covered_s).label("covered_s"),
        func.sum(per_luminaire.c.covered_dark_s).label("covered_dark_s"),
    ).group_by(*grouping)


async def _date_aggregates(
    session: AsyncSession,
    req: _Request,
    days: Sequence[tuple[date, date]],
    covered: dict[date, _Rolled],
) -> tuple[list[_Aggregate], int]:
    """One page of (bucket, key) aggregates: the days ``covered`` from ``energy_monthly``,
    the others from ``energy_daily``, with the same sums either way.

    A month wholly covered is aggregated from its rollup rows alone, grouped on the table's
    own columns (month, then ward: in primary-key order, so SQLite groups without sorting);
    the other buckets from the daily rows (and the rollup rows of a month covered in part).
    """
    group_by = req.group_by
    month = req.rng.interval is Interval.MONTH
    m = EnergyMonthly
    m_booked = {GroupBy.WARD: col(m.ward), GroupBy.GATEWAY: col(m.gateway_id)}.get(group_by)
    last_in_range: dict[date, date] = {key: day for day, key in days}
    whole = {k: r for k, r in covered.items() if r.through_day == last_in_range[k]}
    partial = sorted(k for k in covered if k not in whole)
    parts: list[Select[Any]] = []

    def monthly_rows(months: Sequence[date]) -> Select[Any]:
        columns: list[Any] = [
            col(m.luminaire_id).label("lid"),
            col(m.month).label("bucket"),
            (m_booked if m_booked is not None else literal(None)).label("booked"),
            col(m.energy_wh),
            col(m.burning_s),
            col(m.covered_s),
            col(m.covered_dark_s),
        ]
        return core_select(*columns).where(col(m.month).in_(months))

    for split in (False, True):  # counting distinct luminaires only where one moved
        months = sorted(k for k, r in whole.items() if r.split is split)
        if months:
            rows = monthly_rows(months).subquery("per_luminaire")
            parts.append(_per_key(req, rows, rows.c.bucket, distinct=split))
    uncovered = [t for t in days if not (t[1] in covered and t[0] <= covered[t[1]].through_day)]
    if uncovered:
        # Days: one row per luminaire and day, as a rollup row already is. Months: first per
        # luminaire (and ward or gateway, as booked) and month, reading the big table with
        # no join but the small calendar, then per key with the rated power; not needed
        # when each month has one day left here (typically today, after the rollup's days).
        per_bucket = Counter(key for _day, key in uncovered)
        summed = month and max(per_bucket.values()) > 1
        e = EnergyDaily
        calendar_ = (
            values(column("day", Date), column("bucket", Date), name="calendar")
            .data(list(uncovered))
            .cte("calendar")
        )
        booked = {GroupBy.WARD: col(e.ward), GroupBy.GATEWAY: col(e.gateway_id)}.get(group_by)
        keys = [
            col(e.luminaire_id).label("lid"),
            calendar_.c.bucket.label("bucket"),
            (booked if booked is not None else literal(None)).label("booked"),
        ]
        sums = [
            (func.sum(e.energy_wh) if summed else col(e.energy_wh)).label("energy_wh"),
            (func.sum(e.burning_s) if summed else col(e.burning_s)).label("burning_s"),
            (func.sum(e.covered_s) if summed else col(e.covered_s)).label("covered_s"),
            (func.sum(e.covered_dark_s) if summed else col(e.covered_dark_s)).label(
                "covered_dark_s"
            ),
        ]
        ranges = _day_ranges([t[0] for t in uncovered])
        stmt = (
            core_select(*keys, *sums)
            .join(calendar_, calendar_.c.day == col(e.day))
            .where(or_(*(and_(col(e.day) >= a, col(e.day) <= b) for a, b in ranges)))
        )
        if summed:
            stmt = stmt.group_by(*(k for k in keys if k.name != "booked" or booked is not None))
        both = union_all(stmt, monthly_rows(partial)) if partial else stmt
        rows = both.subquery("per_luminaire")
        parts.append(_per_key(req, rows, rows.c.bucket, distinct=bool(partial)))
    grouped = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("grouped")
    return await _page(session, grouped, req.limit, req.offset)


async def _page(
    session: AsyncSession, grouped: Any, limit: int, offset: int
) -> tuple[list[_Aggregate], int]:
    """One page of ``grouped`` (bucket, key, measures) in (bucket, key) order, and its size."""
    g = grouped.c
    paged = (
        core_select(
            g.bucket, g.key, g.energy_wh, g.burning_s, g.baseline, g.luminaires, g.covered_s,
            g.covered_dark_s, func.count().over().label("total_rows"),
        )
        .order_by(g.bucket, g.key)
        .limit(limit)
        .offset(offset)
    )  # fmt: skip
    rows = (await session.exec(paged)).all()  # type: ignore[call-overload]
    if rows:
        total = int(rows[0][-1])
    else:  # past the last page: count the groups alone
        total = (await session.exec(select(func.count()).select_from(grouped))).one()
    return [_aggregate_of(r) for r in rows], total


async def _hourly(session: AsyncSession, req: _Request) -> tuple[list[EnergyRow], int]:
    h = EnergyHourly
    base = (
        core_select(col(h.luminaire_id))
        .join(Luminaire, col(Luminaire.id) == col(h.luminaire_id))
        .join(LampTypeRow, col(LampTypeRow.id) == col(Luminaire.lamp_type_id))
        .where(col(h.hour) >= req.rng.start, col(h.hour) < req.rng.end)
    )
    current = {GroupBy.WARD: col(Luminaire.ward), GroupBy.GATEWAY: col(Luminaire.gateway_id)}
    stmt, key = _keyed(
        base, req.group_by, col(h.luminaire_id), current.get(req.group_by), req.groups
    )
    measures = [
        func.sum(h.energy_wh),
        func.sum(h.burning_s),
        func.sum(col(LampTypeRow.rated_power_w) * col(h.covered_dark_s)),
        func.count(),  # one row per luminaire and hour
        func.sum(h.covered_s),
        func.sum(h.covered_dark_s),
    ]
    aggs, total = await _aggregate(session, stmt, col(h.hour), key, measures, req.limit, req.offset)
    keys = {a.key for a in aggs}
    names = await _names(session, req.group_by, keys, req.site.name)
    inventory = await _inventory(session, req, keys)
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
        rows.append(
            _row(bucket, a.key, names.get(a.key), a, dark_s=dark[hour],
                 inventory=inventory.get(a.key, 0), energy=req.energy, tz=tz)
        )  # fmt: skip
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
