"""Report benchmark: 10,000 luminaires x 365 days of ``energy_daily``, SQLite and PostgreSQL.

Run: ``python -m bench.reports_bench`` (``--luminaires``, ``--days``, ``--repeats``).
Fills the rollup by bulk insert (executemany on SQLite, COPY on PostgreSQL), runs ANALYZE
as autovacuum would, then runs the nightly monthly rollup
(:func:`controller.energy.rollup.close_months`, as the controller does after the last day:
every month closed) and times :func:`controller.energy.report.energy_report` the way the API
calls it. The headline is the ward x month report over the whole year (target < 100 ms),
read from ``energy_monthly``; each month shape is also timed from ``energy_daily`` alone
(``monthly=False``: the path before the rollup, and the one a report takes for months not
rolled up). Then: the year so far in mid-December (December summed up to yesterday, today
from ``energy_daily``), the fault statistics (``GET /faults/stats``) over a year of faults,
and a one-day hourly report over 30 days of ``energy_hourly``.

"cold" is the first call of a shape (for the first one, sun events are not cached yet:
about 0.7 ms per day); "median" is over the warm calls. On PostgreSQL the headline is
measured again with JIT compilation off (``jit = off``), as PostgreSQL's defaults compile
queries this large.

PostgreSQL is measured when reachable at STREETLIGHT_TEST_PG_DSN (default
postgresql://postgres@127.0.0.1:5432/test); a fresh database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.import_bench import drop_pg, pg_url
from bench.machine import describe
from controller.config.settings import EnergySettings, SiteSettings
from controller.energy.report import GroupBy, Interval, dark_seconds, energy_report, parse_range
from controller.energy.rollup import close_months
from controller.faults.data import fault_stats
from controller.store import migrate
from controller.store.db import Database, connect
from controller.store.tables import (
    EnergyDaily,
    EnergyHourly,
    FaultRow,
    GatewayRow,
    GroupMember,
    LampTypeRow,
    Luminaire,
    LuminaireGroup,
)

WARDS = [
    "Phường 1", "Phường 2", "Phường 3", "Phường 4", "Phường 5",
    "Đông Giang", "Đông Lễ", "Đông Lương", "Đông Thanh",
]  # fmt: skip
PER_GATEWAY = 256
HOURLY_DAYS = 30
FIRST_DAY = date(2026, 1, 1)
SITE = SiteSettings().to_site()
ENERGY = EnergySettings()

_DAILY: Table = EnergyDaily.__table__  # type: ignore[attr-defined]
_HOURLY: Table = EnergyHourly.__table__  # type: ignore[attr-defined]
_GATEWAY: Table = GatewayRow.__table__  # type: ignore[attr-defined]
_LAMP: Table = LampTypeRow.__table__  # type: ignore[attr-defined]
_LUMINAIRE: Table = Luminaire.__table__  # type: ignore[attr-defined]
_GROUP: Table = LuminaireGroup.__table__  # type: ignore[attr-defined]
_MEMBER: Table = GroupMember.__table__  # type: ignore[attr-defined]
_FAULT: Table = FaultRow.__table__  # type: ignore[attr-defined]


def inventory(luminaires: int) -> dict[str, list[dict[str, Any]]]:
    gateways = (luminaires + PER_GATEWAY - 1) // PER_GATEWAY
    return {
        "gateways": [
            {"id": g + 1, "name": f"bench-gw-{g:03d}", "protocol": "modbus", "host": "127.0.0.1",
             "port": 1502, "unit_ids": [1, 2, 3, 4], "ward": WARDS[g % len(WARDS)],
             "enabled": True}
            for g in range(gateways)
        ],
        "lamps": [
            {"id": i + 1, "name": f"LED {w} W", "rated_power_w": float(w),
             "power_tolerance_pct": 15.0, "min_dim_level_pct": 10, "nominal_voltage_v": 220.0}
            for i, w in enumerate((60, 100, 150))
        ],
        "luminaires": [
            {"id": i + 1, "name": f"B-{i:06d}", "gateway_id": i // PER_GATEWAY + 1,
             "address": i % PER_GATEWAY, "lamp_type_id": i % 3 + 1,
             "latitude": 16.80 + (i % 1000) * 1e-5, "longitude": 107.09 + (i // 1000) * 1e-4,
             "street": f"Street {i // 500}", "ward": WARDS[(i // PER_GATEWAY) % len(WARDS)]}
            for i in range(luminaires)
        ],
        "groups": [
            *({"id": k + 1, "name": f"ward {w}", "kind": "ward", "selector": w, "priority": 0}
              for k, w in enumerate(WARDS)),
            {"id": len(WARDS) + 1, "name": "event", "kind": "explicit", "selector": None,
             "priority": 10},
        ],
        "members": [
            {"group_id": len(WARDS) + 1, "luminaire_id": i + 1} for i in range(0, luminaires, 7)
        ],
    }  # fmt: skip


def daily_rows(luminaires: int, days: int, seed: int = 7) -> list[tuple[Any, ...]]:
    """Day after day, every luminaire: the order the telemetry writer appends them in, so a
    day's rows sit together on disk as they do in production. Every luminaire is covered all
    day (coverage 1)."""
    rng = random.Random(seed)
    rows: list[tuple[Any, ...]] = []
    for d in range(days):
        day = FIRST_DAY + timedelta(days=d)
        midnight = datetime.combine(day, dt_time(0), tzinfo=SITE.tzinfo)
        dark_s = dark_seconds(SITE, midnight, midnight + timedelta(days=1))
        for i in range(luminaires):
            rated = (60.0, 100.0, 150.0)[i % 3]
            burning = 11.5 * 3600 + rng.uniform(-1800, 1800)
            ward = WARDS[(i // PER_GATEWAY) % len(WARDS)]
            energy = rated * 0.7 * burning / 3600
            rows.append(
                (i + 1, day, ward, i // PER_GATEWAY + 1, energy, burning, 8640, 86400.0, dark_s)
            )
    return rows


COLUMNS = (
    "luminaire_id", "day", "ward", "gateway_id", "energy_wh", "burning_s", "samples",
    "covered_s", "covered_dark_s",
)  # fmt: skip


async def fill(db: Database, luminaires: int, days: int) -> tuple[float, int]:
    inv = inventory(luminaires)
    rows = daily_rows(luminaires, days)
    started = time.perf_counter()
    async with db.engine.begin() as conn:
        for table, data in (
            (_GATEWAY, inv["gateways"]),
            (_LAMP, inv["lamps"]),
            (_LUMINAIRE, inv["luminaires"]),
            (_GROUP, inv["groups"]),
            (_MEMBER, inv["members"]),
        ):
            await conn.execute(insert(table), data)
        if db.is_sqlite:
            chunk = 50_000
            for i in range(0, len(rows), chunk):
                await conn.execute(
                    insert(_DAILY),
                    [dict(zip(COLUMNS, r, strict=True)) for r in rows[i : i + chunk]],
                )
        else:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.copy_records_to_table("energy_daily", records=rows, columns=COLUMNS)
            for name in ("gateway", "luminaire", "luminaire_group"):
                await conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                         f"(SELECT max(id) FROM {name}))")
                )  # fmt: skip
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE"))
    return time.perf_counter() - started, len(rows)


HOURLY_COLUMNS = (
    "luminaire_id", "hour", "energy_wh", "burning_s", "samples", "covered_s", "covered_dark_s",
)  # fmt: skip


def hourly_rows(luminaires: int, days: int) -> list[tuple[Any, ...]]:
    """Every hour of ``days`` days from FIRST_DAY (local midnight), lit from 18:00 to 06:00,
    covered all day (the lit hours taken as the dark ones)."""
    start = datetime.combine(FIRST_DAY, dt_time(0), tzinfo=SITE.tzinfo).astimezone(UTC)
    hours = [start + timedelta(hours=h) for h in range(days * 24)]
    lit = [not 6 <= h.astimezone(SITE.tzinfo).hour < 18 for h in hours]
    rows: list[tuple[Any, ...]] = []
    for hour, on in zip(hours, lit, strict=True):  # hour after hour, as written
        for i in range(luminaires):
            rated = (60.0, 100.0, 150.0)[i % 3]
            lit_s = 3600.0 if on else 0.0
            rows.append((i + 1, hour, rated * 0.7 if on else 0.0, lit_s, 360, 3600.0, lit_s))
    return rows


async def fill_hourly(db: Database, luminaires: int, days: int) -> tuple[float, int]:
    rows = hourly_rows(luminaires, days)
    started = time.perf_counter()
    async with db.engine.begin() as conn:
        if db.is_sqlite:
            chunk = 50_000
            for i in range(0, len(rows), chunk):
                await conn.execute(
                    insert(_HOURLY),
                    [dict(zip(HOURLY_COLUMNS, r, strict=True)) for r in rows[i : i + chunk]],
                )
        else:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.copy_records_to_table(
                "energy_hourly", records=rows, columns=HOURLY_COLUMNS
            )
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE"))
    return time.perf_counter() - started, len(rows)


def line(label: str, cold: float, warm: float, report: Any) -> str:
    return (
        f"    {label:<44} median {warm * 1000:7.1f} ms   cold {cold * 1000:7.1f} ms"
        f"   ({len(report.items)} rows of {report.total})"
    )


async def measure_hourly(db: Database, luminaires: int, days: int, repeats: int) -> None:
    """Ward x hour for one day, read through the index on energy_hourly(hour)."""
    fill_s, count = await fill_hourly(db, luminaires, days)
    print(f"    filled {count:,} energy_hourly rows ({days} days) in {fill_s:.1f} s")
    day = FIRST_DAY + timedelta(days=days - 1)
    rng = parse_range(
        Interval.HOUR, day.isoformat(), (day + timedelta(days=1)).isoformat(), SITE.tzinfo
    )

    async def call() -> Any:
        async with db.sessions() as session:
            return await energy_report(
                session=session, site=SITE, energy=ENERGY, rng=rng, group_by=GroupBy.WARD,
                limit=1000, offset=0,
            )  # fmt: skip

    cold, warm, report = await timed(call, repeats)
    print(line("ward x hour, one day", cold, warm, report))


async def timed(call: Callable[[], Awaitable[Any]], repeats: int) -> tuple[float, float, Any]:
    started = time.perf_counter()
    result = await call()
    cold = time.perf_counter() - started
    warm = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        warm.append(time.perf_counter() - started)
    return cold, statistics.median(warm), result


SHAPES: list[tuple[str, Interval, GroupBy, int, int]] = [
    # label, interval, group_by, page size, days from the start (0: the whole range)
    ("ward x month, whole range (headline)", Interval.MONTH, GroupBy.WARD, 1000, 0),
    ("total x month, whole range", Interval.MONTH, GroupBy.TOTAL, 1000, 0),
    ("gateway x month, whole range", Interval.MONTH, GroupBy.GATEWAY, 1000, 0),
    ("group x month, whole range", Interval.MONTH, GroupBy.GROUP, 1000, 0),
    ("luminaire x month, whole range, 100 rows", Interval.MONTH, GroupBy.LUMINAIRE, 100, 0),
    ("ward x day, whole range", Interval.DAY, GroupBy.WARD, 1000, 0),
    ("ward x day, one week", Interval.DAY, GroupBy.WARD, 1000, 7),
]


def closed_at(days: int) -> datetime:
    """The nightly housekeeping after the last day filled: every month of the range closed."""
    last = FIRST_DAY + timedelta(days=days - 1)
    return datetime.combine(last + timedelta(days=1), dt_time(0, 5), tzinfo=SITE.tzinfo)


async def run_shapes(
    db: Database,
    days: int,
    repeats: int,
    *,
    only: int | None = None,
    daily_too: bool = True,
) -> None:
    """Each shape as the API runs it (month periods from energy_monthly where current) and,
    with ``daily_too``, from energy_daily alone (the path before the rollup) beside it."""
    for label, interval, group_by, limit, span in SHAPES[:only]:
        last = FIRST_DAY + timedelta(days=(span or days) - 1)
        rng = parse_range(interval, FIRST_DAY.isoformat(), last.isoformat(), SITE.tzinfo)
        ways = [True, False] if daily_too and interval is Interval.MONTH else [True]
        for monthly in ways:

            async def call(
                rng: Any = rng,
                group_by: GroupBy = group_by,
                limit: int = limit,
                monthly: bool = monthly,
            ) -> Any:
                async with db.sessions() as session:
                    return await energy_report(
                        session=session,
                        site=SITE,
                        energy=ENERGY,
                        rng=rng,
                        group_by=group_by,
                        limit=limit,
                        offset=0,
                        monthly=monthly,
                    )

            cold, warm, report = await timed(call, repeats)
            shown = label if monthly else "  same from energy_daily only (before)"
            print(line(shown, cold, warm, report))


async def measure_rollup(db: Database, days: int) -> None:
    """The nightly job: the first run (every month), a run with nothing to do."""
    at = closed_at(days)
    run = await close_months(db=db, site=SITE, now=at)
    print(
        f"    close_months, first run: {len(run.months)} months, {run.rows:,} rows"
        f" in {run.seconds:.1f} s"
    )
    again = await close_months(db=db, site=SITE, now=at)
    print(f"    close_months, nothing to do: {again.seconds * 1000:.1f} ms")
    async with db.engine.connect() as conn:  # as autovacuum would, after 120,000 new rows
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE"))


async def measure_year_to_date(db: Database, days: int, repeats: int) -> None:
    """Mid-December: the night's run sums December up to yesterday; then the year so far,
    by ward and month, with today's energy still read from energy_daily."""
    today = FIRST_DAY + timedelta(days=days - 16)
    night = datetime.combine(today, dt_time(0, 5), tzinfo=SITE.tzinfo)
    run = await close_months(db=db, site=SITE, now=night)
    print(
        f"    close_months on {today}: {', '.join(m.strftime('%Y-%m') for m in run.months)}"
        f" rebuilt ({run.rows:,} rows) in {run.seconds:.1f} s"
    )
    rng = parse_range(Interval.MONTH, FIRST_DAY.isoformat(), today.isoformat(), SITE.tzinfo)
    noon = datetime.combine(today, dt_time(12), tzinfo=SITE.tzinfo)
    for monthly in (True, False):

        async def call(monthly: bool = monthly) -> Any:
            async with db.sessions() as session:
                return await energy_report(
                    session=session, site=SITE, energy=ENERGY, rng=rng, group_by=GroupBy.WARD,
                    limit=1000, offset=0, now=noon, monthly=monthly,
                )  # fmt: skip

        cold, warm, report = await timed(call, repeats)
        label = f"ward x month, {FIRST_DAY} to {today} at noon"
        label = label if monthly else "  same from energy_daily only (before)"
        print(line(label, cold, warm, report))
    await close_months(db=db, site=SITE, now=closed_at(days))  # back to the closed year


# --- fault statistics -------------------------------------------------------------------------


FAULTS_PER_YEAR = 30_000
"""About three faults per luminaire and year at 10,000 luminaires: lamp and gear failures,
communication losses (most of them), day burners and power out of tolerance."""


def fault_rows(luminaires: int, days: int, seed: int = 11) -> list[dict[str, Any]]:
    """A year of faults, oldest first: most acknowledged within hours and repaired within
    days; the last weeks' ones partly still open or only acknowledged."""
    rng = random.Random(seed)
    kinds = [
        ("controlGearCommFailure", "warning", 0.55), ("lampFailure", "critical", 0.2),
        ("controlGearFailure", "critical", 0.1), ("lampUnexpectedOn", "warning", 0.1),
        ("lampPowerTooHigh", "warning", 0.05),
    ]  # fmt: skip
    start = datetime.combine(FIRST_DAY, dt_time(0), tzinfo=SITE.tzinfo).astimezone(UTC)
    span_s = days * 86400
    end = start + timedelta(seconds=span_s)
    count = FAULTS_PER_YEAR * luminaires // 10_000 * days // 365
    unresolved: set[tuple[int, str]] = set()
    rows = []
    for n in range(count):
        lum = rng.randrange(luminaires)
        fault_type, severity, _ = rng.choices(kinds, weights=[k[2] for k in kinds])[0]
        since = start + timedelta(seconds=span_s * n / count + rng.uniform(0, 60))
        acked = since + timedelta(seconds=rng.expovariate(1 / 7200)) if rng.random() < 0.7 else None
        resolved: datetime | None = since + timedelta(seconds=rng.expovariate(1 / 172800))
        if acked is not None and (acked >= end or (resolved is not None and acked > resolved)):
            acked = None
        if resolved is not None and resolved >= end:
            if (lum, fault_type) in unresolved:  # one unresolved fault per subject and type
                resolved = end - timedelta(seconds=1)
            else:
                resolved = None
                unresolved.add((lum, fault_type))
        state = "resolved" if resolved else "acknowledged" if acked else "open"
        rows.append(
            {"subject_kind": "luminaire", "subject_id": lum + 1, "luminaire_id": lum + 1,
             "gateway_id": lum // PER_GATEWAY + 1, "fault_type": fault_type,
             "severity": severity, "state": state,
             "ward": WARDS[(lum // PER_GATEWAY) % len(WARDS)], "street": f"Street {lum // 500}",
             "since": since, "last_seen": resolved or end, "count": rng.randint(1, 20),
             "evidence": None, "acknowledged_at": acked,
             "acknowledged_by": "crew" if acked else None, "acknowledged_note": None,
             "resolved_at": resolved, "resolved_by": None, "resolved_note": None}
        )  # fmt: skip
    return rows


async def measure_faults(db: Database, luminaires: int, days: int, repeats: int) -> None:
    """GET /faults/stats over the whole year and over its last 30 days (the API's default)."""
    rows = fault_rows(luminaires, days)
    started = time.perf_counter()
    async with db.engine.begin() as conn:
        for i in range(0, len(rows), 5_000):
            await conn.execute(insert(_FAULT), rows[i : i + 5_000])
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE"))
    unresolved = sum(1 for r in rows if r["resolved_at"] is None)
    print(
        f"    filled {len(rows):,} faults ({unresolved:,} unresolved) in"
        f" {time.perf_counter() - started:.1f} s"
    )
    end = datetime.combine(
        FIRST_DAY + timedelta(days=days), dt_time(0), tzinfo=SITE.tzinfo
    ).astimezone(UTC)
    for label, start in (
        ("fault stats, whole year", end - timedelta(days=days)),
        ("fault stats, last 30 days", end - timedelta(days=30)),
    ):

        async def call(start: datetime = start) -> Any:
            async with db.sessions() as session:
                return await fault_stats(session=session, start=start, end=end)

        cold, warm, stats = await timed(call, repeats)
        opened = sum(w.opened for w in stats.wards)
        print(
            f"    {label:<44} median {warm * 1000:7.1f} ms   cold {cold * 1000:7.1f} ms"
            f"   ({len(stats.wards)} wards, {opened:,} opened)"
        )


def without_jit(url: str) -> Database:
    """The same PostgreSQL database, with JIT compilation off for every session."""
    engine = create_async_engine(url, connect_args={"server_settings": {"jit": "off"}})
    return Database(engine, async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False))


async def measure(url: str, luminaires: int, days: int, repeats: int) -> None:
    from schedules.sun import compute_sun_events

    async with connect(url) as db:
        await migrate.upgrade(db)
        fill_s, count = await fill(db, luminaires, days)
        print(f"    filled {count:,} energy_daily rows in {fill_s:.1f} s")
        compute_sun_events.cache_clear()
        await measure_rollup(db, days)
        await run_shapes(db, days, repeats)
        await measure_year_to_date(db, days, repeats)
        await measure_faults(db, luminaires, days, repeats)
        await measure_hourly(db, luminaires, HOURLY_DAYS, repeats)
    if url.startswith("postgresql"):
        print("    with jit = off (session setting):")
        quiet = without_jit(url)
        try:
            await run_shapes(quiet, days, repeats, only=1)
        finally:
            await quiet.dispose()


async def main(luminaires: int, days: int, repeats: int) -> None:
    print(f"machine: {describe()}")
    print(f"energy report over {luminaires:,} luminaires x {days} days, median of {repeats} runs")
    with tempfile.TemporaryDirectory() as tmp:
        print("  SQLite (aiosqlite, WAL):")
        await measure(f"sqlite+aiosqlite:///{Path(tmp) / 'reports.db'}", luminaires, days, repeats)
    target = await pg_url()
    if target is None:
        print("  PostgreSQL: not reachable, skipped")
        return
    dsn, name, url = target
    try:
        print("  PostgreSQL (asyncpg):")
        await measure(url, luminaires, days, repeats)
    finally:
        await drop_pg(dsn, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--luminaires", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.luminaires, args.days, args.repeats))
