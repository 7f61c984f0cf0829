"""A synthetic Đông Hà inventory for the demo: 9 wards, real street names, 500 luminaires.

The street lines are plausible, not surveyed: coordinates follow straight or
bent segments around the city centre (16.8163 N, 107.1003 E). The seed goes
through the same importer as a user's file, so it is validated the same way.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.access.auth import Principal
from controller.access.schemas import Role
from controller.inventory import data as inventory
from controller.inventory.importer import ImportFormat, ImportResult, import_inventory
from controller.inventory.schemas import GroupCreate, GroupKind
from controller.store.tables import Luminaire, LuminaireGroup

WARDS = (
    "Phường 1",
    "Phường 2",
    "Phường 3",
    "Phường 4",
    "Phường 5",
    "Đông Giang",
    "Đông Lễ",
    "Đông Lương",
    "Đông Thanh",
)

LAMP_TYPES: tuple[dict[str, Any], ...] = (
    {
        "name": "LED 100 W",
        "rated_power_w": 100.0,
        "power_tolerance_pct": 15.0,
        "min_dim_level_pct": 10,
        "nominal_voltage_v": 220.0,
        "description": "Typical 100 W LED street lantern, DALI-2/D4i driver",
    },
    {
        "name": "LED 150 W",
        "rated_power_w": 150.0,
        "power_tolerance_pct": 15.0,
        "min_dim_level_pct": 10,
        "nominal_voltage_v": 220.0,
        "description": "150 W LED lantern for national roads and arterials",
    },
    {
        "name": "LED 60 W",
        "rated_power_w": 60.0,
        "power_tolerance_pct": 20.0,
        "min_dim_level_pct": 15,
        "nominal_voltage_v": 220.0,
        "description": "60 W LED lantern for residential streets",
    },
)

DEMO_MODBUS_BASE_PORT = 15020
"""Modbus gateway ``i`` of the demo listens on 127.0.0.1:(base + i)."""


@dataclass(frozen=True, slots=True)
class _Segment:
    gateway: str
    protocol: str
    ward: str
    street: str
    code: str
    lamp_type: str
    count: int
    line: tuple[tuple[float, float], ...]  # (lat, lon) vertices


SEGMENTS = (
    _Segment("gw-p1-le-duan", "modbus", "Phường 1", "Lê Duẩn", "LD", "LED 150 W", 50,
             ((16.8172, 107.0905), (16.8163, 107.1003), (16.8152, 107.1118))),
    _Segment("gw-p5-le-duan", "modbus", "Phường 5", "Lê Duẩn", "LD", "LED 150 W", 50,
             ((16.8215, 107.0720), (16.8196, 107.0810), (16.8175, 107.0898))),
    _Segment("gw-dl-hung-vuong", "mqtt", "Đông Lễ", "Hùng Vương", "HV", "LED 100 W", 50,
             ((16.8095, 107.1012), (16.8030, 107.1022), (16.7965, 107.1035))),
    _Segment("gw-p2-hung-vuong", "modbus", "Phường 2", "Hùng Vương", "HV", "LED 100 W", 50,
             ((16.8345, 107.0962), (16.8250, 107.0985), (16.8170, 107.1000))),
    _Segment("gw-p3-le-loi", "mqtt", "Phường 3", "Lê Lợi", "LL", "LED 100 W", 50,
             ((16.8238, 107.1002), (16.8212, 107.1058), (16.8190, 107.1110))),
    _Segment("gw-dg-le-loi", "modbus", "Đông Giang", "Lê Lợi", "LL", "LED 100 W", 50,
             ((16.8190, 107.1112), (16.8176, 107.1180), (16.8160, 107.1250))),
    _Segment("gw-p1-tran-hung-dao", "mqtt", "Phường 1", "Trần Hưng Đạo", "THD", "LED 100 W", 50,
             ((16.8228, 107.0930), (16.8200, 107.0998), (16.8168, 107.1068))),
    _Segment("gw-dt-nguyen-hue", "modbus", "Đông Thanh", "Nguyễn Huệ", "NH", "LED 60 W", 50,
             ((16.8290, 107.1060), (16.8330, 107.1100), (16.8372, 107.1135))),
    _Segment("gw-dlu-ly-thuong-kiet", "mqtt", "Đông Lương", "Lý Thường Kiệt", "LTK",
             "LED 60 W", 50, ((16.8040, 107.0880), (16.8020, 107.0950), (16.7998, 107.1010))),
    _Segment("gw-p4-ham-nghi", "modbus", "Phường 4", "Hàm Nghi", "HN", "LED 60 W", 50,
             ((16.8120, 107.0935), (16.8085, 107.0960), (16.8050, 107.0990))),
)  # fmt: skip

_WARD_CODES = {
    "Phường 1": "P1",
    "Phường 2": "P2",
    "Phường 3": "P3",
    "Phường 4": "P4",
    "Phường 5": "P5",
    "Đông Giang": "DG",
    "Đông Lễ": "DL",
    "Đông Lương": "DLU",
    "Đông Thanh": "DT",
}


def _along(line: tuple[tuple[float, float], ...], fraction: float) -> tuple[float, float]:
    """The point at ``fraction`` (0..1) of the polyline's length (flat-earth is fine here)."""
    lengths = [
        ((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2) ** 0.5 for a, b in itertools.pairwise(line)
    ]
    target = fraction * sum(lengths)
    for (a, b), length in zip(itertools.pairwise(line), lengths, strict=True):
        if target <= length or length == 0:
            t = 0.0 if length == 0 else target / length
            return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
        target -= length
    return line[-1]


def demo_inventory() -> dict[str, Any]:
    """The demo inventory as an import bundle (GeoJSON with gateways and lamp types)."""
    gateways: list[dict[str, Any]] = []
    features: list[dict[str, Any]] = []
    modbus_index = 0
    for seg in SEGMENTS:
        mid_lat, mid_lon = _along(seg.line, 0.5)
        gateway: dict[str, Any] = {
            "name": seg.gateway,
            "protocol": seg.protocol,
            "ward": seg.ward,
            "latitude": round(mid_lat, 6),
            "longitude": round(mid_lon, 6),
        }
        if seg.protocol == "modbus":
            modbus_index += 1
            gateway |= {
                "host": "127.0.0.1",
                "port": DEMO_MODBUS_BASE_PORT + modbus_index,
                "unit_ids": [1],
            }
        else:
            gateway["mqtt_id"] = seg.gateway
        gateways.append(gateway)
        for i in range(seg.count):
            lat, lon = _along(seg.line, (i + 0.5) / seg.count)
            side = 0.00012 if i % 2 else -0.00012  # poles on both sides of the road
            features.append(
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "Point",
                        "coordinates": [round(lon + side, 6), round(lat + side, 6)],
                    },
                    "properties": {
                        "name": f"{_WARD_CODES[seg.ward]}-{seg.code}-{i + 1:03d}",
                        "gateway": seg.gateway,
                        "address": i,
                        "lamp_type": seg.lamp_type,
                        "street": seg.street,
                        "ward": seg.ward,
                        "installed_on": "2024-06-01",
                    },
                }
            )
    return {
        "type": "FeatureCollection",
        "gateways": gateways,
        "lamp_types": list(LAMP_TYPES),
        "features": features,
    }


SEED_ACTOR = Principal(name="seed-demo", role=Role.ADMIN)


async def seed_demo(*, session: AsyncSession, force: bool = False) -> ImportResult | None:
    """Load the demo inventory and one group per ward; None when data already exists."""
    existing = (await session.exec(select(func.count()).select_from(Luminaire))).one()
    if existing and not force:
        return None
    result = await import_inventory(
        session=session,
        data=json.dumps(demo_inventory()).encode(),
        fmt=ImportFormat.GEOJSON,
        actor=SEED_ACTOR,
    )
    have = set((await session.exec(select(LuminaireGroup.name))).all())
    for ward in WARDS:
        name = f"Ward {ward}"
        if name not in have:
            await inventory.create_group(
                session=session,
                data=GroupCreate(
                    name=name,
                    description=f"Every luminaire in {ward}",
                    kind=GroupKind.WARD,
                    selector=ward,
                ),
                actor=SEED_ACTOR,
            )
    return result
