"""A luminaire deleted through the API while the controller still has telemetry for it.

Found by the fuzz test against a running system: the controller had readings and state
changes of a luminaire in its buffer when ``DELETE /luminaires/{id}`` removed it, the batch
failed on the foreign key, and the writer retried that same batch for ever, so no
telemetry of any luminaire reached the database again. The rows of a deleted luminaire are
dropped; the others land.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import func, select

from controller.config.settings import Settings
from controller.core.values import Address, Reading
from controller.loop.telemetry import LuminaireRef, StateRecord, TelemetrySink
from controller.store.db import Database
from controller.store.tables import EnergyHourly, ReadingRow, StateChange
from tests.api.conftest import Api, luminaire


def _reading(at: datetime, counter: int) -> Reading:
    return Reading(
        address=Address(1), at=at, lamp_on=True, level_pct=100, power_w=30.0,
        voltage_v=230.0, current_ma=130, power_factor=0.95, energy_wh=counter,
        operating_hours=100, switch_on_count=10, temperature_c=30.0,
    )  # fmt: skip


async def _count(db: Database, table: type, luminaire_id: int) -> int:
    async with db.sessions() as session:
        column = table.luminaire_id  # type: ignore[attr-defined]
        stmt = select(func.count()).select_from(table).where(column == luminaire_id)
        return int((await session.exec(stmt)).one())


async def test_telemetry_of_a_deleted_luminaire_does_not_block_the_others(
    api: Api, base: dict[str, int], db: Database, settings: Settings
) -> None:
    kept = await api.ok("POST", "/luminaires", json=luminaire(1, **base))
    gone = await api.ok("POST", "/luminaires", json=luminaire(2, **base))
    sink = TelemetrySink(db, site=settings.site.to_site())
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    for lum in (kept, gone):
        ref = LuminaireRef(lum["id"], lum["ward"], base["gateway_id"])
        for minute, counter in ((0, 1000), (10, 1005)):
            sink.offer_readings([(ref, _reading(start + timedelta(minutes=minute), counter))])
        sink.offer_states([StateRecord(lum["id"], start, "target", 100, "program", "test")])

    await api.ok("DELETE", f"/luminaires/{gone['id']}")
    await sink.flush()

    assert sink.depth == 0, "the batch is still waiting to be written"
    assert await _count(db, ReadingRow, kept["id"]) == 2
    assert await _count(db, StateChange, kept["id"]) == 1
    assert await _count(db, EnergyHourly, kept["id"]) >= 1
    assert await _count(db, ReadingRow, gone["id"]) == 0
    # and what comes next is written too
    later = start + timedelta(minutes=20)
    sink.offer_states([StateRecord(kept["id"], later, "actual", 100)])
    await sink.flush()
    assert await _count(db, StateChange, kept["id"]) == 2
