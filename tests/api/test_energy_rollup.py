"""The monthly rollup (energy_monthly) gives the same reports as energy_daily, both databases.

Every report here is computed twice, from the rollup where it applies (``monthly=True``, what
the API does) and from ``energy_daily`` alone (``monthly=False``), and compared as JSON and
as CSV: every group_by, pagination, ranges that cut months, with and without ``now``.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Table, delete, insert, select, update

from controller.config.settings import EnergySettings, Settings
from controller.core.values import Address, Reading
from controller.energy.report import (
    GroupBy,
    Interval,
    dark_seconds,
    energy_report,
    parse_range,
    to_csv,
)
from controller.energy.rollup import close_months
from controller.loop.telemetry import LuminaireRef, TelemetrySink
from controller.store.db import Database
from controller.store.tables import EnergyDaily, EnergyMonthly, EnergyMonthlyState, Luminaire
from schedules.sun import Site
from tests.api.conftest import Api, luminaire

_DAILY: Table = EnergyDaily.__table__  # type: ignore[attr-defined]
_MONTHLY: Table = EnergyMonthly.__table__  # type: ignore[attr-defined]
_STATE: Table = EnergyMonthlyState.__table__  # type: ignore[attr-defined]
_LUMINAIRE: Table = Luminaire.__table__  # type: ignore[attr-defined]

FIRST = date(2026, 5, 28)
LAST = date(2026, 8, 5)
MOVE_WARD = date(2026, 6, 15)
MOVE_GATEWAY = date(2026, 7, 10)


def local(settings: Settings, day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(settings.site.timezone))


@pytest.fixture
async def fleet(api: Api, base: dict[str, int], db: Database) -> dict[str, int]:
    """Four luminaires and 70 days of energy_daily, late May to early August 2026.

    L1 100 W and L2 50 W in Phường 1 on gateway 1 (L2 misses every fifth day); L3 100 W
    booked in Phường 1 on gateway 1 until 14 June, then in Đông Lễ on gateway 2; L4 50 W in
    Phường 1, on gateway 1 until 9 July, then on gateway 2 (same ward: two rollup rows in
    July under one ward). Energy and burning time are arbitrary floats.
    """
    lamp50 = await api.ok("POST", "/lamp-types", json={"name": "LED 50 W", "rated_power_w": 50})
    gw2 = await api.ok(
        "POST", "/gateways", json={"name": "gw-dl", "protocol": "mqtt", "mqtt_id": "gw-dl"}
    )
    lum = [
        await api.ok("POST", "/luminaires", json=luminaire(1, **base)),
        await api.ok("POST", "/luminaires", json=luminaire(2, base["gateway_id"], lamp50["id"])),
        await api.ok(
            "POST", "/luminaires",
            json=luminaire(3, gw2["id"], base["lamp_type_id"], ward="Đông Lễ"),
        ),
        await api.ok("POST", "/luminaires", json=luminaire(4, gw2["id"], lamp50["id"])),
    ]  # fmt: skip
    ids = {f"l{n + 1}": row["id"] for n, row in enumerate(lum)}
    ids.update(gw1=base["gateway_id"], gw2=gw2["id"], lamp50=lamp50["id"])
    await api.ok("POST", "/groups", json={"name": "event", "members": [ids["l1"], ids["l3"]]})
    await api.ok("POST", "/groups", json={"name": "P1", "kind": "ward", "selector": "Phường 1"})
    await api.ok("POST", "/groups", json={"name": "none", "kind": "street", "selector": "Nowhere"})
    rnd = random.Random(11)
    rows = []
    day = FIRST
    while day <= LAST:
        for n in range(1, 5):
            if n == 2 and day.toordinal() % 5 == 0:
                continue
            ward, gw = "Phường 1", ids["gw1"]
            if n == 3 and day >= MOVE_WARD:
                ward, gw = "Đông Lễ", ids["gw2"]
            if n == 4 and day >= MOVE_GATEWAY:
                gw = ids["gw2"]
            rows.append(
                {"luminaire_id": ids[f"l{n}"], "day": day, "ward": ward, "gateway_id": gw,
                 "energy_wh": rnd.uniform(200, 900), "burning_s": rnd.uniform(38000, 44000),
                 "samples": rnd.randint(100, 200), "covered_s": rnd.uniform(50000, 86400),
                 "covered_dark_s": rnd.uniform(20000, 39000)}
            )  # fmt: skip
        day += timedelta(days=1)
    async with db.engine.begin() as conn:
        await conn.execute(insert(_DAILY), rows)
    return ids


RANGES = [
    (Interval.MONTH, "2026-05-01", "2026-08-31"),
    (Interval.MONTH, "2026-06", "2026-07"),
    (Interval.MONTH, "2026-06-15", "2026-08-01"),  # June cut: from energy_daily
    (Interval.MONTH, "2026-05-28", "2026-07-31"),
    (Interval.MONTH, "2026-07-01", "2026-07-20"),  # July cut at the end
    (Interval.MONTH, "2026-08-01", "2026-08-01"),
    (Interval.DAY, "2026-06-28", "2026-07-03"),
]


async def same_both_ways(
    db: Database,
    settings: Settings,
    *,
    interval: Interval,
    first: str,
    last: str,
    group_by: GroupBy,
    now: datetime | None,
    limit: int = 1000,
    offset: int = 0,
    site: Site | None = None,
) -> dict[str, Any]:
    """The report from the rollup equals the one from energy_daily alone; returns it."""
    rng = parse_range(interval, first, last, ZoneInfo(settings.site.timezone))
    out = []
    for monthly in (True, False):
        async with db.sessions() as session:
            report = await energy_report(
                session=session, site=site or settings.site.to_site(), energy=EnergySettings(),
                rng=rng, group_by=group_by, limit=limit, offset=offset, now=now,
                monthly=monthly,
            )  # fmt: skip
        out.append((report.model_dump(mode="json", by_alias=True), to_csv(report)))
    (rolled, rolled_csv), (daily, daily_csv) = out
    context = (interval, first, last, group_by, now, limit, offset)
    assert rolled == daily, context
    assert rolled_csv == daily_csv, context
    return rolled


async def all_reports_agree(db: Database, settings: Settings, nows: list[datetime | None]) -> int:
    rows = 0
    for interval, first, last in RANGES:
        for now in nows:
            for group_by in GroupBy:
                body = await same_both_ways(
                    db, settings, interval=interval, first=first, last=last,
                    group_by=group_by, now=now,
                )  # fmt: skip
                rows += len(body["items"])
                if group_by is GroupBy.LUMINAIRE and body["total"] > 2:
                    await same_both_ways(
                        db, settings, interval=interval, first=first, last=last,
                        group_by=group_by, now=now, limit=2, offset=1,
                    )  # fmt: skip
    return rows


async def monthly_rows(db: Database) -> list[Any]:
    async with db.engine.connect() as conn:
        return list(await conn.execute(select(_MONTHLY).order_by(*_MONTHLY.primary_key)))


async def states(db: Database) -> dict[date, tuple[date, bool]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(_STATE.c.month, _STATE.c.through_day, _STATE.c.stale))
        return {r.month: (r.through_day, bool(r.stale)) for r in rows}


async def test_rollup_gives_the_daily_figures(
    db: Database, settings: Settings, fleet: dict[str, int]
) -> None:
    site = settings.site.to_site()
    now = local(settings, date(2026, 8, 2), 12)
    nows = [now, None, local(settings, date(2026, 7, 20), 12)]
    run = await close_months(db=db, site=site, now=now)
    assert run.months == [date(2026, 5, 1), date(2026, 6, 1), date(2026, 7, 1), date(2026, 8, 1)]
    assert run.rows == len(await monthly_rows(db)) == 4 + 5 + 5 + 4  # moves: one row more
    assert await states(db) == {
        date(2026, 5, 1): (date(2026, 5, 31), False),
        date(2026, 6, 1): (date(2026, 6, 30), False),
        date(2026, 7, 1): (date(2026, 7, 31), False),
        date(2026, 8, 1): (date(2026, 8, 1), False),  # the current month, up to yesterday
    }
    async with db.engine.connect() as conn:
        july = (
            await conn.execute(
                select(_MONTHLY.c.gateway_id, _MONTHLY.c.days).where(
                    _MONTHLY.c.month == date(2026, 7, 1),
                    _MONTHLY.c.luminaire_id == fleet["l4"],
                )
            )
        ).all()
    assert sorted(july) == sorted([(fleet["gw1"], 9), (fleet["gw2"], 22)])
    assert await all_reports_agree(db, settings, nows) > 0

    # the baseline takes the current lamp type, from the rollup as from the days
    async with db.engine.begin() as conn:
        await conn.execute(
            update(_LUMINAIRE)
            .where(_LUMINAIRE.c.id == fleet["l1"])
            .values(lamp_type_id=fleet["lamp50"])
        )
    await all_reports_agree(db, settings, [now])

    # idempotent: nothing to do, and a forced rebuild writes the same rows
    rows = await monthly_rows(db)
    assert (await close_months(db=db, site=site, now=now)).months == []
    assert len((await close_months(db=db, site=site, now=now, rebuild=True)).months) == 4
    assert await monthly_rows(db) == rows


async def test_closed_months_are_read_from_the_rollup(
    db: Database, settings: Settings, fleet: dict[str, int]
) -> None:
    now = local(settings, date(2026, 8, 2), 12)
    await close_months(db=db, site=settings.site.to_site(), now=now)
    # proof that June comes from energy_monthly: take its daily rows away behind its back
    async with db.engine.begin() as conn:
        await conn.execute(
            delete(_DAILY).where(_DAILY.c.day >= date(2026, 6, 1), _DAILY.c.day < date(2026, 7, 1))
        )
    rng = parse_range(Interval.MONTH, "2026-06", "2026-06", ZoneInfo(settings.site.timezone))
    energy = []
    for monthly in (True, False):
        async with db.sessions() as session:
            report = await energy_report(
                session=session, site=settings.site.to_site(), energy=EnergySettings(),
                rng=rng, group_by=GroupBy.TOTAL, limit=10, offset=0, now=now, monthly=monthly,
            )  # fmt: skip
        energy.append([row.energy_kwh for row in report.items])
    assert energy[0][0] > 0 and energy[1] == []


async def book(
    db: Database, settings: Settings, ref: LuminaireRef, day: date, hour: int = 20
) -> None:
    """Two readings ten minutes apart on ``day``, through the telemetry writer: 5 Wh booked."""
    sink = TelemetrySink(db, site=settings.site.to_site(), store_raw=False)
    for minute, counter in ((0, 1000), (10, 1005)):
        at = local(settings, day, hour, minute).astimezone(UTC)
        reading = Reading(
            address=Address(1), at=at, lamp_on=True, level_pct=100, power_w=30.0,
            voltage_v=230.0, current_ma=130, power_factor=0.95, energy_wh=counter,
            operating_hours=100, switch_on_count=10, temperature_c=30.0,
        )  # fmt: skip
        sink.offer_readings([(ref, reading)])
    await sink.flush()


async def test_a_late_row_is_read_from_the_days_until_the_next_run(
    db: Database, settings: Settings, fleet: dict[str, int]
) -> None:
    site = settings.site.to_site()
    now = local(settings, date(2026, 8, 2), 12)
    await close_months(db=db, site=site, now=now)
    rows = await monthly_rows(db)
    # a batch retried after an outage lands days late: one for June, one for an absent L2 day
    await book(db, settings, LuminaireRef(fleet["l1"], "Phường 1", fleet["gw1"]), date(2026, 6, 10))
    june_gap = next(d for d in range(1, 31) if date(2026, 6, d).toordinal() % 5 == 0)
    await book(
        db, settings, LuminaireRef(fleet["l2"], "Phường 1", fleet["gw1"]), date(2026, 6, june_gap)
    )
    marks = await states(db)
    assert marks[date(2026, 6, 1)] == (date(2026, 6, 30), True)
    assert not marks[date(2026, 7, 1)][1] and not marks[date(2026, 8, 1)][1]
    body = await same_both_ways(
        db, settings, interval=Interval.MONTH, first="2026-06", last="2026-08",
        group_by=GroupBy.LUMINAIRE, now=now,
    )  # fmt: skip
    june_l2 = next(
        r for r in body["items"] if r["period"] == "2026-06" and r["key"] == str(fleet["l2"])
    )
    await all_reports_agree(db, settings, [now])

    # today's energy does not touch the rollup
    await book(db, settings, LuminaireRef(fleet["l1"], "Phường 1", fleet["gw1"]), date(2026, 8, 2))
    assert not (await states(db))[date(2026, 8, 1)][1]

    run = await close_months(db=db, site=site, now=now)
    assert run.months == [date(2026, 6, 1)]
    assert not (await states(db))[date(2026, 6, 1)][1]
    assert len(await monthly_rows(db)) == len(rows)
    assert await monthly_rows(db) != rows
    after = await same_both_ways(
        db, settings, interval=Interval.MONTH, first="2026-06", last="2026-08",
        group_by=GroupBy.LUMINAIRE, now=now,
    )  # fmt: skip
    assert june_l2 in after["items"]
    await all_reports_agree(db, settings, [now])
    assert (await close_months(db=db, site=site, now=now)).months == []


async def test_the_current_month_half_closed(
    db: Database, settings: Settings, fleet: dict[str, int]
) -> None:
    """Mid-July: July is summed up to yesterday; today and after come from energy_daily."""
    site = settings.site.to_site()
    night = local(settings, date(2026, 7, 16), 0, 5)
    run = await close_months(db=db, site=site, now=night)
    assert run.months == [date(2026, 5, 1), date(2026, 6, 1), date(2026, 7, 1)]
    assert (await states(db))[date(2026, 7, 1)] == (date(2026, 7, 15), False)
    noon = local(settings, date(2026, 7, 16), 12)
    earlier = local(settings, date(2026, 7, 10), 12)  # before the rollup's last day ended
    await all_reports_agree(db, settings, [noon, None, earlier])

    # energy today (after through_day) leaves July current; on the 15th it does not
    l1 = LuminaireRef(fleet["l1"], "Phường 1", fleet["gw1"])
    await book(db, settings, l1, date(2026, 7, 16))
    assert (await states(db))[date(2026, 7, 1)] == (date(2026, 7, 15), False)
    await book(db, settings, l1, date(2026, 7, 15), hour=23)
    assert (await states(db))[date(2026, 7, 1)] == (date(2026, 7, 15), True)
    await all_reports_agree(db, settings, [noon])

    # the next night July goes one day further; on 1 August it closes
    next_night = local(settings, date(2026, 7, 17), 0, 5)
    assert (await close_months(db=db, site=site, now=next_night)).months == [date(2026, 7, 1)]
    assert (await states(db))[date(2026, 7, 1)] == (date(2026, 7, 16), False)
    await all_reports_agree(db, settings, [local(settings, date(2026, 7, 17), 9)])
    first_of_august = local(settings, date(2026, 8, 1), 0, 5)
    assert (await close_months(db=db, site=site, now=first_of_august)).months == [date(2026, 7, 1)]
    assert set(await states(db)) == {date(2026, 5, 1), date(2026, 6, 1), date(2026, 7, 1)}
    await all_reports_agree(db, settings, [local(settings, date(2026, 8, 1), 9)])


async def test_another_site_is_not_served_from_the_rollup(
    db: Database, settings: Settings, fleet: dict[str, int]
) -> None:
    site = settings.site.to_site()
    now = local(settings, date(2026, 8, 2), 12)
    await close_months(db=db, site=site, now=now)
    moved = Site(site.name, site.latitude + 5.0, site.longitude, site.elevation_m, site.timezone)
    for group_by in (GroupBy.TOTAL, GroupBy.WARD):
        await same_both_ways(
            db, settings, interval=Interval.MONTH, first="2026-05", last="2026-08",
            group_by=group_by, now=now, site=moved,
        )  # fmt: skip
    assert len((await close_months(db=db, site=moved, now=now)).months) == 4
    await same_both_ways(
        db, settings, interval=Interval.MONTH, first="2026-05", last="2026-08",
        group_by=GroupBy.WARD, now=now, site=moved,
    )  # fmt: skip


async def test_nothing_to_roll_up(db: Database, settings: Settings) -> None:
    run = await close_months(db=db, site=settings.site.to_site(), now=datetime.now(UTC))
    assert (run.months, run.rows) == ([], 0)


async def test_a_luminaire_installed_mid_month(
    db: Database, settings: Settings, api: Api, base: dict[str, int]
) -> None:
    """L5 reports all June, L6 from its installation at noon on 15 June (through the
    telemetry writer, a reading every 30 min): L6's baseline is its own covered dark time,
    its coverage the share of June's dark time it was there for; rollup and days agree."""
    site = settings.site.to_site()
    l5 = await api.ok("POST", "/luminaires", json=luminaire(5, **base))
    l6 = await api.ok("POST", "/luminaires", json=luminaire(6, **base))
    installed = local(settings, date(2026, 6, 15), 12)
    starts = {
        LuminaireRef(l5["id"], "Phường 1", base["gateway_id"]): local(settings, date(2026, 6, 1)),
        LuminaireRef(l6["id"], "Phường 1", base["gateway_id"]): installed,
    }
    sink = TelemetrySink(db, site=site, max_gap_s=1800, store_raw=False)
    at, end = local(settings, date(2026, 6, 1)), local(settings, date(2026, 7, 1))
    while at <= end:
        for ref, start in starts.items():
            if at >= start:
                wh = round(50 * (at - start).total_seconds() / 3600)  # 50 W, counter from 0
                reading = Reading(
                    address=Address(ref.luminaire_id), at=at.astimezone(UTC), lamp_on=True,
                    level_pct=50, power_w=50.0, voltage_v=230.0, current_ma=230,
                    power_factor=0.95, energy_wh=wh, operating_hours=1, switch_on_count=1,
                    temperature_c=30.0,
                )  # fmt: skip
                sink.offer_readings([(ref, reading)])
        at += timedelta(minutes=30)
    await sink.flush()
    now = local(settings, date(2026, 7, 2), 12)
    await close_months(db=db, site=site, now=now)
    assert (await states(db))[date(2026, 6, 1)] == (date(2026, 6, 30), False)

    june_dark = dark_seconds(site, local(settings, date(2026, 6, 1)), end)
    l6_dark = dark_seconds(site, installed, end)
    assert 15 * 39000 < l6_dark < 16 * 39000  # 15.5 nights
    body = await same_both_ways(
        db, settings, interval=Interval.MONTH, first="2026-06", last="2026-06",
        group_by=GroupBy.LUMINAIRE, now=now,
    )  # fmt: skip
    rows = {r["key"]: r for r in body["items"]}
    full, late = rows[str(l5["id"])], rows[str(l6["id"])]
    assert late["baseline_kwh"] == pytest.approx(100 * l6_dark / 3.6e6, abs=6e-4)
    assert full["baseline_kwh"] == pytest.approx(100 * june_dark / 3.6e6, abs=6e-4)
    assert (full["coverage"], full["luminaires_inventory"]) == (1.0, 1)
    assert late["coverage"] == pytest.approx(l6_dark / june_dark, abs=6e-4)
    assert late["energy_kwh"] == pytest.approx(
        50 * (end - installed).total_seconds() / 3.6e6, abs=1e-3
    )
    total = await same_both_ways(
        db, settings, interval=Interval.MONTH, first="2026-06", last="2026-06",
        group_by=GroupBy.TOTAL, now=now,
    )  # fmt: skip
    june = total["items"][0]
    assert (june["luminaires"], june["luminaires_inventory"]) == (2, 2)
    assert june["coverage"] == pytest.approx((june_dark + l6_dark) / (2 * june_dark), abs=6e-4)
    assert june["dark_hours"] == pytest.approx(june_dark / 3600, abs=6e-4)
