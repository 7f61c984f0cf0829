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
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Table, insert

from api.app import create_app
from controller.config.settings import Settings, load_settings
from controller.core.clock import ManualClock
from controller.inventory.schemas import Role
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

    L1 100 W and L2 50 W in Phường 1 on gateway 1; L3 100 W in Đông Lễ on gateway 2.
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
        (ids["l1"], datetime(2026, 6, 21, 11, tzinfo=UTC), 40.0, 1929.0),
        (ids["l2"], datetime(2026, 6, 21, 11, tzinfo=UTC), 15.0, 1929.0),
        (ids["l1"], datetime(2026, 6, 21, 12, tzinfo=UTC), 70.0, 3600.0),
        (ids["l3"], datetime(2026, 6, 21, 13, tzinfo=UTC), 90.0, 3600.0),  # 20:00, out of range
    ]
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(_DAILY),
            [{"luminaire_id": lid, "day": day, "ward": w, "gateway_id": gw, "energy_wh": e,
              "burning_s": b, "samples": 100} for lid, day, w, gw, e, b in daily],
        )  # fmt: skip
        await conn.execute(
            insert(_HOURLY),
            [{"luminaire_id": lid, "hour": h, "energy_wh": e, "burning_s": b, "samples": 360}
             for lid, h, e, b in hourly],
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
    check(rows[evening, "Phường 1"], expected(55, 150 * 1958, 3858, 2))
    check(rows[night, "Phường 1"], expected(70, 100 * 3600, 3600, 1))
    assert rows[night, "Phường 1"]["period_end"] == "2026-06-21T20:00:00+07:00"
    # the same instants in UTC give the same report
    utc = await report(
        energy_api, **{"from": "2026-06-21T11:00:00Z", "to": "2026-06-21T13:00:00Z"},
        interval="hour", group_by="ward",
    )  # fmt: skip
    assert utc["items"] == body["items"]


async def test_baseline_stops_at_now(
    energy_api: Api, fleet: dict[str, int], clock: ManualClock
) -> None:
    clock.set(datetime.fromisoformat("2026-06-21T19:30:00+07:00"))
    hours = await report(
        energy_api, **{"from": "2026-06-21T19:00", "to": "2026-06-21T20:00"}, interval="hour"
    )
    check(hours["items"][0], expected(70, 100 * 1800, 3600, 1))  # half of the hour has passed
    days = await report(energy_api, **{"from": "2026-06-21", "to": "2026-06-21"})
    # dark so far: midnight to sunrise (19162 s) and sunset to 19:30 (3758 s)
    check(days["items"][0], expected(2000, 250 * (19162 + 3758), 122800, 3))


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
