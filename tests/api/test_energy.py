"""Energy reports (GET /api/v1/energy): values against hand-computed fixtures, both databases.

Dark time per local day is 24 h minus the day length, from Đông Hà's almanac (sunrise and
sunset as ``schedules.sun`` gives them, within 5 s of NREL SPA, see docs/schedules.md):

=========== ========= ========= =====================================
day         sunrise   sunset    dark seconds
=========== ========= ========= =====================================
2026-06-21  05:19:22  18:27:22  86400 - (66442 - 19162) = 39120
2026-06-22  05:19:35  18:27:35  86400 - (66455 - 19175) = 39120
2026-07-01  05:21:55  18:28:56  86400 - (66536 - 19315) = 39179
=========== ========= ========= =====================================

Expected rows are computed here from those numbers with the definitions of docs/ioc.md,
independently of the implementation, and compared at the precision the API rounds to.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Table, insert

from api.app import create_app
from api.dashboard.energy_summary import energy_summary
from controller.access.schemas import Role
from controller.config.settings import Settings, load_settings
from controller.core.clock import ManualClock
from controller.core.values import Address, Reading
from controller.loop.telemetry import LuminaireRef, TelemetrySink
from controller.store.db import Database
from controller.store.tables import EnergyDaily, EnergyHourly
from tests.api.conftest import Api, luminaire

DARK_0621 = 39120
DARK_0622 = 39120
DARK_0701 = 39179
CO2 = 0.6592
TARIFF = 2226.0
FIELDS = [
    "period", "period_start", "period_end", "key", "name", "energy_kwh", "baseline_kwh",
    "savings_kwh", "savings_pct", "co2_kg", "cost_vnd", "burning_hours", "luminaires",
    "luminaires_inventory", "covered_hours", "covered_dark_hours", "dark_hours", "coverage",
]  # fmt: skip

_DAILY: Table = EnergyDaily.__table__  # type: ignore[attr-defined]
_HOURLY: Table = EnergyHourly.__table__  # type: ignore[attr-defined]


def expected(
    energy_wh: float,
    rated_dark_ws: float,
    burning_s: float,
    luminaires: int,
    *,
    co2: float = CO2,
    tariff: float = TARIFF,
) -> dict[str, Any]:
    """A row's measures: ``rated_dark_ws`` is the sum of rated W x dark seconds."""
    baseline_wh = rated_dark_ws / 3600
    savings_wh = baseline_wh - energy_wh
    return {
        "energy_kwh": energy_wh / 1000,
        "baseline_kwh": baseline_wh / 1000,
        "savings_kwh": savings_wh / 1000,
        "savings_pct": savings_wh / baseline_wh * 100 if baseline_wh else None,
        "co2_kg": energy_wh / 1000 * co2,
        "cost_vnd": energy_wh / 1000 * tariff,
        "burning_hours": burning_s / 3600,
        "luminaires": luminaires,
    }


TOLERANCE = {
    "energy_kwh": 6e-4, "baseline_kwh": 6e-4, "savings_kwh": 6e-4, "savings_pct": 0.06,
    "co2_kg": 6e-4, "cost_vnd": 0.6, "burning_hours": 0.006,
}  # fmt: skip


def check(row: dict[str, Any], want: dict[str, Any]) -> None:
    for name, value in want.items():
        if name in TOLERANCE and value is not None:
            assert row[name] == pytest.approx(value, abs=TOLERANCE[name]), (name, row)
        else:
            assert row[name] == value, (name, row)


def by_period_key(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["period"], r["key"]): r for r in body["items"]}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 8, 1, tzinfo=UTC))


def _client(settings: Settings, db: Database, clock: ManualClock) -> httpx.AsyncClient:
    app = create_app(settings, db, clock=clock)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def energy_api(
    settings: Settings, db: Database, keys: dict[Role, str], clock: ManualClock
) -> AsyncIterator[Api]:
    async with _client(settings, db, clock) as c:
        yield Api(c, keys)


@pytest.fixture
async def fleet(api: Api, base: dict[str, int], db: Database) -> dict[str, int]:
    """Three luminaires, two lamp types, two gateways, three groups, and their rollups.

    L1 100 W and L2 50 W in Phường 1 on gateway 1; L3 100 W in Đông Lễ on gateway 2. The
    rollup rows are the report's input here, each with its day's (hour's) dark time fully
    covered: these tests are about the report's arithmetic. What the telemetry writer books
    is tested below, from readings.
    """
    lamp50 = await api.ok("POST", "/lamp-types", json={"name": "LED 50 W", "rated_power_w": 50})
    gw2 = await api.ok(
        "POST", "/gateways", json={"name": "gw-dl", "protocol": "mqtt", "mqtt_id": "gw-dl"}
    )
    l1 = await api.ok("POST", "/luminaires", json=luminaire(1, **base))
    l2 = await api.ok(
        "POST", "/luminaires",
        json=luminaire(2, base["gateway_id"], lamp50["id"]),
    )  # fmt: skip
    l3 = await api.ok(
        "POST", "/luminaires",
        json=luminaire(3, gw2["id"], base["lamp_type_id"], name="DL-HV-003", ward="Đông Lễ",
                       street="Hùng Vương"),
    )  # fmt: skip
    event = await api.ok("POST", "/groups", json={"name": "event", "members": [l1["id"], l3["id"]]})
    ward = await api.ok(
        "POST", "/groups", json={"name": "Phường 1", "kind": "ward", "selector": "Phường 1"}
    )
    empty = await api.ok(
        "POST", "/groups", json={"name": "nowhere", "kind": "street", "selector": "Nowhere"}
    )
    ids = {
        "l1": l1["id"], "l2": l2["id"], "l3": l3["id"], "gw1": base["gateway_id"],
        "gw2": gw2["id"], "event": event["id"], "ward": ward["id"], "empty": empty["id"],
    }  # fmt: skip
    d = date.fromisoformat
    dark = {d("2026-06-20"): 39060, d("2026-06-21"): DARK_0621, d("2026-06-22"): DARK_0622,
            d("2026-07-01"): DARK_0701}  # fmt: skip
    daily = [
        (ids["l1"], d("2026-06-21"), "Phường 1", ids["gw1"], 800.0, 41400.0),
        (ids["l2"], d("2026-06-21"), "Phường 1", ids["gw1"], 300.0, 41400.0),
        (ids["l3"], d("2026-06-21"), "Đông Lễ", ids["gw2"], 900.0, 40000.0),
        (ids["l1"], d("2026-06-22"), "Phường 1", ids["gw1"], 700.0, 41000.0),
        # booked where the energy was used: L3 stood in Phường 2 that day
        (ids["l3"], d("2026-06-22"), "Phường 2", ids["gw2"], 1000.0, 41000.0),
        (ids["l1"], d("2026-07-01"), "Phường 1", ids["gw1"], 650.0, 40500.0),
        (ids["l2"], d("2026-06-20"), "Phường 1", ids["gw1"], 999.0, 40000.0),  # out of range
    ]
    hourly = [  # UTC hours: 11:00Z is 18:00 local
        (ids["l1"], datetime(2026, 6, 21, 11, tzinfo=UTC), 40.0, 1958.0),
        (ids["l2"], datetime(2026, 6, 21, 11, tzinfo=UTC), 15.0, 1958.0),
        (ids["l1"], datetime(2026, 6, 21, 12, tzinfo=UTC), 70.0, 3600.0),
        (ids["l3"], datetime(2026, 6, 21, 13, tzinfo=UTC), 90.0, 3600.0),  # 20:00, out of range
    ]
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(_DAILY),
            [{"luminaire_id": lid, "day": day, "ward": w, "gateway_id": gw, "energy_wh": e,
              "burning_s": b, "samples": 100, "covered_s": 86400.0,
              "covered_dark_s": float(dark[day])} for lid, day, w, gw, e, b in daily],
        )  # fmt: skip
        await conn.execute(
            insert(_HOURLY),
            [{"luminaire_id": lid, "hour": h, "energy_wh": e, "burning_s": b, "samples": 360,
              "covered_s": 3600.0, "covered_dark_s": b} for lid, h, e, b in hourly],
        )  # fmt: skip
    return ids


async def report(api: Api, **params: Any) -> dict[str, Any]:
    """GET /energy as the IOC (viewer key)."""
    body: dict[str, Any] = await api.ok("GET", "/energy", params=params, role=Role.VIEWER)
    return body


async def test_day_by_ward(energy_api: Api, fleet: dict[str, int]) -> None:
    body = await report(
        energy_api, **{"from": "2026-06-21", "to": "2026-06-22"}, interval="day", group_by="ward"
    )
    assert (body["interval"], body["group_by"], body["from"], body["to"]) == (
        "day", "ward", "2026-06-21", "2026-06-22",
    )  # fmt: skip
    assert (body["co2_t_per_mwh"], body["tariff_vnd_per_kwh"]) == (CO2, TARIFF)
    assert body["total"] == 4
    rows = by_period_key(body)
    assert set(rows) == {
        ("2026-06-21", "Phường 1"), ("2026-06-21", "Đông Lễ"),
        ("2026-06-22", "Phường 1"), ("2026-06-22", "Phường 2"),
    }  # fmt: skip
    # L1 (100 W) and L2 (50 W): 800 + 300 Wh against 150 W over 39063 s of darkness
    check(rows["2026-06-21", "Phường 1"], expected(1100, 150 * DARK_0621, 82800, 2))
    check(rows["2026-06-21", "Đông Lễ"], expected(900, 100 * DARK_0621, 40000, 1))
    # L2 did not report on the 22nd: neither its energy nor its baseline counts
    check(rows["2026-06-22", "Phường 1"], expected(700, 100 * DARK_0622, 41000, 1))
    check(rows["2026-06-22", "Phường 2"], expected(1000, 100 * DARK_0622, 41000, 1))
    # coverage: of the dark time of the day x the luminaires in the ward today
    assert {k: (r["coverage"], r["luminaires_inventory"]) for k, r in rows.items()} == {
        ("2026-06-21", "Phường 1"): (1.0, 2), ("2026-06-21", "Đông Lễ"): (1.0, 1),
        ("2026-06-22", "Phường 1"): (0.5, 2),  # L2 did not report
        ("2026-06-22", "Phường 2"): (None, 0),  # nothing stands there today
    }  # fmt: skip
    first = rows["2026-06-21", "Phường 1"]
    assert first["name"] == "Phường 1"
    assert first["period_start"] == "2026-06-21T00:00:00+07:00"
    assert first["period_end"] == "2026-06-22T00:00:00+07:00"
    # spot check of one row fully by hand: 1.1 kWh, baseline 1.63, 32.5 % saved
    assert (first["energy_kwh"], first["baseline_kwh"], first["savings_pct"]) == (
        1.1, 1.63, 32.5,
    )  # fmt: skip
    assert (first["co2_kg"], first["cost_vnd"], first["burning_hours"]) == (0.725, 2449, 23.0)


async def test_month_total_is_clipped_to_the_range(energy_api: Api, fleet: dict[str, int]) -> None:
    body = await report(energy_api, **{"from": "2026-06-21", "to": "2026-07-01"}, interval="month")
    assert [(r["period"], r["key"], r["name"]) for r in body["items"]] == [
        ("2026-06", "all", "Đông Hà"), ("2026-07", "all", "Đông Hà"),
    ]  # fmt: skip
    june, july = body["items"]
    check(
        june,
        expected(
            800 + 300 + 900 + 700 + 1000,
            (100 + 50 + 100) * DARK_0621 + (100 + 100) * DARK_0622,
            41400 * 2 + 40000 + 41000 * 2,
            3,  # distinct luminaires that reported in June (from the 21st)
        ),
    )
    check(july, expected(650, 100 * DARK_0701, 40500, 1))
    assert (june["period_start"], june["period_end"]) == (
        "2026-06-21T00:00:00+07:00", "2026-07-01T00:00:00+07:00",
    )  # fmt: skip
    assert (july["period_start"], july["period_end"]) == (
        "2026-07-01T00:00:00+07:00", "2026-07-02T00:00:00+07:00",
    )  # fmt: skip
    # YYYY-MM is a whole month
    whole = await report(energy_api, **{"from": "2026-06", "to": "2026-06"}, interval="month")
    assert (whole["from"], whole["to"]) == ("2026-06-01", "2026-06-30")
    assert whole["items"][0]["energy_kwh"] == pytest.approx((999 + 3700) / 1000, abs=6e-4)


async def test_groups_count_current_members_in_every_group(
    energy_api: Api, fleet: dict[str, int]
) -> None:
    body = await report(energy_api, **{"from": "2026-06-21", "to": "2026-06-21"}, group_by="group")
    rows = by_period_key(body)
    event, ward = str(fleet["event"]), str(fleet["ward"])
    assert set(rows) == {("2026-06-21", event), ("2026-06-21", ward)}  # empty group: no row
    # L1 is in both groups and counts in both
    check(rows["2026-06-21", event], expected(800 + 900, 200 * DARK_0621, 81400, 2))
    check(rows["2026-06-21", ward], expected(800 + 300, 150 * DARK_0621, 82800, 2))
    assert rows["2026-06-21", event]["name"] == "event"


async def test_gateway_and_luminaire_keys_and_pagination(
    energy_api: Api, fleet: dict[str, int]
) -> None:
    body = await report(
        energy_api, **{"from": "2026-06-21", "to": "2026-06-22"}, group_by="gateway"
    )
    rows = by_period_key(body)
    gw1, gw2 = str(fleet["gw1"]), str(fleet["gw2"])
    check(rows["2026-06-21", gw1], expected(1100, 150 * DARK_0621, 82800, 2))
    assert rows["2026-06-21", gw2]["name"] == "gw-dl"

    pages = []
    for offset in (0, 2, 4):
        page = await report(
            energy_api, **{"from": "2026-06-21", "to": "2026-06-22"},
            group_by="luminaire", limit=2, offset=offset,
        )  # fmt: skip
        assert (page["total"], page["limit"], page["offset"]) == (5, 2, offset)
        pages.append([(r["period"], r["key"], r["name"]) for r in page["items"]])
    l1, l2, l3 = (str(fleet[k]) for k in ("l1", "l2", "l3"))
    assert pages == [
        [("2026-06-21", l1, "P1-LD-001"), ("2026-06-21", l2, "P1-LD-002")],
        [("2026-06-21", l3, "DL-HV-003"), ("2026-06-22", l1, "P1-LD-001")],
        [("2026-06-22", l3, "DL-HV-003")],
    ]
    beyond = await report(
        energy_api, **{"from": "2026-06-21", "to": "2026-06-22"}, group_by="luminaire", offset=10
    )
    assert (beyond["items"], beyond["total"]) == ([], 5)


async def test_hours_in_local_time_with_partly_dark_hours(
    energy_api: Api, fleet: dict[str, int]
) -> None:
    body = await report(
        energy_api,
        **{"from": "2026-06-21T18:00", "to": "2026-06-21T20:00:00+07:00"},
        interval="hour",
        group_by="ward",
    )
    assert (body["from"], body["to"]) == ("2026-06-21T18:00:00+07:00", "2026-06-21T20:00:00+07:00")
    rows = by_period_key(body)
    evening, night = "2026-06-21T18:00+07:00", "2026-06-21T19:00+07:00"
    assert set(rows) == {(evening, "Phường 1"), (night, "Phường 1")}
    # sunset 18:27:22: 32 min 38 s = 1958 s of the 18:00 hour are dark
    check(rows[evening, "Phường 1"], expected(55, 150 * 1958, 3916, 2))
    check(rows[night, "Phường 1"], expected(70, 100 * 3600, 3600, 1))
    assert rows[night, "Phường 1"]["period_end"] == "2026-06-21T20:00:00+07:00"
    # the same instants in UTC give the same report
    utc = await report(
        energy_api, **{"from": "2026-06-21T11:00:00Z", "to": "2026-06-21T13:00:00Z"},
        interval="hour", group_by="ward",
    )  # fmt: skip
    assert utc["items"] == body["items"]


async def test_csv_has_the_json_fields(energy_api: Api, fleet: dict[str, int]) -> None:
    params = {"from": "2026-06-21", "to": "2026-06-22", "group_by": "ward", "limit": 3}
    response = await energy_api.call(
        "GET", "/energy", params={**params, "format": "csv"}, role=Role.VIEWER, expect=200
    )
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="energy_day_ward_2026-06-21_2026-06-22.csv"'
    )
    assert response.headers["x-total-count"] == "4"
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8"))))
    assert table[0] == FIELDS
    body = await report(energy_api, **params)
    assert len(table) == 1 + len(body["items"]) == 4
    for line, row in zip(table[1:], body["items"], strict=True):
        assert line == ["" if row[f] is None else str(row[f]) for f in FIELDS]
    assert any("Phường 1" in line for line in table[1:])


async def test_factors_come_from_settings(
    tmp_path: Any, db: Database, keys: dict[Role, str], clock: ManualClock, fleet: dict[str, int]
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data", energy={"co2_t_per_mwh": 0.5, "tariff_vnd_per_kwh": 2000}
    )
    async with _client(settings, db, clock) as c:
        body = await report(Api(c, keys), **{"from": "2026-06-21", "to": "2026-06-21"})
    row = body["items"][0]
    check(row, expected(2000, 250 * DARK_0621, 122800, 3, co2=0.5, tariff=2000))
    assert (row["co2_kg"], row["cost_vnd"]) == (1.0, 4000)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-06-22", "to": "2026-06-21"}, "to (query)"),
        ({"from": "2026-06-21T10:00", "to": "2026-06-21T10:00", "interval": "hour"}, "to (query)"),
        ({"from": "2026-01-01T00:00", "to": "2026-04-05T00:00", "interval": "hour"}, "to (query)"),
        ({"from": "2016-01-01", "to": "2026-12-31", "interval": "month"}, "to (query)"),
        ({"from": "21/06/2026", "to": "2026-06-22"}, "from (query)"),
        ({"from": "0001-01-01", "to": "0001-01-01"}, "from (query)"),
        ({"from": "9999-12-01", "to": "9999-12-31", "interval": "month"}, "from (query)"),
        ({"from": "2026-06-21T00:00", "to": "9999-12-31T23:00", "interval": "hour"}, "to (query)"),
        ({"from": "2026-06-21", "to": "tomorrow", "interval": "hour"}, "to (query)"),
        ({"to": "2026-06-22"}, "from (query)"),
        ({"from": "2026-06-21", "to": "2026-06-22", "interval": "week"}, "interval (query)"),
        ({"from": "2026-06-21", "to": "2026-06-22", "group_by": "street"}, "group_by (query)"),
        ({"from": "2026-06-21", "to": "2026-06-22", "format": "xlsx"}, "format (query)"),
        ({"from": "2026-06-21", "to": "2026-06-22", "limit": 5000}, "limit (query)"),
    ],
)
async def test_bad_input_names_the_field(
    energy_api: Api, params: dict[str, Any], field: str
) -> None:
    response = await energy_api.call("GET", "/energy", params=params, role=Role.VIEWER, expect=422)
    assert field in {f["field"] for f in response.json()["fields"]}


async def test_any_valid_key_reads(energy_api: Api, fleet: dict[str, int]) -> None:
    params = {"from": "2026-06-21", "to": "2026-06-21"}
    await energy_api.call("GET", "/energy", params=params, role=None, expect=401)
    for role in Role:
        await energy_api.call("GET", "/energy", params=params, role=role, expect=200)


# --- coverage: the baseline covers only what telemetry covered ------------------------------
#
# Everything below is driven through the real telemetry writer (TelemetrySink), as the
# controller drives it: readings in time order, one sink per controller run.

SUNRISE_0621 = 19162  # s after local midnight (05:19:22)
SUNSET_0621 = 66442  # 18:27:22
COUNTER_ZERO = datetime(2026, 6, 1, tzinfo=UTC)
"""When every test lamp's Wh counter read 0: it counts power_w x time from there."""


def at_local(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00")


def lamp_reading(at: datetime, power_w: float) -> Reading:
    return Reading(
        address=Address(1), at=at.astimezone(UTC), lamp_on=power_w > 0, level_pct=50,
        power_w=power_w, voltage_v=230.0, current_ma=200, power_factor=0.95,
        energy_wh=round(power_w * (at - COUNTER_ZERO).total_seconds() / 3600),
        operating_hours=100, switch_on_count=10, temperature_c=30.0,
    )  # fmt: skip


def every(first: str, last: str, step_s: int) -> list[datetime]:
    start, end = at_local(first), at_local(last)
    out = []
    while start <= end:
        out.append(start)
        start += timedelta(seconds=step_s)
    return out


async def run_controller(
    db: Database, settings: Settings, readings: dict[LuminaireRef, list[datetime]], power_w: float
) -> None:
    """One controller run: the readings of every luminaire, in time order, then a flush."""
    sink = new_sink(db, settings)
    events = sorted(
        ((t, ref) for ref, times in readings.items() for t in times), key=lambda e: e[0]
    )
    for t, ref in events:
        sink.offer_readings([(ref, lamp_reading(t, power_w))])
    await sink.flush()


def new_sink(db: Database, settings: Settings) -> TelemetrySink:
    return TelemetrySink(
        db, site=settings.site.to_site(), max_gap_s=settings.energy.coverage_max_gap_s,
        store_raw=False,
    )  # fmt: skip


@pytest.fixture
async def lamps(api: Api, base: dict[str, int]) -> dict[str, LuminaireRef]:
    """L1 100 W and L2 50 W on gateway 1, L3 100 W on gateway 2, no energy yet."""
    lamp50 = await api.ok("POST", "/lamp-types", json={"name": "LED 50 W", "rated_power_w": 50})
    gw2 = await api.ok(
        "POST", "/gateways", json={"name": "gw-dl", "protocol": "mqtt", "mqtt_id": "gw-dl"}
    )
    l1 = await api.ok("POST", "/luminaires", json=luminaire(1, **base))
    l2 = await api.ok("POST", "/luminaires", json=luminaire(2, base["gateway_id"], lamp50["id"]))
    l3 = await api.ok("POST", "/luminaires", json=luminaire(3, gw2["id"], base["lamp_type_id"]))
    return {
        "l1": LuminaireRef(l1["id"], "Phường 1", base["gateway_id"]),
        "l2": LuminaireRef(l2["id"], "Phường 1", base["gateway_id"]),
        "l3": LuminaireRef(l3["id"], "Phường 1", gw2["id"]),
    }


async def test_a_controller_started_at_noon_claims_no_savings_for_the_morning(
    energy_api: Api,
    db: Database,
    settings: Settings,
    clock: ManualClock,
    lamps: dict[str, LuminaireRef],
) -> None:
    """The demo case: started at noon, asked 45 s later; then again at 20:00."""
    refs = list(lamps.values())
    await run_controller(
        db, settings, {r: every("2026-06-21T12:00:00", "2026-06-21T12:00:45", 5) for r in refs}, 10
    )
    clock.set(at_local("2026-06-21T12:00:45"))
    day = (await report(energy_api, **{"from": "2026-06-21", "to": "2026-06-21"}))["items"]
    assert len(day) == 1
    # the night before noon was dark for 19162 s, but nobody measured it
    assert day[0]["baseline_kwh"] == 0.0, day[0]
    assert day[0]["savings_pct"] is None
    assert (day[0]["coverage"], day[0]["luminaires"], day[0]["luminaires_inventory"]) == (
        0.0, 3, 3,
    )  # fmt: skip
    assert day[0]["covered_hours"] == pytest.approx(3 * 45 / 3600, abs=0.006)
    async with db.sessions() as session:
        summary = await energy_summary(session=session, settings=settings, now=clock.now())
    assert (summary.today.baseline_kwh, summary.month.baseline_kwh) == (0.0, 0.0)
    assert summary.today.coverage == 0.0

    # the same controller runs on into the evening: from sunset to 20:00 is covered
    sink_readings = {r: every("2026-06-21T12:01:00", "2026-06-21T20:00:00", 60) for r in refs}
    await run_controller(db, settings, sink_readings, 10)
    clock.set(at_local("2026-06-21T20:00:00"))
    evening = 20 * 3600 - SUNSET_0621  # 5558 s
    day = (await report(energy_api, **{"from": "2026-06-21", "to": "2026-06-21"}))["items"]
    check(day[0], {"baseline_kwh": 250 * evening / 3600 / 1000, "luminaires": 3})
    # a restart at 12:01 left 12:00:45..12:01:00 uncovered: not dark, so no matter here
    assert day[0]["coverage"] == pytest.approx(evening / (SUNRISE_0621 + evening), abs=6e-4)
    hours = await report(
        energy_api, **{"from": "2026-06-21T18:00", "to": "2026-06-21T20:00"}, interval="hour"
    )
    rows = {r["period"]: r for r in hours["items"]}
    check(rows["2026-06-21T18:00+07:00"], {"baseline_kwh": 250 * 1958 / 3600 / 1000})
    check(rows["2026-06-21T19:00+07:00"], {"baseline_kwh": 250 * 3600 / 3600 / 1000})
    assert [r["coverage"] for r in hours["items"]] == [1.0, 1.0]
    async with db.sessions() as session:
        summary = await energy_summary(session=session, settings=settings, now=clock.now())
    assert summary.today.baseline_kwh == pytest.approx(250 * evening / 3600 / 1000, abs=6e-4)


async def test_a_gateway_offline_for_two_hours(
    energy_api: Api,
    db: Database,
    settings: Settings,
    clock: ManualClock,
    lamps: dict[str, LuminaireRef],
) -> None:
    """Gateway 2 (L3) is silent from 19:59 to 22:00: its baseline leaves that out."""
    night = every("2026-06-21T19:00:00", "2026-06-21T23:00:00", 60)
    offline = (at_local("2026-06-21T19:59:00"), at_local("2026-06-21T22:00:00"))
    l3_times = [t for t in night if not offline[0] < t < offline[1]]
    await run_controller(
        db, settings, {lamps["l1"]: night, lamps["l2"]: night, lamps["l3"]: l3_times}, 40
    )
    clock.set(at_local("2026-06-21T23:00:00"))
    gw1, gw2 = str(lamps["l1"].gateway_id), str(lamps["l3"].gateway_id)
    covered_l3 = 4 * 3600 - 7260  # 19:00..19:59 and 22:00..23:00
    dark_so_far = SUNRISE_0621 + 23 * 3600 - SUNSET_0621
    days = by_period_key(
        await report(energy_api, **{"from": "2026-06-21", "to": "2026-06-21"}, group_by="gateway")
    )
    l3_day = days["2026-06-21", gw2]
    check(l3_day, {"baseline_kwh": 100 * covered_l3 / 3600 / 1000, "luminaires": 1})
    assert l3_day["coverage"] == pytest.approx(covered_l3 / dark_so_far, abs=6e-4)
    assert l3_day["luminaires_inventory"] == 1
    check(days["2026-06-21", gw1], {"baseline_kwh": 150 * 4 * 3600 / 3600 / 1000})
    assert days["2026-06-21", gw1]["coverage"] == pytest.approx(4 * 3600 / dark_so_far, abs=6e-4)

    hours = await report(
        energy_api, **{"from": "2026-06-21T19:00", "to": "2026-06-21T23:00"}, interval="hour",
        group_by="total",
    )  # fmt: skip
    rows = {r["period"][11:16]: r for r in hours["items"]}
    check(rows["19:00"], {"baseline_kwh": (150 * 3600 + 100 * 3540) / 3600 / 1000})
    assert rows["19:00"]["coverage"] == pytest.approx((2 * 3600 + 3540) / (3 * 3600), abs=6e-4)
    for hour in ("20:00", "21:00"):  # two of three luminaires reported
        check(rows[hour], {"baseline_kwh": 150 / 1000, "luminaires": 2})
        assert (rows[hour]["coverage"], rows[hour]["luminaires_inventory"]) == (0.667, 3)
    assert rows["22:00"]["coverage"] == 1.0


async def test_the_dashboard_counts_the_same_way(
    energy_api: Api,
    db: Database,
    settings: Settings,
    clock: ManualClock,
    keys: dict[Role, str],
    lamps: dict[str, LuminaireRef],
) -> None:
    """The overview's "saved today" and the energy page, 45 s after a noon start."""
    refs = list(lamps.values())
    await run_controller(
        db, settings, {r: every("2026-06-21T12:00:00", "2026-06-21T12:00:45", 5) for r in refs}, 10
    )
    clock.set(at_local("2026-06-21T12:00:45"))
    web = energy_api.client
    signed_in = await web.post("/login", data={"key": keys[Role.VIEWER], "next": "/"})
    assert signed_in.status_code == 303, signed_in.text
    overview = (await web.get("/", params={"lang": "en"})).text
    energy_card = overview[overview.index('id="h-energy"') :][:1500]
    assert "saved 0.0 kWh (—)" in energy_card, energy_card
    assert "against the 0 % of dark time with telemetry" in overview
    page = (await web.get("/energy", params={"from": "2026-06-21", "to": "2026-06-21"})).text
    coverage = re.search(r'<dd id="energy-coverage">([^<]*)</dd>', page)
    assert coverage is not None and coverage.group(1) == "0.0 %"
