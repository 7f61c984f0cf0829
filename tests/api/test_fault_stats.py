"""Fault statistics computed in SQL equal the per-fault arithmetic they replaced (both DBs).

The means are over microsecond-exact durations: times just before a whole second (which
SQLite's date functions would round up), across midnight and months, some faults never
acknowledged or repaired, gateway faults (no luminaire), faults outside the period.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert

from controller.faults.data import fault_stats
from controller.store.db import Database
from controller.store.tables import FaultRow
from tests.api.conftest import Api, luminaire

_FAULT: Table = FaultRow.__table__  # type: ignore[attr-defined]
START = datetime(2026, 5, 1, tzinfo=UTC)
END = datetime(2026, 8, 1, tzinfo=UTC)


def expected_means(rows: list[dict[str, Any]], start: datetime, end: datetime) -> dict[str, Any]:
    """Per ward: (opened, mean time to acknowledge, to repair), as the Python loop did it."""
    per: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if start <= row["since"] < end:
            per.setdefault(row["ward"], []).append(row)

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 1) if values else None

    return {
        ward: (
            len(items),
            mean([(r["acknowledged_at"] - r["since"]).total_seconds()
                  for r in items if r["acknowledged_at"] is not None]),
            mean([(r["resolved_at"] - r["since"]).total_seconds()
                  for r in items if r["resolved_at"] is not None]),
        )
        for ward, items in per.items()
    }  # fmt: skip


async def test_means_and_ratios(api: Api, db: Database, base: dict[str, int]) -> None:
    wards = ["Phường 1", "Đông Lễ", "Phường 2"]
    ids = [
        (await api.ok("POST", "/luminaires", json=luminaire(n, **base, ward=wards[n % 3])))["id"]
        for n in range(6)
    ]
    rnd = random.Random(5)
    rows = []
    for n in range(400):
        lum = ids[n % 6]
        since = START - timedelta(days=10) + timedelta(seconds=rnd.uniform(0, 110 * 86400))
        if n % 7 == 0:  # a few microseconds before a whole second
            since = since.replace(microsecond=999_700 + n % 300)
        acked = since + timedelta(seconds=rnd.expovariate(1 / 5000)) if n % 3 else None
        if acked is not None and n % 5 == 0:
            acked = acked.replace(microsecond=999_999)
        resolved = since + timedelta(seconds=rnd.expovariate(1 / 90000)) if n % 4 else None
        if resolved is not None and acked is not None and resolved < acked:
            resolved = acked + timedelta(microseconds=1)
        gateway = n % 11 == 0
        rows.append(
            {"subject_kind": "gateway" if gateway else "luminaire",
             "subject_id": base["gateway_id"] if gateway else lum,
             "luminaire_id": None if gateway else lum, "gateway_id": base["gateway_id"],
             "fault_type": f"type{n}", "severity": "critical" if n % 2 else "warning",
             "state": "resolved" if resolved else "acknowledged" if acked else "open",
             "ward": wards[n % 6 % 3], "street": "Lê Duẩn", "since": since,
             "last_seen": since, "count": 1, "evidence": None, "acknowledged_at": acked,
             "resolved_at": resolved}
        )  # fmt: skip
    async with db.engine.begin() as conn:
        await conn.execute(insert(_FAULT), rows)

    for start, end in ((START, END), (START + timedelta(days=40), START + timedelta(days=41))):
        async with db.sessions() as session:
            stats = await fault_stats(session=session, start=start, end=end)
        got = {w.ward: (w.opened, w.mean_time_to_acknowledge_s, w.mean_time_to_repair_s)
               for w in stats.wards if w.opened}  # fmt: skip
        assert got == expected_means(rows, start, end)
    by_ward = {w.ward: w for w in stats.wards}
    for ward in wards:
        active = {
            r["luminaire_id"]
            for r in rows
            if r["ward"] == ward and r["resolved_at"] is None and r["luminaire_id"]
        }
        critical = {r["luminaire_id"] for r in rows if r["ward"] == ward
                    and r["resolved_at"] is None and r["luminaire_id"]
                    and r["severity"] == "critical"}  # fmt: skip
        w = by_ward[ward]
        assert (w.luminaires, w.faulty, w.critical) == (2, len(active), len(critical))
        assert w.faulty_ratio == round(len(active) / 2, 4)
