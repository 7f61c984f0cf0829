"""Faults end to end: inject on the fake fleet, see faults, alerts on MQTT and a webhook.

One accelerated night (60x) against a fake fleet of both protocols on a real mosquitto;
every luminaire fault the fakes can show is injected at once on its own luminaire,
mains loss on a 64-luminaire gateway, silence on another; then everything is cleared.
Then delivery across a receiver outage and a graceful restart, and across a SIGKILL of
``streetlight serve`` between the receiver's answer and the outbox commit (at-least-once).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, func, select

from controller.access import auth
from controller.access.schemas import Role
from controller.config.settings import Settings, load_settings
from controller.core.clock import AcceleratedClock, SystemClock
from controller.inventory.importer import ImportFormat, import_inventory
from controller.loop.runtime import Controller
from controller.scheduling.overrides import OverrideCreate, OverrideTargets, create_override
from controller.store import migrate
from controller.store.db import Database, open_database
from controller.store.tables import AlertOutbox, FaultRow, Luminaire
from fake_luminaires.fleet import Fleet, specs_from_bundle
from tests.conftest import free_port, stop_processes
from tests.e2e.receivers import AlertSubscriber, WebhookReceiver, bundle_of, eventually
from tests.integration.conftest import MqttBroker

pytestmark = pytest.mark.slow

SECRET = "e2e-webhook-secret"
START = datetime(2026, 6, 21, 13, 0, tzinfo=UTC)  # 20:00 local: lights at 100 %


def bundle() -> dict[str, Any]:
    gateways = [
        {"name": "gw-a", "protocol": "modbus", "host": "127.0.0.1", "port": 1, "unit_ids": [1],
         "ward": "Phường 1"},
        {"name": "gw-b", "protocol": "modbus", "host": "127.0.0.1", "port": 1, "unit_ids": [1],
         "ward": "Đông Lễ"},
        {"name": "gw-c", "protocol": "mqtt", "mqtt_id": "gw-c", "ward": "Phường 3"},
        {"name": "gw-d", "protocol": "mqtt", "mqtt_id": "gw-d", "ward": "Phường 3"},
    ]  # fmt: skip
    sizes = {"gw-a": 12, "gw-b": 64, "gw-c": 4, "gw-d": 2}
    return bundle_of(gateways, sizes)


# (gateway, address, fake fault) -> the fault type expected on that luminaire
LUMINAIRE_FAULTS = {
    ("gw-a", 0, "lamp_failure"): "lampFailure",
    ("gw-a", 1, "driver_failure"): "controlGearFailure",
    ("gw-a", 2, "not_answering"): "controlGearCommFailure",
    ("gw-a", 3, "power_high"): "lampPowerTooHigh",
    ("gw-a", 4, "power_low"): "lampPowerTooLow",
    ("gw-a", 5, "voltage_low"): "supplyVoltageTooLow",
    ("gw-a", 6, "voltage_high"): "supplyVoltageTooHigh",
    ("gw-a", 7, "over_temperature"): "controlGearThermalDerating",
    ("gw-a", 8, "cycling"): "cyclingFailure",
    ("gw-c", 0, "lamp_failure"): "lampFailure",
    ("gw-c", 1, "stuck_on"): "lampUnexpectedOn",  # with an override to 0 %: a day burner
}
GATEWAY_FAULTS = {("gw-b", "mains_loss"): "supplyLoss", ("gw-d", "offline"): "gatewayOffline"}


def _settings(tmp_path: Path, broker: MqttBroker, prefix: str, hook: WebhookReceiver) -> Settings:
    return load_settings(
        data_dir=tmp_path,
        mqtt=broker.settings(prefix).model_dump(),
        modbus={"poll_interval_s": 10, "timeout_s": 0.3, "retries": 0},
        controller={"mqtt_read_interval_s": 10, "mqtt_ack_timeout_s": 1.0},
        alerts={
            "retry_base_s": 0.2,
            "webhooks": [{"name": "crew", "url": hook.url, "secret": SECRET}],
        },
    )


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'faults.db'}")
    await migrate.prepare(db)
    try:
        yield db
    finally:
        await db.dispose()


async def _adopt(db: Database, fleet: Fleet, inventory: dict[str, Any]) -> dict[str, int]:
    async with db.sessions() as session:
        await import_inventory(
            session=session, data=json.dumps(fleet.inventory(inventory)).encode(),
            fmt=ImportFormat.GEOJSON, actor=auth.Principal(name="e2e", role=Role.ADMIN),
        )  # fmt: skip
        return {lum.name: lum.id for lum in (await session.exec(select(Luminaire))).all()}  # type: ignore[misc]


async def _open_faults(db: Database) -> list[FaultRow]:
    async with db.sessions() as session:
        return list(
            (await session.exec(select(FaultRow).where(FaultRow.state != "resolved"))).all()
        )


async def test_every_fault_is_detected_alerted_and_resolved(
    tmp_path: Path, mqtt_broker: MqttBroker, mqtt_prefix: str, database: Database
) -> None:
    hook = WebhookReceiver(SECRET)
    await hook.start()
    settings = _settings(tmp_path, mqtt_broker, mqtt_prefix, hook)
    clock = AcceleratedClock(START, 60.0, time.time())
    inventory = bundle()
    fleet = Fleet(specs_from_bundle(inventory), clock=clock, mqtt=settings.mqtt, seed=11,
                  state_interval_s=10)  # fmt: skip
    subscriber = AlertSubscriber(settings.mqtt)
    try:
        async with fleet, asyncio.TaskGroup() as tg:
            ids = await _adopt(database, fleet, inventory)
            gateway_ids = {g: i + 1 for i, g in enumerate(["gw-a", "gw-b", "gw-c", "gw-d"])}
            sub = tg.create_task(subscriber.run(), name="alert-subscriber")
            await subscriber.ready.wait()
            async with database.sessions() as session:  # the day burner's target is off
                await create_override(
                    session=session,
                    data=OverrideCreate(targets=OverrideTargets(luminaires=[ids["gw-c-01"]]),
                                        level=0, duration_min=600, reason="day burner test"),
                    actor=auth.Principal(name="e2e", role=Role.OPERATOR), now=clock.now(),
                )  # fmt: skip
            controller = Controller(settings, database, clock)
            loops = tg.create_task(controller.run(), name="controller")
            await controller.wait_ready()
            await asyncio.sleep(3)  # 3 simulated minutes: lamps on and warmed up
            assert await _open_faults(database) == []
            for gw, address, fault in LUMINAIRE_FAULTS:
                await fleet.inject(gw, fault, address)
            for gw, fault in GATEWAY_FAULTS:
                await fleet.inject(gw, fault)

            expected = {
                ("luminaire", ids[f"{gw}-{a:02d}"], t)
                for (gw, a, _f), t in LUMINAIRE_FAULTS.items()
            } | {("gateway", gateway_ids[gw], t) for (gw, _f), t in GATEWAY_FAULTS.items()}

            async def all_open() -> bool:
                found = {
                    (f.subject_kind, f.subject_id, f.fault_type)
                    for f in await _open_faults(database)
                }
                return expected <= found

            await eventually(all_open, 30, f"faults {expected} open")
            found = {
                (f.subject_kind, f.subject_id, f.fault_type) for f in await _open_faults(database)
            }
            # mains loss on 64 luminaires is one fault on the gateway, none on its luminaires
            b_luminaires = {ids[f"gw-b-{a:02d}"] for a in range(64)}
            assert not [f for f in found if f[0] == "luminaire" and f[1] in b_luminaires]
            assert found == expected, found ^ expected

            async def alerts_out() -> bool:
                opened = [a for _t, a in subscriber.received if a["transition"] == "opened"]
                hooked = [a for a in hook.received if a["transition"] == "opened"]
                return len(opened) == len(expected) and len(hooked) == len(expected)

            await eventually(alerts_out, 20, "one opened alert per fault on MQTT and the webhook")
            mains = [a for t, a in subscriber.received if a["type"] == "supplyLoss"]
            assert len(mains) == 1
            assert mains[0]["subject"]["kind"] == "gateway"
            topic = next(t for t, a in subscriber.received if a["type"] == "supplyLoss")
            assert topic == f"{mqtt_prefix}/alerts/dong-le/critical"
            lamp = next(a for a in hook.received if a["type"] == "lampFailure")
            assert lamp["location"]["ward"] in {"Phường 1", "Phường 3"}
            assert lamp.get("message")
            assert hook.bad_signatures == 0

            for gw, address, fault in LUMINAIRE_FAULTS:
                await fleet.clear(gw, fault, address)
            for gw, fault in GATEWAY_FAULTS:
                await fleet.clear(gw, fault)

            async def all_resolved() -> bool:
                return await _open_faults(database) == []

            await eventually(all_resolved, 40, "every fault resolved after the faults cleared")

            async def resolved_out() -> bool:
                done = [a for a in hook.received if a["transition"] == "resolved"]
                return len(done) >= len(expected)

            await eventually(resolved_out, 20, "resolved alerts delivered")
            assert len(set(hook.keys)) == len(hook.keys), "a webhook alert came twice"
            loops.cancel()
            sub.cancel()
    finally:
        await hook.stop()


async def test_alerts_survive_a_receiver_outage_and_a_controller_restart(
    tmp_path: Path, mqtt_broker: MqttBroker, mqtt_prefix: str, database: Database
) -> None:
    hook = WebhookReceiver(SECRET)  # not started: the receiver is down
    settings = _settings(tmp_path, mqtt_broker, mqtt_prefix, hook)
    clock = AcceleratedClock(START, 60.0, time.time())
    inventory = bundle()
    fleet = Fleet(specs_from_bundle(inventory), clock=clock, mqtt=settings.mqtt, seed=12,
                  state_interval_s=10)  # fmt: skip
    try:
        async with fleet:
            await _adopt(database, fleet, inventory)
            async with asyncio.TaskGroup() as tg:
                controller = Controller(settings, database, clock)
                loops = tg.create_task(controller.run(), name="controller")
                await asyncio.sleep(2)
                await fleet.inject("gw-a", "lamp_failure", 0)
                await fleet.inject("gw-b", "mains_loss")

                async def queued_and_tried() -> bool:
                    async with database.sessions() as session:
                        rows = (await session.exec(
                            select(AlertOutbox).where(AlertOutbox.channel == "webhook")
                        )).all()  # fmt: skip
                    return len(rows) >= 2 and all(r.attempts >= 1 for r in rows)

                await eventually(queued_and_tried, 30, "webhook alerts queued and tried")
                loops.cancel()  # the controller stops with the alerts undelivered
            async with database.sessions() as session:
                undelivered = (await session.exec(
                    select(func.count()).select_from(AlertOutbox).where(
                        AlertOutbox.channel == "webhook", col(AlertOutbox.delivered_at).is_(None)
                    )
                )).one()  # fmt: skip
            assert undelivered >= 2
            await hook.start()  # the receiver comes back, then a new controller starts
            async with asyncio.TaskGroup() as tg:
                controller = Controller(settings, database, clock)
                loops = tg.create_task(controller.run(), name="controller")

                async def delivered() -> bool:
                    async with database.sessions() as session:
                        left = (await session.exec(
                            select(func.count()).select_from(AlertOutbox).where(
                                AlertOutbox.channel == "webhook",
                                col(AlertOutbox.delivered_at).is_(None),
                            )
                        )).one()  # fmt: skip
                    return left == 0

                await eventually(delivered, 30, "the outbox delivered after the restart")
                loops.cancel()
            assert len(hook.received) == undelivered
            assert len(set(hook.keys)) == len(hook.keys)
            assert {a["type"] for a in hook.received} == {"lampFailure", "supplyLoss"}
            # the restarted controller took over the open faults instead of opening them again
            async with database.sessions() as session:
                rows = (await session.exec(select(FaultRow))).all()
            assert sorted(r.fault_type for r in rows) == ["lampFailure", "supplyLoss"]
    finally:
        await hook.stop()


def _serve_config(tmp_path: Path, hook: WebhookReceiver) -> Path:
    """``streetlight serve`` on a SQLite file: Modbus only, faults open on one observation."""
    path = tmp_path / "serve.toml"
    path.write_text(
        f"""
data_dir = "{tmp_path.as_posix()}"
[security]
allow_sqlite = true
allow_anonymous_broker = true
[modbus]
poll_interval_s = 0.5
timeout_s = 0.3
retries = 0
[faults]
raise_count = 1
raise_s = 0
[alerts]
mqtt = false
retry_base_s = 0.2
[[alerts.webhooks]]
name = "crew"
url = "{hook.url}"
secret = "{SECRET}"
""",
        encoding="utf-8",
    )
    return path


async def _webhook_row(db: Database) -> AlertOutbox | None:
    async with db.sessions() as session:
        return (
            await session.exec(select(AlertOutbox).where(AlertOutbox.channel == "webhook"))
        ).one_or_none()


async def test_a_sigkill_between_delivery_and_marking_delivers_again_with_the_same_key(
    tmp_path: Path,
) -> None:
    """At-least-once: the receiver has the alert, the process dies before it records that;
    the next process sends it again, with the same Idempotency-Key for the receiver to drop."""
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'streetlight.db'}")
    await migrate.prepare(db)
    hook = WebhookReceiver(SECRET, hold=True)  # records the alert, then does not answer
    await hook.start()
    env = {**os.environ, "STREETLIGHT_CONFIG": str(_serve_config(tmp_path, hook))}
    inventory = {
        "type": "FeatureCollection",
        "lamp_types": [{"name": "LED 100 W", "rated_power_w": 100}],
        "gateways": [{"name": "gw-k", "protocol": "modbus", "host": "127.0.0.1", "port": 1,
                      "unit_ids": [1], "ward": "Phường 1"}],
        "features": [],
    }  # fmt: skip
    procs: list[asyncio.subprocess.Process] = []

    async def serve() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller", "serve", "--port", str(free_port()),
            env=env, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(proc)
        return proc

    fleet = Fleet(specs_from_bundle(inventory), clock=SystemClock(), mqtt=None, seed=13)
    try:
        async with fleet:
            await _adopt(db, fleet, inventory)
            await fleet.inject("gw-k", "mains_loss")
            first = await serve()
            async with asyncio.timeout(60):
                await hook.arrived.wait()
            held = await _webhook_row(db)
            assert held is not None and held.delivered_at is None and held.attempts == 0
            first.send_signal(signal.SIGKILL)  # the receiver has it; the commit never comes
            await first.wait()
            hook.release()
            assert len(hook.keys) == 1
            after_kill = await _webhook_row(db)
            assert after_kill is not None and after_kill.delivered_at is None

            await serve()

            async def marked() -> bool:
                row = await _webhook_row(db)
                return row is not None and row.delivered_at is not None

            await eventually(marked, 60, "the alert delivered and marked after the restart")
        assert len(hook.keys) == 2, hook.keys
        assert hook.keys[0] == hook.keys[1] == held.idempotency_key
        assert hook.received[0] == hook.received[1]
        assert hook.received[0]["type"] == "supplyLoss"
        assert hook.bad_signatures == 0
        done = await _webhook_row(db)
        assert done is not None and done.attempts == 1  # the killed attempt left no trace
    finally:
        await stop_processes(list(procs))
        await hook.stop()
        await db.dispose()
