"""Alert e-mails end to end: a fault injected on the fake fleet reaches a real SMTP server.

One accelerated night (60x) against a fake Modbus fleet; two e-mail rules: the ward's crew
gets one e-mail per alert of its ward, the chief one digest a minute of every alert. Digest
windows are wall-clock minutes (the outbox runs on wall time, see docs/faults.md), so the
test injects early in a minute and waits for the minute to end.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from controller.access import auth
from controller.access.schemas import Role
from controller.config.settings import Settings, load_settings
from controller.core.clock import AcceleratedClock
from controller.inventory.importer import ImportFormat, import_inventory
from controller.loop.runtime import Controller
from controller.store import migrate
from controller.store.db import Database, open_database
from controller.store.tables import AlertOutbox, FaultRow
from fake_luminaires.fleet import Fleet, specs_from_bundle
from tests.e2e.receivers import SmtpInbox, bundle_of, eventually

pytestmark = pytest.mark.slow

START = datetime(2026, 6, 21, 13, 0, tzinfo=UTC)  # 20:00 local: lights at 100 %
CREW = "doi1@dongha.vn"
CHIEF = "truong@dongha.vn"


def bundle() -> dict[str, Any]:
    gateways = [
        {"name": "gw-a", "protocol": "modbus", "host": "127.0.0.1", "port": 1, "unit_ids": [1],
         "ward": "Phường 1"},
        {"name": "gw-b", "protocol": "modbus", "host": "127.0.0.1", "port": 1, "unit_ids": [1],
         "ward": "Đông Lễ"},
    ]  # fmt: skip
    return bundle_of(gateways, {"gw-a": 4, "gw-b": 4})


def _settings(tmp_path: Path, smtp_port: int) -> Settings:
    return load_settings(
        data_dir=tmp_path,
        modbus={"poll_interval_s": 10, "timeout_s": 0.3, "retries": 0},
        alerts={
            "mqtt": False,
            "language": "en",
            "retry_base_s": 0.2,
            "email": {
                "host": "127.0.0.1", "port": smtp_port, "starttls": False,
                "sender": "den@dongha.vn",
                "rules": [
                    {"name": "crew", "to": [CREW], "mode": "each", "wards": ["Phường 1"]},
                    {"name": "chief", "to": [CHIEF], "mode": "digest", "digest_interval_min": 1},
                ],
            },
        },
    )  # fmt: skip


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'mail.db'}")
    await migrate.prepare(db)
    try:
        yield db
    finally:
        await db.dispose()


async def _open_types(db: Database) -> set[str]:
    async with db.sessions() as session:
        rows = (await session.exec(select(FaultRow).where(FaultRow.state != "resolved"))).all()
    return {r.fault_type for r in rows}


async def _early_in_a_minute() -> None:
    """Wait until the wall clock is 1-25 s into a minute: transitions of the next few seconds
    then share one digest window."""
    second = time.time() % 60
    if not 1 <= second <= 25:
        await asyncio.sleep((61 - second) % 60)


async def test_a_fault_reaches_smtp_as_an_e_mail_and_in_a_digest(
    tmp_path: Path, database: Database
) -> None:
    with SmtpInbox() as inbox:
        settings = _settings(tmp_path, inbox.port)
        clock = AcceleratedClock(START, 60.0, time.time())
        inventory = bundle()
        fleet = Fleet(specs_from_bundle(inventory), clock=clock, mqtt=None, seed=5)
        async with fleet, asyncio.TaskGroup() as tg:
            async with database.sessions() as session:
                await import_inventory(
                    session=session, data=json.dumps(fleet.inventory(inventory)).encode(),
                    fmt=ImportFormat.GEOJSON, actor=auth.Principal(name="e2e", role=Role.ADMIN),
                )  # fmt: skip
            controller = Controller(settings, database, clock)
            loops = tg.create_task(controller.run(), name="controller")
            await controller.wait_ready()
            await asyncio.sleep(3)  # 3 simulated minutes: lamps on and warmed up
            assert await _open_types(database) == set()
            await _early_in_a_minute()
            await fleet.inject("gw-a", "lamp_failure", 0)  # Phường 1: the crew's ward
            await fleet.inject("gw-b", "mains_loss")  # Đông Lễ: only the chief's digest

            async def both_open() -> bool:
                return await _open_types(database) == {"lampFailure", "supplyLoss"}

            await eventually(both_open, 20, "lampFailure and supplyLoss open")

            async def crew_mailed() -> bool:
                return len(inbox.to(CREW)) >= 1

            await eventually(crew_mailed, 15, "the crew's e-mail for the lamp failure")
            async with database.sessions() as session:
                queued = (
                    await session.exec(select(AlertOutbox).where(AlertOutbox.channel == "digest"))
                ).all()
            assert len(queued) == 2
            window_end = math.ceil(max(r.created_at for r in queued).timestamp() / 60) * 60

            async def chief_mailed() -> bool:
                return len(inbox.to(CHIEF)) >= 1

            await eventually(chief_mailed, 90, "the chief's digest at the end of the minute")
            await asyncio.sleep(1)  # nothing else may follow for the same window
            loops.cancel()

    crew = inbox.to(CREW)
    assert len(crew) == 1, [m.message["Subject"] for m in crew]  # the supplyLoss is not its ward
    subject = str(crew[0].message["Subject"])
    assert "lampFailure" in subject and "gw-a-00" in subject and "critical" in subject, subject
    assert "gw-a-00" in crew[0].text and "has failed" in crew[0].text
    assert str(crew[0].message["From"]) == "den@dongha.vn"

    chief = inbox.to(CHIEF)
    assert len(chief) == 1, [m.message["Subject"] for m in chief]
    digest = chief[0]
    assert "digest" in str(digest.message["Subject"]).lower()
    assert "gw-a-00" in digest.text and "gw-b" in digest.text  # both faults, one message
    assert "has failed" in digest.text and "reports mains lost" in digest.text
    assert digest.received_at >= window_end, "the digest went out before its minute ended"
    async with database.sessions() as session:
        left = (
            await session.exec(select(AlertOutbox).where(col(AlertOutbox.delivered_at).is_(None)))
        ).all()
    assert left == []
