"""The monthly energy rollup: ``energy_monthly``, summed from ``energy_daily`` for long reports.

A year of ``energy_daily`` at 10,000 luminaires is 3.65 million rows, and a month x ward
report over it reads them all (seconds). ``energy_monthly`` holds the same sums per
luminaire, month, ward and gateway (about 10,000 rows a month), and
:mod:`controller.energy.report` reads a month from it whenever that gives the same figures.

``energy_monthly_state`` records, per month, which days its rows cover
(``month``..``through_day``), the dark seconds of those days and the site they were
computed for, and whether a later telemetry write made them ``stale``. A report uses a
month's rows only when they are not stale, were computed for the current site, and cover
exactly the month's days in the range (all of them up to ``through_day``, none after the
request's ``now``); every other day is read from ``energy_daily``. So reports never
depend on this job having run: without it they are as slow as before, never different.

Keeping it current:

* :func:`close_months` (nightly from the controller's housekeeping, leader only;
  ``streetlight db rollup`` by hand) rebuilds every month from the first one in
  ``energy_daily`` to the current one whose rows are missing, stale, computed for another
  site, or do not reach their target: the month's last day for a closed month, yesterday
  for the current one (nothing on the 1st). A rebuild is one transaction per month:
  ``DELETE`` the month's rows, ``INSERT ... SELECT ... GROUP BY`` from ``energy_daily``
  (energy, burning and covered seconds), record the state with the days' dark seconds
  (sun events, computed here). Running it again changes nothing; a night's run rebuilds the
  current month (about 0.3 million daily rows) and, on the 1st, closes the previous one.
* The telemetry writer calls :func:`mark_stale` in the transaction that books energy, so a
  late row for a day already summed (a batch retried after an outage) marks its month stale
  at once, and the next run rebuilds it.
* While it reads ``energy_daily``, a rebuild holds a ``SHARE ROW EXCLUSIVE`` lock on it
  (PostgreSQL) or the database's write lock (SQLite), so a telemetry write lands either
  before (and is summed) or after (and finds the state it has to mark stale), never in
  between; two rollups (the night's and one by hand) take turns.
* Rows written to ``energy_daily`` other than by the telemetry writer (a hand fix, a bulk
  load) do not mark anything stale: run ``streetlight db rollup --rebuild`` after one.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    Table,
    and_,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.energy.coverage import local_midnight
from controller.energy.report import dark_seconds, site_key
from controller.store.db import Database
from controller.store.tables import EnergyDaily, EnergyMonthly, EnergyMonthlyState
from schedules.sun import Site

log = logging.getLogger(__name__)

_DAILY: Table = EnergyDaily.__table__  # type: ignore[attr-defined]
_MONTHLY: Table = EnergyMonthly.__table__  # type: ignore[attr-defined]
_STATE: Table = EnergyMonthlyState.__table__  # type: ignore[attr-defined]


def month_end(month: date) -> date:
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def next_month(month: date) -> date:
    return month_end(month) + timedelta(days=1)


def targets(first_day: date, today: date) -> dict[date, date]:
    """Month -> the last day its rollup should cover, from ``first_day``'s month to today's.

    A closed month (before today's) covers all its days; the current one the days before
    today, which are complete (nothing on the 1st). Pure.
    """
    out: dict[date, date] = {}
    current = today.replace(day=1)
    month = first_day.replace(day=1)
    while month < current:
        out[month] = month_end(month)
        month = next_month(month)
    if month == current and today.day > 1:
        out[current] = today - timedelta(days=1)
    return out


@dataclass(frozen=True, slots=True)
class MonthState:
    """What ``energy_monthly_state`` says about a month's rollup rows."""

    through_day: date
    site: str
    stale: bool


def due(state: MonthState | None, through_day: date, site: str) -> bool:
    """Whether a month's rollup has to be rebuilt to cover up to ``through_day``."""
    return state is None or state.stale or state.site != site or state.through_day != through_day


@dataclass(slots=True)
class RollupRun:
    """What :func:`close_months` did: the months rebuilt and the rows written."""

    months: list[date] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0


async def close_months(
    *, db: Database, site: Site, now: datetime, rebuild: bool = False
) -> RollupRun:
    """Bring ``energy_monthly`` up to date at ``now`` (see the module doc); idempotent.

    ``rebuild`` rebuilds every month, e.g. after ``energy_daily`` was changed by hand.
    """
    started = time.perf_counter()
    today = now.astimezone(site.tzinfo).date()
    key = site_key(site)
    async with db.engine.connect() as conn:
        first: date | None = (await conn.execute(select(func.min(_DAILY.c.day)))).scalar()
        known = {
            r.month: MonthState(r.through_day, r.site, bool(r.stale))
            for r in await conn.execute(
                select(_STATE.c.month, _STATE.c.through_day, _STATE.c.site, _STATE.c.stale)
            )
        }
    run = RollupRun()
    if first is not None:
        for month, through in targets(first, today).items():
            if rebuild or due(known.get(month), through, key):
                run.rows += await _rebuild(db, site, month, through, key, now)
                run.months.append(month)
    run.seconds = time.perf_counter() - started
    if run.months:
        log.info(
            "energy rollup: %d month(s) rebuilt (%s), %d rows, %.1f s",
            len(run.months), ", ".join(m.strftime("%Y-%m") for m in run.months), run.rows,
            run.seconds,
        )  # fmt: skip
    return run


async def _rebuild(
    db: Database, site: Site, month: date, through: date, key: str, now: datetime
) -> int:
    """Rebuild one month's rows for days ``month``..``through``; returns the rows written."""
    # Sun events cost about a millisecond per uncached day: off the event loop.
    dark_s = await asyncio.to_thread(
        dark_seconds,
        site,
        local_midnight(month, site).astimezone(UTC),
        local_midnight(through + timedelta(days=1), site).astimezone(UTC),
    )
    d = _DAILY.c
    summed = (
        select(
            d.luminaire_id, literal(month, Date), d.ward, d.gateway_id, func.sum(d.energy_wh),
            func.sum(d.burning_s), func.sum(d.samples), func.count(), func.sum(d.covered_s),
            func.sum(d.covered_dark_s),
        )
        .where(d.day >= month, d.day <= through)
        .group_by(d.luminaire_id, d.ward, d.gateway_id)
    )  # fmt: skip
    columns = [
        "luminaire_id", "month", "ward", "gateway_id", "energy_wh", "burning_s", "samples",
        "days", "covered_s", "covered_dark_s",
    ]  # fmt: skip
    async with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Telemetry writes wait until the state below is committed (see the module doc),
            # and so does another rollup (this mode conflicts with itself); reads do not.
            await conn.execute(text("LOCK TABLE energy_daily IN SHARE ROW EXCLUSIVE MODE"))
        # On SQLite this first write takes the write lock, before energy_daily is read.
        await conn.execute(delete(_MONTHLY).where(_MONTHLY.c.month == month))
        await conn.execute(insert(_MONTHLY).from_select(columns, summed))
        # (the rowcount of INSERT ... SELECT is not reliable across drivers)
        m = _MONTHLY.c
        counted = select(func.count(), func.count(m.luminaire_id.distinct())).where(
            m.month == month
        )
        rows, luminaires = (await conn.execute(counted)).one()
        state = {
            "month": month, "through_day": through, "site": key, "stale": False,
            "rows": rows, "luminaires": luminaires, "dark_s": dark_s,
            "built_at": now.astimezone(UTC),
        }  # fmt: skip
        maker: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        upsert = maker(_STATE).values(state)
        await conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["month"],
                set_={k: upsert.excluded[k] for k in state if k != "month"},
            )
        )
    return int(rows)


def _first_day_per_month(days: Iterable[date]) -> Mapping[date, date]:
    first: dict[date, date] = {}
    for day in days:
        month = day.replace(day=1)
        if month not in first or day < first[month]:
            first[month] = day
    return first


async def mark_stale(conn: AsyncConnection, days: Iterable[date]) -> None:
    """Mark stale the months whose rollup already covers one of ``days``.

    Called by the telemetry writer in the transaction that books energy on ``days``. Usually
    a no-op: the rows of a batch are for today, after every rollup's ``through_day``.
    """
    first = _first_day_per_month(days)
    if not first:
        return
    s = _STATE.c
    await conn.execute(
        update(_STATE)
        .where(
            or_(*(and_(s.month == m, s.through_day >= d) for m, d in first.items())),
            s.stale.is_(false()),
        )
        .values(stale=True)
    )
