"""Inventory changes made through the API reach the running controller within 2 s.

The controller and the API run in this process against fake gateways of both protocols:
Modbus TCP servers on loopback and MQTT gateways on a real mosquitto. Every test changes the
inventory through the API only (as an operator would) and then watches what the fake devices
receive: a gateway created while the controller runs is driven, a luminaire added to a running
gateway is commanded (on Modbus the poll span grows instead of ``unknown address``), a changed
connection is reopened, a disabled or deleted gateway is no longer driven.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.app import create_app
from controller.access import auth
from controller.access.schemas import Role
from controller.config.settings import Settings, load_settings
from controller.core.clock import AcceleratedClock
from controller.core.values import ProtocolKind
from controller.inventory.importer import ImportFormat, import_inventory
from controller.loop.runtime import Controller
from controller.loop.targets import LuminaireInfo
from controller.store import migrate
from controller.store.db import Database, open_database
from fake_luminaires.fleet import Fleet, GatewaySpec
from tests.e2e.receivers import eventually
from tests.integration.conftest import CommandLog, MqttBroker
from tests.integration.test_cluster import pg_url  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow

WITHIN_S = 2.0
"""Every change must reach the devices within this (real seconds)."""
EVENING = datetime(2026, 6, 21, 20, 0, tzinfo=UTC) - timedelta(hours=7)  # 20:00 in Đông Hà
SERVED = 6
"""Addresses every fake gateway serves."""
IMPORTED = 4
"""Addresses imported at the start (the others are added through the API)."""
NAMES = {
    ProtocolKind.MODBUS: ("mb-a", "mb-b", "mb-c"),
    ProtocolKind.MQTT: ("mq-a", "mq-b", "mq-c"),
}
"""Per protocol: ``a`` imported at the start, ``b`` created through the API, ``c`` served
by the fakes but only reached by changing ``a``'s connection."""


@dataclass
class Commands(CommandLog[float]):
    """Every command the fake luminaires accepted, stamped with the real (monotonic) time."""

    stamp: Callable[[datetime], float] = field(default=lambda _at: time.monotonic())

    def since(self, name: str, address: int, t0: float) -> list[int]:
        return [level for t, level in self.seen.get((name, address), []) if t >= t0]

    def first(self, name: str, address: int, level: int, t0: float) -> float | None:
        """When ``level`` was first accepted at or after ``t0`` (monotonic s), if it was."""
        return next(
            (t for t, lv in self.seen.get((name, address), []) if t >= t0 and lv == level), None
        )


def _feature(gateway: str, address: int) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [107.1 + address * 1e-4, 16.8]},
        "properties": {
            "name": f"{gateway}-{address}", "gateway": gateway, "address": address,
            "lamp_type": "LED 100 W", "street": "Lê Duẩn", "ward": "Phường 1",
        },
    }  # fmt: skip


@dataclass
class Rig:
    fleet: Fleet
    controller: Controller
    api: httpx.AsyncClient
    commands: Commands
    lamp_type_id: int

    def gateway_body(self, name: str) -> dict[str, Any]:
        spec = self.fleet.specs[name]
        if spec.protocol is ProtocolKind.MODBUS:
            front = self.fleet.modbus[name]
            return {
                "name": name, "protocol": "modbus", "host": front.host, "port": front.port,
                "unit_ids": sorted(front.units),
            }  # fmt: skip
        return {"name": name, "protocol": "mqtt", "mqtt_id": name}

    async def call(self, method: str, url: str, body: Any = None) -> Any:
        response = await self.api.request(method, url, json=body)
        assert response.status_code < 300, (method, url, response.status_code, response.text)
        return response.json() if response.content else None

    async def gateway_id(self, name: str) -> int:
        page = await self.call("GET", "/api/v1/gateways")
        return next(int(g["id"]) for g in page["items"] if g["name"] == name)

    async def add_luminaire(self, gateway_id: int, name: str, address: int) -> int:
        created = await self.call(
            "POST", "/api/v1/luminaires",
            {
                "name": f"{name}-{address}", "gateway_id": gateway_id, "address": address,
                "lamp_type_id": self.lamp_type_id, "latitude": 16.8,
                "longitude": 107.1 + address * 1e-4, "street": "Lê Duẩn", "ward": "Phường 1",
            },
        )  # fmt: skip
        return int(created["id"])

    def target(self, luminaire_id: int) -> int | None:
        """The luminaire's target now, from the book (in a cluster, whoever drives it)."""
        book = self.controller.book
        if book is None or luminaire_id not in book.luminaires:
            return None
        return int(
            book.targets(self.controller.clock.now(), only=[luminaire_id])[luminaire_id].level
        )

    async def commanded(self, name: str, address: int, luminaire_id: int, t0: float) -> None:
        """The fake got the luminaire's target less than ``WITHIN_S`` after ``t0`` (the
        instant of the change), as the command log's timestamps show."""

        def first() -> float | None:
            target = self.target(luminaire_id)
            return None if target is None else self.commands.first(name, address, target, t0)

        async def done() -> bool:
            return first() is not None

        await eventually(done, 10, f"{name}[{address}] commanded")
        took = (first() or 0.0) - t0
        assert took < WITHIN_S, f"{name}[{address}] commanded {took:.2f} s after the change"
        assert self.target(luminaire_id) not in (None, 0)  # a command the fake did not have


def _settings(tmp_path: Path, broker: MqttBroker, prefix: str) -> Settings:
    return load_settings(
        data_dir=tmp_path,
        mqtt=broker.settings(prefix).model_dump(),
        modbus={"poll_interval_s": 0.5, "timeout_s": 0.5, "retries": 0, "reconnect_max_s": 1},
        controller={"mqtt_read_interval_s": 0.5, "resend_interval_s": 900},
    )


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'changes.db'}")
    await migrate.prepare(db)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def rig(
    tmp_path: Path, mqtt_broker: MqttBroker, mqtt_prefix: str, database: Database
) -> AsyncIterator[Rig]:
    settings = _settings(tmp_path, mqtt_broker, mqtt_prefix)
    clock = AcceleratedClock(EVENING, 1.0, time.time())
    specs = [
        GatewaySpec(name, protocol, SERVED, mqtt_id=name if protocol is ProtocolKind.MQTT else None)
        for protocol, names in NAMES.items()
        for name in names
    ]
    fleet = Fleet(specs, clock=clock, mqtt=settings.mqtt, seed=3, state_interval_s=1)
    commands = Commands()
    for spec in specs:
        commands.wrap(fleet.models[spec.name], spec.name)
    async with fleet:
        first = [names[0] for names in NAMES.values()]
        bundle = fleet.inventory(
            {
                "type": "FeatureCollection",
                "lamp_types": [{"name": "LED 100 W", "rated_power_w": 100.0}],
                "features": [_feature(g, a) for g in first for a in range(IMPORTED)],
            }
        )
        bundle["gateways"] = [g for g in bundle["gateways"] if g["name"] in first]
        admin = auth.Principal(name="test", role=Role.ADMIN)
        async with database.sessions() as session:
            await import_inventory(
                session=session, data=json.dumps(bundle).encode(), fmt=ImportFormat.GEOJSON,
                actor=admin,
            )  # fmt: skip
            key, _ = await auth.create_key(session=session, name="op", role=Role.ADMIN)
        controller = Controller(settings, database, clock)
        app = create_app(settings, database, controller=controller)
        async with (
            asyncio.TaskGroup() as tg,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t",
                headers={"Authorization": f"Bearer {key}"},
            ) as api,
        ):  # fmt: skip
            t0 = time.monotonic()
            running = tg.create_task(controller.run(), name="controller")
            await controller.wait_ready()
            lamp_types = (await api.get("/api/v1/lamp-types")).json()["items"]
            r = Rig(fleet, controller, api, commands, int(lamp_types[0]["id"]))
            for name in first:  # the imported gateways are driven before any test starts
                gid = await r.gateway_id(name)
                lid = next(i.id for i in controller.book.luminaires.values()  # type: ignore[union-attr]
                           if i.gateway_id == gid and i.address == 0)  # fmt: skip
                await eventually(
                    lambda n=name, lid=lid: _async(r.target(lid) in commands.since(n, 0, t0)),
                    20, f"{name} driven at start",
                )  # fmt: skip
            try:
                yield r
            finally:
                running.cancel()


async def _async(value: bool) -> bool:
    return value


PROTOCOLS = pytest.mark.parametrize("protocol", [ProtocolKind.MODBUS, ProtocolKind.MQTT], ids=str)


@PROTOCOLS
async def test_a_gateway_created_while_running_is_connected_and_driven(
    rig: Rig, protocol: ProtocolKind
) -> None:
    name = NAMES[protocol][1]
    created = await rig.call("POST", "/api/v1/gateways", rig.gateway_body(name))
    await _add_and_check(rig, name, int(created["id"]))


async def _add_and_check(rig: Rig, name: str, gateway_id: int) -> None:
    """Add a luminaire at every address of a new gateway: each is commanded within 2 s."""
    added = []
    for address in range(SERVED):
        t0 = time.monotonic()
        added.append((address, await rig.add_luminaire(gateway_id, name, address), t0))
    for address, lid, t0 in added:
        await rig.commanded(name, address, lid, t0)


@PROTOCOLS
async def test_a_gateway_imported_while_running_is_driven(rig: Rig, protocol: ProtocolKind) -> None:
    name = NAMES[protocol][1]
    bundle = rig.fleet.inventory(
        {"type": "FeatureCollection", "features": [_feature(name, a) for a in range(SERVED)]}
    )
    bundle["gateways"] = [g for g in bundle["gateways"] if g["name"] == name]
    t0 = time.monotonic()
    response = await rig.api.post(
        "/api/v1/luminaires/import?format=geojson", content=json.dumps(bundle).encode(),
        headers={"Content-Type": "application/geo+json"},
    )  # fmt: skip
    assert response.status_code < 300, response.text
    gid = await rig.gateway_id(name)

    def imported() -> list[LuminaireInfo]:
        book = rig.controller.book
        return [] if book is None else [i for i in book.luminaires.values() if i.gateway_id == gid]

    await eventually(lambda: _async(len(imported()) == SERVED), WITHIN_S, "the import reloaded")
    for info in imported():
        await rig.commanded(name, int(info.address), info.id, t0)


@PROTOCOLS
async def test_a_luminaire_added_to_a_running_gateway_is_commanded(
    rig: Rig, protocol: ProtocolKind
) -> None:
    name = NAMES[protocol][0]
    gid = await rig.gateway_id(name)
    t0 = time.monotonic()
    lid = await rig.add_luminaire(gid, name, SERVED - 1)  # beyond the span polled so far
    await rig.commanded(name, SERVED - 1, lid, t0)
    state = rig.controller.luminaire_state(lid)
    assert state is not None and state.rejected is None

    async def answers() -> bool:
        current = rig.controller.luminaire_state(lid)
        return current is not None and current.online

    await eventually(answers, WITHIN_S, "the new luminaire read back")


@PROTOCOLS
async def test_a_luminaire_moved_to_another_address_is_commanded_there(
    rig: Rig, protocol: ProtocolKind
) -> None:
    name = NAMES[protocol][0]
    gid = await rig.gateway_id(name)
    page = await rig.call("GET", f"/api/v1/luminaires?gateway_id={gid}")
    lid = next(int(i["id"]) for i in page["items"] if i["address"] == 0)
    t0 = time.monotonic()
    await rig.call("PATCH", f"/api/v1/luminaires/{lid}", {"address": SERVED - 1})
    await rig.commanded(name, SERVED - 1, lid, t0)


@PROTOCOLS
async def test_a_changed_connection_is_reopened(rig: Rig, protocol: ProtocolKind) -> None:
    """``a`` is pointed at the fake ``c`` (another port, another topic): ``c`` gets driven."""
    a, _, c = NAMES[protocol]
    gid = await rig.gateway_id(a)
    body = rig.gateway_body(c)
    change = {k: v for k, v in body.items() if k in {"host", "port", "unit_ids", "mqtt_id"}}
    t0 = time.monotonic()
    await rig.call("PATCH", f"/api/v1/gateways/{gid}", change)
    book = rig.controller.book
    assert book is not None
    for info in book.luminaires.values():
        if info.gateway_id == gid:
            await rig.commanded(c, int(info.address), info.id, t0)


@PROTOCOLS
async def test_a_disabled_gateway_is_closed_and_an_enabled_one_driven_again(
    rig: Rig, protocol: ProtocolKind
) -> None:
    name = NAMES[protocol][0]
    gid = await rig.gateway_id(name)
    await rig.call("PATCH", f"/api/v1/gateways/{gid}", {"enabled": False})
    await _closed(rig, name, gid)
    t0 = time.monotonic()
    await rig.call("PATCH", f"/api/v1/gateways/{gid}", {"enabled": True})
    book = rig.controller.book
    assert book is not None
    lid = next(i.id for i in book.luminaires.values() if i.gateway_id == gid and i.address == 0)
    await rig.commanded(name, 0, lid, t0)


@PROTOCOLS
async def test_a_deleted_gateway_is_closed(rig: Rig, protocol: ProtocolKind) -> None:
    name = NAMES[protocol][0]
    gid = await rig.gateway_id(name)
    page = await rig.call("GET", f"/api/v1/luminaires?gateway_id={gid}")
    for item in page["items"]:
        await rig.call("DELETE", f"/api/v1/luminaires/{item['id']}")
    await rig.call("DELETE", f"/api/v1/gateways/{gid}")
    await _closed(rig, name, gid)


async def _closed(rig: Rig, name: str, gid: int) -> None:
    """Within 2 s the gateway is no longer driven: its loop is gone, an override for every
    luminaire reaches the other protocol's gateway but not this one, and a Modbus fake sees
    no more requests."""
    t0 = time.monotonic()

    async def loop_gone() -> bool:
        return gid not in rig.controller.gateways

    await eventually(loop_gone, WITHIN_S, f"{name} closed")
    other = next(n for names in NAMES.values() for n in names[:1] if n != name)
    front = rig.fleet.modbus.get(name)
    reads = front.stats.reads if front is not None else 0
    t1 = time.monotonic()
    await rig.call(
        "POST", "/api/v1/overrides",
        {"targets": {"all": True}, "level": 37, "duration_min": 30, "reason": "test"},
    )  # fmt: skip

    async def other_driven() -> bool:
        return 37 in rig.commands.since(other, 0, t1)

    await eventually(other_driven, WITHIN_S, f"{other} driven by the override")
    await asyncio.sleep(1.0)  # two poll intervals
    assert all(37 not in rig.commands.since(name, a, t1) for a in range(SERVED))
    if front is not None:
        assert front.stats.reads == reads, "the Modbus fake is still polled"
    assert time.monotonic() - t0 < WITHIN_S + 3


@pytest.mark.postgres
@PROTOCOLS
async def test_in_a_cluster_a_gateway_created_through_one_instance_is_driven_by_its_owner(
    tmp_path: Path,
    mqtt_broker: MqttBroker,
    mqtt_prefix: str,
    pg_url: tuple[str, str],  # noqa: F811 - the fixture imported above
    protocol: ProtocolKind,
) -> None:
    """Two controllers on one PostgreSQL; the gateway is created through the API of ``a``;
    whichever instance takes its lease drives it, within 2 s (NOTIFY, then a lease round)."""
    url, dsn = pg_url
    clock = AcceleratedClock(EVENING, 1.0, time.time())
    names = NAMES[protocol]
    mqtt = _settings(tmp_path, mqtt_broker, mqtt_prefix).mqtt
    specs = [
        GatewaySpec(n, protocol, SERVED, mqtt_id=n if protocol is ProtocolKind.MQTT else None)
        for n in names
    ]
    fleet = Fleet(specs, clock=clock, mqtt=mqtt, seed=5, state_interval_s=1)
    commands = Commands()
    for spec in specs:
        commands.wrap(fleet.models[spec.name], spec.name)
    dbs = {n: open_database(url) for n in ("a", "b")}
    await migrate.prepare(dbs["a"])
    async with fleet, asyncio.TaskGroup() as tg:
        existing = [names[0], names[2]]  # one gateway for each instance at the start
        bundle = fleet.inventory(
            {
                "type": "FeatureCollection",
                "lamp_types": [{"name": "LED 100 W", "rated_power_w": 100.0}],
                "features": [_feature(g, a) for g in existing for a in range(IMPORTED)],
            }
        )
        bundle["gateways"] = [g for g in bundle["gateways"] if g["name"] in existing]
        async with dbs["a"].sessions() as session:
            await import_inventory(
                session=session, data=json.dumps(bundle).encode(), fmt=ImportFormat.GEOJSON,
                actor=auth.Principal(name="test", role=Role.ADMIN),
            )  # fmt: skip
            key, _ = await auth.create_key(session=session, name="op", role=Role.ADMIN)
        controllers = {}
        tasks = []
        for n, db in dbs.items():
            settings = load_settings(
                data_dir=tmp_path,
                mqtt=mqtt.model_dump(),
                modbus={"poll_interval_s": 0.5, "timeout_s": 0.5, "retries": 0},
                controller={"mqtt_read_interval_s": 0.5, "resend_interval_s": 900},
                cluster={
                    "enabled": True, "instance_id": f"node-{n}", "lease_ttl_s": 6,
                    "renew_interval_s": 2,
                },
            )  # fmt: skip
            controllers[n] = Controller(settings, db, clock)
            tasks.append(tg.create_task(controllers[n].run(), name=f"controller-{n}"))
        try:
            for c in controllers.values():
                await c.wait_ready()

            async def shared() -> bool:
                return sorted([len(await _owned(dsn, f"node-{n}")) for n in dbs]) == [1, 1]

            await eventually(shared, 30, "the two gateways shared out")
            app = create_app(controllers["a"].settings, dbs["a"], controller=controllers["a"])
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t",
                headers={"Authorization": f"Bearer {key}"},
            ) as api:  # fmt: skip
                lamp_types = (await api.get("/api/v1/lamp-types")).json()["items"]
                rig = Rig(fleet, controllers["a"], api, commands, int(lamp_types[0]["id"]))
                name = names[1]
                created = await rig.call("POST", "/api/v1/gateways", rig.gateway_body(name))
                gid = int(created["id"])
                await _add_and_check(rig, name, gid)
                owners = [n for n in dbs if gid in await _owned(dsn, f"node-{n}")]
                assert len(owners) == 1
                owner = owners[0]
                assert controllers[owner].gateways[gid].commands > 0  # the owner sent them
                others = [c for n, c in controllers.items() if n != owner]
                assert all(c.gateways[gid].commands == 0 for c in others)

                # disabled through ``a``: no instance drives it, and its lease is handed back
                await rig.call("PATCH", f"/api/v1/gateways/{gid}", {"enabled": False})

                async def released() -> bool:
                    leases = [gid in await _owned(dsn, f"node-{n}") for n in dbs]
                    driven = [gid in c.gateways for c in controllers.values()]
                    return not any(leases) and not any(driven)

                await eventually(released, WITHIN_S, "the disabled gateway let go everywhere")
        finally:
            for task in tasks:
                task.cancel()
    for db in dbs.values():
        await db.dispose()


async def _owned(dsn: str, instance: str) -> set[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT name FROM lease WHERE owner = $1 AND expires_at > now() "
            "AND name LIKE 'gateway:%'",
            instance,
        )
    finally:
        await conn.close()
    return {int(r["name"].split(":", 1)[1]) for r in rows}
