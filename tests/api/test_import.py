"""Bulk import: CSV and GeoJSON, all or nothing, every bad row reported."""

from __future__ import annotations

import json
from typing import Any

from controller.access.schemas import Role
from controller.demo.seed import demo_inventory
from tests.api.conftest import Api

HEADER = "name,gateway,address,lamp_type,latitude,longitude,street,ward,installed_on\n"


def csv_row(n: int, **over: Any) -> str:
    values = {
        "name": f"HV-{n:03d}",
        "gateway": "gw-test-1",
        "address": str(n),
        "lamp_type": "LED 100 W",
        "latitude": f"{16.81 + n * 1e-4:.6f}",
        "longitude": "107.1",
        "street": "Hùng Vương",
        "ward": "Đông Lễ",
        "installed_on": "2024-05-01",
    }
    values.update({k: str(v) for k, v in over.items()})
    return ",".join(values[c] for c in HEADER.strip().split(",")) + "\n"


async def _count(api: Api) -> int:
    return int((await api.ok("GET", "/luminaires?limit=1"))["total"])


async def test_csv_import(api: Api, base: dict[str, int]) -> None:
    body = HEADER + "".join(csv_row(n) for n in range(100))
    r = await api.ok(
        "POST",
        "/luminaires/import",
        content=body.encode(),
        headers={"Content-Type": "text/csv"},
        expect=200,
        role=Role.OPERATOR,
    )
    assert r == {
        "imported": 100,
        "gateways_created": 0,
        "gateways_updated": 0,
        "lamp_types_created": 0,
    }
    assert await _count(api) == 100
    item = (await api.ok("GET", "/luminaires", params={"q": "HV-042"}))["items"][0]
    assert (item["address"], item["ward"], item["installed_on"]) == (42, "Đông Lễ", "2024-05-01")
    audit = (await api.ok("GET", "/audit", params={"entity": "luminaire"}))["items"][0]
    assert audit["action"] == "import" and audit["after"]["luminaires"] == 100


async def test_csv_with_bad_rows_imports_nothing_and_reports_every_row(
    api: Api, base: dict[str, int]
) -> None:
    await api.ok(
        "POST",
        "/luminaires/import",
        content=(HEADER + csv_row(0)).encode(),
        headers={"Content-Type": "text/csv"},
        expect=200,
    )
    rows = [
        csv_row(1),
        csv_row(2, latitude="north"),  # row 3
        csv_row(3),
        csv_row(4, gateway="gw-nope", lamp_type="LED 9000 W"),  # row 5
        csv_row(5, address=1, name="dup-addr"),  # row 6: same address as row 2
        csv_row(6, name="HV-000"),  # row 7: name exists in the database
        csv_row(7, address=500),  # row 8: beyond capacity (128)
        csv_row(8, installed_on="yesterday"),  # row 9
    ]
    r = await api.call(
        "POST",
        "/luminaires/import",
        content=(HEADER + "".join(rows)).encode(),
        headers={"Content-Type": "text/csv"},
        expect=422,
    )
    body = r.json()
    problems = {(f["row"], f["field"]) for f in body["fields"]}
    assert problems == {
        (3, "latitude"),
        (5, "gateway"),
        (5, "lamp_type"),
        (6, "address"),
        (7, "name"),
        (8, "address"),
        (9, "installed_on"),
    }
    assert "6 row(s) are invalid; nothing was imported" in body["message"]
    assert await _count(api) == 1


async def test_csv_header_problems(api: Api, base: dict[str, int]) -> None:
    r = await api.call(
        "POST",
        "/luminaires/import",
        content=b"name,gateway,colour\nx,y,z\n",
        headers={"Content-Type": "text/csv"},
        expect=422,
    )
    fields = {(f["field"], f["message"]) for f in r.json()["fields"]}
    assert ("colour", "unknown column") in fields
    assert ("latitude", "required column is missing") in fields
    r = await api.call(
        "POST",
        "/luminaires/import",
        content=b"\xff\xfe\x00",
        headers={"Content-Type": "text/csv"},
        expect=422,
    )
    assert r.json()["fields"][0]["field"] == "file"


async def test_geojson_bundle_creates_gateways_and_lamp_types(api: Api) -> None:
    bundle = demo_inventory()
    r = await api.ok("POST", "/luminaires/import", json=bundle, expect=200)
    assert r == {
        "imported": 500,
        "gateways_created": 10,
        "gateways_updated": 0,
        "lamp_types_created": 3,
    }
    gateways = await api.ok("GET", "/gateways")
    assert {g["protocol"] for g in gateways["items"]} == {"modbus", "mqtt"}
    wards = {lum["ward"] for lum in (await api.ok("GET", "/luminaires?limit=1000"))["items"]}
    assert len(wards) == 9
    # the same file again: gateways are updated in place, every luminaire is a duplicate
    r = await api.call("POST", "/luminaires/import", json=bundle, expect=422)
    assert len({f["row"] for f in r.json()["fields"]}) == 500
    assert await _count(api) == 500


async def test_geojson_feature_errors_are_numbered(api: Api, base: dict[str, int]) -> None:
    good = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [107.1, 16.8]},
        "properties": {
            "name": "A",
            "gateway": "gw-test-1",
            "address": 0,
            "lamp_type": "LED 100 W",
            "street": "Lê Lợi",
            "ward": "Phường 3",
        },
    }
    bad_geometry = {**good, "geometry": {"type": "LineString", "coordinates": []}}
    bad_level = {**good, "properties": {**good["properties"], "name": "B", "address": -1}}
    doc = {"type": "FeatureCollection", "features": [good, bad_geometry, good]}
    r = await api.call("POST", "/luminaires/import", json=doc, expect=422)
    assert [(f["row"], f["field"]) for f in r.json()["fields"]] == [(2, "geometry")]
    doc = {"type": "FeatureCollection", "features": [good, bad_level, good]}
    r = await api.call("POST", "/luminaires/import", json=doc, expect=422)
    assert {(f["row"], f["field"]) for f in r.json()["fields"]} == {
        (2, "address"),
        (3, "name"),
        (3, "address"),
    }
    r = await api.call(
        "POST",
        "/luminaires/import",
        content=b"{",
        headers={"Content-Type": "application/geo+json"},
        expect=422,
    )
    assert "not valid JSON" in r.json()["message"]
    assert await _count(api) == 0


async def test_multipart_upload(api: Api, base: dict[str, int]) -> None:
    body = HEADER + csv_row(0) + csv_row(1)
    r = await api.ok(
        "POST",
        "/luminaires/import",
        files={"file": ("poles.csv", body.encode(), "text/csv")},
        expect=200,
    )
    assert r["imported"] == 2
    await api.call(
        "POST",
        "/luminaires/import",
        files={"file": ("poles.csv", body.encode(), "text/csv")},
        role=Role.VIEWER,
        expect=403,
    )


async def test_import_payload_shape_in_json_fields(api: Api, base: dict[str, int]) -> None:
    """Every reported problem carries row, field and message."""
    r = await api.call(
        "POST",
        "/luminaires/import",
        content=(HEADER + csv_row(0, ward="")).encode(),
        headers={"Content-Type": "text/csv"},
        expect=422,
    )
    problem = r.json()["fields"][0]
    assert set(problem) == {"row", "field", "message"}
    assert json.dumps(problem, ensure_ascii=False)
