"""Energy report benchmark: 10,000 luminaires x 365 days of ``energy_daily``, SQLite and PostgreSQL.

Run: ``python -m bench.reports_bench`` (``--luminaires``, ``--days``, ``--repeats``).
Fills the rollup by bulk insert (executemany on SQLite, COPY on PostgreSQL), runs ANALYZE
as autovacuum would, then times :func:`controller.energy_report.energy_report` the way the
API calls it: the headline is the ward x month report over the whole year (target < 100 ms);
other shapes are printed for context. "cold" is the first call of a shape (for the first
one, sun events are not cached yet: about 0.7 ms per day); "median" is over the warm calls.
On PostgreSQL the headline is measured again with JIT compilation off (``jit = off``), as
PostgreSQL's defaults compile queries this large.

Two what-ifs size the proposals in docs/ioc.md, in the benchmark database only: the same
ward x month report from a monthly rollup per luminaire (``energy_monthly``: energy, burning
time, baseline and days reported, per luminaire, month, ward and gateway; not in the schema),
and a one-day hourly report over a month of ``energy_hourly`` without and with an index on
``energy_hourly(hour)`` (not in the schema either).

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

from sqlalchemy import (
    Column,
    Date,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    column,
    func,
    insert,
    select,
    text,
    values,
)
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.import_bench import drop_pg, pg_url
from bench.machine import describe
from controller import migrate
from controller.db import Database, connect
from controller.energy_report import GroupBy, Interval, energy_report, parse_range
from controller.settings import EnergySettings, SiteSettings
from controller.tables import (
    EnergyDaily,
    EnergyHourly,
    Gateway,
    GroupMember,
    LampType,
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
_GATEWAY: Table = Gateway.__table__  # type: ignore[attr-defined]
_LAMP: Table = LampType.__table__  # type: ignore[attr-defined]
_LUMINAIRE: Table = Luminaire.__table__  # type: ignore[attr-defined]
_GROUP: Table = LuminaireGroup.__table__  # type: ignore[attr-defined]
_MEMBER: Table = GroupMember.__table__  # type: ignore[attr-defined]


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
    day's rows sit together on disk as they do in production."""
    rng = random.Random(seed)
    rows: list[tuple[Any, ...]] = []
    for d in range(days):
        day = FIRST_DAY + timedelta(days=d)
        for i in range(luminaires):
            rated = (60.0, 100.0, 150.0)[i % 3]
            burning = 11.5 * 3600 + rng.uniform(-1800, 1800)
            ward = WARDS[(i // PER_GATEWAY) % len(WARDS)]
            energy = rated * 0.7 * burning / 3600
            rows.append((i + 1, day, ward, i // PER_GATEWAY + 1, energy, burning, 8640))
    return rows


COLUMNS = ("luminaire_id", "day", "ward", "gateway_id", "energy_wh", "burning_s", "samples")


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


HOURLY_COLUMNS = ("luminaire_id", "hour", "energy_wh", "burning_s", "samples")


def hourly_rows(luminaires: int, days: int) -> list[tuple[Any, ...]]:
    """Every hour of ``days`` days from FIRST_DAY (local midnight), lit from 18:00 to 06:00."""
    start = datetime.combine(FIRST_DAY, dt_time(0), tzinfo=SITE.tzinfo).astimezone(UTC)
    hours = [start + timedelta(hours=h) for h in range(days * 24)]
    lit = [not 6 <= h.astimezone(SITE.tzinfo).hour < 18 for h in hours]
    rows: list[tuple[Any, ...]] = []
    for hour, on in zip(hours, lit, strict=True):  # hour after hour, as written
        for i in range(luminaires):
            rated = (60.0, 100.0, 150.0)[i % 3]
            rows.append((i + 1, hour, rated * 0.7 if on else 0.0, 3600.0 if on else 0.0, 360))
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


async def measure_hourly(db: Database, luminaires: int, days: int, repeats: int) -> None:
    """Ward x hour for one day, without and with an index on energy_hourly(hour)."""
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

    for label in ("ward x hour, one day", "ward x hour, one day, what-if index(hour)"):
        if "index" in label:
            async with db.engine.begin() as conn:
                await conn.execute(
                    text("CREATE INDEX ix_bench_energy_hourly_hour ON energy_hourly (hour)")
                )
            async with db.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("ANALYZE"))
        cold, warm, report = await timed(call, repeats)
        print(
            f"    {label:<44} median {warm * 1000:7.1f} ms   cold {cold * 1000:7.1f} ms"
            f"   ({len(report.items)} rows of {report.total})"
        )


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


async def run_shapes(db: Database, days: int, repeats: int, only: int | None = None) -> None:
    for label, interval, group_by, limit, span in SHAPES[:only]:
        last = FIRST_DAY + timedelta(days=(span or days) - 1)
        rng = parse_range(interval, FIRST_DAY.isoformat(), last.isoformat(), SITE.tzinfo)

        async def call(rng: Any = rng, group_by: GroupBy = group_by, limit: int = limit) -> Any:
            async with db.sessions() as session:
                return await energy_report(
                    session=session, site=SITE, energy=ENERGY, rng=rng,
                    group_by=group_by, limit=limit, offset=0,
                )  # fmt: skip

        cold, warm, report = await timed(call, repeats)
        print(
            f"    {label:<44} median {warm * 1000:7.1f} ms   cold {cold * 1000:7.1f} ms"
            f"   ({len(report.items)} rows of {report.total})"
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
        await run_shapes(db, days, repeats)
        build_s = await build_monthly(db, days)
        await time_monthly(db, days, repeats, f"what-if energy_monthly (built in {build_s:.1f} s)")
        await measure_hourly(db, luminaires, HOURLY_DAYS, repeats)
    if url.startswith("postgresql"):
        print("    with jit = off (session setting):")
        quiet = without_jit(url)
        try:
            await run_shapes(quiet, days, repeats, only=1)
            await time_monthly(quiet, days, repeats, "what-if energy_monthly")
        finally:
            await quiet.dispose()


WHATIF = MetaData()
MONTHLY = Table(
    "bench_energy_monthly",
    WHATIF,
    Column("luminaire_id", Integer, primary_key=True),
    Column("month", Date, primary_key=True),
    Column("ward", String(100), primary_key=True),
    Column("gateway_id", Integer, primary_key=True),
    Column("energy_wh", Float, nullable=False),
    Column("burning_s", Float, nullable=False),
    Column("baseline_wh", Float, nullable=False),
    Column("days", Integer, nullable=False),
    Index("ix_bench_energy_monthly_month_ward", "month", "ward"),
)


async def build_monthly(db: Database, days: int) -> float:
    """Build the proposed monthly rollup from energy_daily; returns the seconds it took."""
    from controller.energy_report import dark_seconds

    tz = SITE.tzinfo
    calendar = []
    for n in range(days):
        day = FIRST_DAY + timedelta(days=n)
        start = datetime.combine(day, dt_time(0), tzinfo=tz)
        calendar.append(
            (day, day.replace(day=1), dark_seconds(SITE, start, start + timedelta(days=1)))
        )
    nights = (
        values(column("day", Date), column("month", Date), column("dark_s", Float), name="nights")
        .data(calendar)
        .cte("nights")
    )
    d = _DAILY.c
    lum: Table = _LUMINAIRE
    lamp: Table = _LAMP
    started = time.perf_counter()
    async with db.engine.begin() as conn:
        await conn.run_sync(WHATIF.create_all)
        await conn.execute(
            insert(MONTHLY).from_select(
                ["luminaire_id", "month", "ward", "gateway_id", "energy_wh", "burning_s",
                 "baseline_wh", "days"],
                select(d.luminaire_id, nights.c.month, d.ward, d.gateway_id,
                       func.sum(d.energy_wh), func.sum(d.burning_s),
                       func.sum(lamp.c.rated_power_w * nights.c.dark_s / 3600), func.count())
                .join(nights, nights.c.day == d.day)
                .join(lum, lum.c.id == d.luminaire_id)
                .join(lamp, lamp.c.id == lum.c.lamp_type_id)
                .group_by(d.luminaire_id, nights.c.month, d.ward, d.gateway_id),
            )
        )  # fmt: skip
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


async def time_monthly(db: Database, days: int, repeats: int, label: str) -> None:
    """Time ward x month over the year from the proposed monthly rollup."""
    m = MONTHLY.c
    query = (
        select(m.month, m.ward, func.sum(m.energy_wh), func.sum(m.burning_s),
               func.sum(m.baseline_wh), func.count(m.luminaire_id.distinct()))
        .where(m.month >= FIRST_DAY, m.month <= FIRST_DAY + timedelta(days=days - 1))
        .group_by(m.month, m.ward)
        .order_by(m.month, m.ward)
    )  # fmt: skip

    async def call() -> Any:
        async with db.engine.connect() as conn:
            return (await conn.execute(query)).all()

    cold, warm, rows = await timed(call, repeats)
    print(
        f"    {label:<44} median {warm * 1000:7.1f} ms   cold {cold * 1000:7.1f} ms"
        f"   ({len(rows)} rows)"
    )


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
