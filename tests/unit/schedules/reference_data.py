"""Loads the NREL SPA reference table (see ``reference/make_sun_reference.py``)."""

from __future__ import annotations

import csv
import functools
from datetime import date, datetime
from pathlib import Path

from schedules.sun import Site, SunEvent

SPA_CSV = Path(__file__).parent / "reference" / "sun_dong_ha_spa.csv"

DONG_HA_SEA_LEVEL = Site(
    name="Đông Hà (sea level)",
    latitude=16.8163,
    longitude=107.1003,
    elevation_m=0.0,
    timezone="Asia/Ho_Chi_Minh",
)
"""The SPA reference is for an observer at sea level (SPA rise/set has no elevation)."""


@functools.cache
def spa_reference() -> dict[date, dict[SunEvent, datetime]]:
    """Every date of 2026-2027 -> the six SPA events, aware local datetimes (ms)."""
    with SPA_CSV.open(encoding="utf-8") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    table: dict[date, dict[SunEvent, datetime]] = {}
    for row in csv.DictReader(lines):
        table[date.fromisoformat(row["date"])] = {
            event: datetime.fromisoformat(row[event.value]) for event in SunEvent
        }
    return table
