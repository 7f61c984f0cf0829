"""What real deployments throw at the controller: a broker restart in the night, the
database going away, a flapping gateway, a clock step, and a SIGKILL mid-night.

Each outage test proves its premise: it records when the outage began and ended (on the
simulated clock) and asserts that the 00:00 step fell inside. Telemetry is counted
against what the fake gateways published, as the broker delivered it to an independent
subscriber (:func:`state_tap`), never against the controller's own counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from sqlmodel import col, func, select

from controller.access import auth
from controller.access.schemas import Role
from controller.config.settings import Settings, load_settings
from controller.core.clock import AcceleratedClock
from controller.core.values import ProtocolKind
from controller.inventory.importer import ImportFormat, import_inventory
from controller.loop.runtime import Controller
from controller.store import migrate
from controller.store.db import Database, open_database
from controller.store.tables import GatewayRow, Luminaire, ReadingRow
from fake_luminaires.fleet import Fleet, specs_from_bundle, synthetic_bundle
from protocols.mqtt_codec import decode_state
from protocols.mqtt_topics import TopicKind, Topics
from tests.conftest import free_port, stop_processes
from tests.e2e.receivers import eventually
from tests.integration.conftest import MqttBroker

pytestmark = pytest.mark.slow

ADMIN = auth.Principal(name="e2e", role=Role.ADMIN)


def local(hh: int, mm: int, ss: int = 0) -> datetime:
    """An instant of the night of 21 June 2026, local time (UTC+7)."""
    day = 21 if hh >= 12 else 22
    return datetime(2026, 6, day, hh, mm, ss, tzinfo=UTC) - (
        datetime(2026, 1, 1, 7, tzinfo=UTC) - datetime(2026, 1, 1, tzinfo=UTC)
    )


def levels(fleet: Fleet, protocol: ProtocolKind | None = None) -> set[int]:
    """The levels the fake luminaires were commanded (of one protocol's gateways, if given)."""
    return {
        lum.commanded_level
        for name, m in fleet.models.items()
        if protocol is None or fleet.specs[name].protocol is protocol
        for lum in m.luminaires.values()
    }


def settings_for(tmp_path: Path, broker: MqttBroker, prefix: str, **extra: Any) -> Settings:
    return load_settings(
        data_dir=tmp_path,
        mqtt=broker.settings(prefix).model_dump(),
        modbus={"poll_interval_s": 10, "timeout_s": 0.3, "retries": 0},
        controller={"mqtt_read_interval_s": 10, "mqtt_ack_timeout_s": 1.0},
        alerts={"mqtt": False},
        **extra,
    )


@dataclass
class Rig:
    settings: Settings
    db: Database
    clock: AcceleratedClock
    fleet: Fleet
    controller: Controller = field(init=False)


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, settings: Settings, db: Database, start: datetime, speed: float, n: int = 2
) -> AsyncIterator[Rig]:
    clock = AcceleratedClock(start, speed, time.time())
    bundle = synthetic_bundle(n, n, 8)
    fleet = Fleet(specs_from_bundle(bundle), clock=clock, mqtt=settings.mqtt, seed=21,
                  state_interval_s=10)  # fmt: skip
    async with fleet:
        async with db.sessions() as session:
            data = json.dumps(fleet.inventory(bundle)).encode()
            await import_inventory(
                session=session, data=data, fmt=ImportFormat.GEOJSON, actor=ADMIN
            )
        rig = Rig(settings, db, clock, fleet)
        rig.controller = Controller(settings, db, clock)
        async with asyncio.TaskGroup() as tg:
            loops = tg.create_task(rig.controller.run(), name="controller")
            await rig.controller.wait_ready()
            try:
                yield rig
            finally:
                loops.cancel()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    await migrate.prepare(db)
    try:
        yield db
    finally:
        await db.dispose()


async def test_broker_restart_in_the_night(
    tmp_path: Path, mqtt_broker: MqttBroker, mqtt_prefix: str, sqlite_db: Database
) -> None:
    mqtt_broker.require(persistent=True)
    settings = settings_for(tmp_path, mqtt_broker, mqtt_prefix)
    async with running(tmp_path, settings, sqlite_db, local(23, 52), 60) as rig:
        await eventually(lambda: _true(levels(rig.fleet) == {70}), 10, "70 % before midnight")
        link = rig.controller.mqtt_link
        assert link is not None
        reconnects = link.stats.reconnects
        await mqtt_broker.stop()
        down_from = rig.clock.now()
        await sleep_until(rig, MIDNIGHT + timedelta(seconds=30))
        # the step was due while the broker was down: the Modbus lights took it, the MQTT
        # lights could not be told
        assert levels(rig.fleet, ProtocolKind.MODBUS) == {50}
        assert levels(rig.fleet, ProtocolKind.MQTT) == {70}
        down_until = rig.clock.now()
        await mqtt_broker.start()
        assert down_from < MIDNIGHT < down_until, f"the outage {down_from}..{down_until}"
        await eventually(lambda: _true(levels(rig.fleet) == {50}), 20, "every light at 50 %")
        assert link.stats.reconnects > reconnects
        # telemetry flows again after the restart: what the gateways publish is stored
        async with state_tap(mqtt_broker, mqtt_prefix) as published:
            since = rig.clock.now()
            await asyncio.sleep(1.5)
            until = rig.clock.now()
            await assert_stored(rig, published, since, until)


MIDNIGHT = local(0, 0)


def _utc(at: datetime) -> datetime:
    """An instant as naive UTC (how SQLite returns it), to compare with the database."""
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo is not None else at


async def sleep_until(rig: Rig, instant: datetime) -> None:
    """Sleep until ``instant`` on the rig's simulated clock."""
    ahead_s = (instant - rig.clock.now()).total_seconds()
    await asyncio.sleep(max(0.0, rig.clock.real_seconds(ahead_s)))


Sent = tuple[str, int, datetime]
"""One luminaire reading in a state message: (gateway id, address, instant in UTC)."""


@contextlib.asynccontextmanager
async def state_tap(broker: MqttBroker, prefix: str) -> AsyncIterator[set[Sent]]:
    """Every reading the fake MQTT gateways publish while the block runs, as the broker
    delivers them to a subscriber of our own: what was sent, counted outside the
    controller."""
    topics = Topics(prefix)
    seen: set[Sent] = set()
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"tap-{prefix}") as client:
        await client.subscribe(topics.wildcard(TopicKind.STATE), qos=1)

        async def collect() -> None:
            async for message in client.messages:
                parsed = topics.parse(str(message.topic))
                assert parsed is not None and isinstance(message.payload, bytes)
                state = decode_state(message.payload)
                seen.update((parsed[0], int(a), _utc(r.at)) for a, r in state.luminaires.items())

        async with asyncio.TaskGroup() as tg:
            tap = tg.create_task(collect(), name="state-tap")
            try:
                yield seen
            finally:
                tap.cancel()


async def stored(db: Database, since: datetime, until: datetime) -> list[Sent]:
    """The MQTT luminaires' readings in the database with ``since <= at < until``."""
    query = (
        select(GatewayRow.mqtt_id, Luminaire.address, ReadingRow.at)
        .select_from(ReadingRow)
        .join(Luminaire, col(Luminaire.id) == col(ReadingRow.luminaire_id))
        .join(GatewayRow, col(GatewayRow.id) == col(Luminaire.gateway_id))
        .where(col(GatewayRow.mqtt_id).is_not(None))
        .where(col(ReadingRow.at) >= since, col(ReadingRow.at) < until)
    )
    async with db.sessions() as session:
        rows = (await session.exec(query)).all()
    return [(str(gw), int(address), _utc(at)) for gw, address, at in rows]


async def assert_stored(
    rig: Rig, published: Collection[Sent], since: datetime, until: datetime
) -> None:
    """The database holds, for ``[since, until)``, readings of every fake MQTT luminaire,
    each one a reading a fake gateway published (nothing invented, nothing twice).

    Not every published state is stored: between two reads the link keeps only the newest
    state of a gateway (protocols/mqtt.py), by design, so "all published" is not the rule.
    """
    luminaires = {
        (spec.mqtt_id or name, int(address))
        for name, spec in rig.fleet.specs.items()
        if spec.protocol is ProtocolKind.MQTT
        for address in rig.fleet.models[name].luminaires
    }

    async def covered() -> bool:
        await rig.controller.sink.flush()
        return {(gw, a) for gw, a, _ in await stored(rig.db, since, until)} == luminaires

    await eventually(covered, 10, f"readings of every MQTT luminaire for {since}..{until}")
    rows = await stored(rig.db, since, until)
    assert len(rows) == len(set(rows)), "a reading stored twice"
    if set(rows) - set(published):
        await asyncio.sleep(1.0)  # the tap's copy may trail the controller's by a moment
    invented = sorted(set(rows) - set(published))
    assert not invented, f"{len(invented)} stored readings no gateway sent: {invented[:5]}"


async def _true(value: bool) -> bool:
    return value


async def _readings(db: Database) -> int:
    async with db.sessions() as session:
        return int((await session.exec(select(func.count()).select_from(ReadingRow))).one())


async def modbus_polled(db: Database, since: datetime, until: datetime) -> set[tuple[str, int]]:
    """The Modbus luminaires (gateway name, address) with a reading stored in the window."""
    query = (
        select(GatewayRow.name, Luminaire.address)
        .select_from(ReadingRow)
        .join(Luminaire, col(Luminaire.id) == col(ReadingRow.luminaire_id))
        .join(GatewayRow, col(GatewayRow.id) == col(Luminaire.gateway_id))
        .where(col(GatewayRow.mqtt_id).is_(None))
        .where(col(ReadingRow.at) >= since, col(ReadingRow.at) < until)
        .distinct()
    )
    async with db.sessions() as session:
        return {(str(name), int(address)) for name, address in (await session.exec(query)).all()}


def modbus_luminaires(fleet: Fleet) -> set[tuple[str, int]]:
    return {
        (name, int(address))
        for name, m in fleet.models.items()
        if fleet.specs[name].protocol is ProtocolKind.MODBUS
        for address in m.luminaires
    }


class Proxy:
    """A TCP proxy to the database that can be cut and restored (a database outage)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        self._pipes.clear()
        self._writers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_w}
        for a, b in ((reader, up_w), (up_r, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(a, b), name="proxy-pipe")
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()


@pytest.mark.postgres
async def test_database_outage_keeps_lights_right_and_loses_no_telemetry(
    tmp_path: Path, mqtt_broker: MqttBroker, mqtt_prefix: str, pg_database_url: str
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_database_url)
    proxy = Proxy(url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    db = open_database(proxied)
    try:
        await migrate.prepare(db)
        from tests.conftest import _truncate_all

        await _truncate_all(db)
        await migrate.prepare(db)
        settings = settings_for(tmp_path, mqtt_broker, mqtt_prefix, database={"url": proxied})
        async with running(tmp_path, settings, db, local(23, 52), 60) as rig:
            await eventually(lambda: _true(levels(rig.fleet) == {70}), 15, "70 % before midnight")
            async with state_tap(mqtt_broker, mqtt_prefix) as published:
                await proxy.stop()  # the database goes away for the midnight step
                down_from = rig.clock.now()
                await sleep_until(rig, MIDNIGHT + timedelta(seconds=30))
                assert rig.controller.sink.depth > 0  # readings wait in the buffer
                await eventually(
                    lambda: _true(levels(rig.fleet) == {50}), 10, "00:00 without a database"
                )
                down_until = rig.clock.now()
                await proxy.start()
                assert down_from < MIDNIGHT < down_until, f"the outage {down_from}..{down_until}"
                await eventually(
                    lambda: _true(rig.controller.sink.depth == 0), 20, "the buffer written out"
                )
                assert rig.controller.sink.stats.failures > 0  # the writes did fail meanwhile
                # readings measured while the database was down were kept and written:
                # of every luminaire of both protocols, and only what the gateways sent
                await assert_stored(rig, published, down_from, down_until)
                polled = await modbus_polled(db, down_from, down_until)
                assert polled == modbus_luminaires(rig.fleet), "Modbus readings of the outage"
    finally:
        await db.dispose()
        await proxy.stop()


async def test_a_flapping_gateway_settles_and_the_others_are_not_slowed(
    tmp_path: Path, mqtt_broker: MqttBroker, mqtt_prefix: str, sqlite_db: Database
) -> None:
    settings = settings_for(tmp_path, mqtt_broker, mqtt_prefix)
    async with running(tmp_path, settings, sqlite_db, local(21, 59), 30) as rig:
        await eventually(lambda: _true(levels(rig.fleet) == {100}), 10, "lights on")
        flapper = "fake-mb-0001"
        for _ in range(6):  # across the 22:00 step
            await rig.fleet.inject(flapper, "offline")
            await asyncio.sleep(0.3)
            await rig.fleet.clear(flapper, "offline")
            await asyncio.sleep(0.3)
        others = {lum.commanded_level for name, m in rig.fleet.models.items() if name != flapper
                  for lum in m.luminaires.values()}  # fmt: skip
        assert others == {70}
        await eventually(lambda: _true(levels(rig.fleet) == {70}), 10, "the flapper converged")


async def test_a_clock_step_is_caught_up_at_once(
    tmp_path: Path, mqtt_broker: MqttBroker, mqtt_prefix: str, sqlite_db: Database
) -> None:
    settings = settings_for(tmp_path, mqtt_broker, mqtt_prefix)
    async with running(tmp_path, settings, sqlite_db, local(20, 0), 1) as rig:
        await eventually(lambda: _true(levels(rig.fleet) == {100}), 10, "lights on")
        rig.clock.jump(4 * 3600 + 60)  # 20:00 -> 00:01: the 22:00 and 00:00 steps were skipped
        await eventually(lambda: _true(levels(rig.fleet) == {50}), 12, "50 % after the jump")
        assert rig.controller.clock_jumps >= 1


@pytest.mark.postgres
async def test_sigkill_mid_night_and_restart_restores_levels_within_5_s(
    tmp_path: Path, mqtt_broker: MqttBroker, mqtt_prefix: str, pg_database_url: str
) -> None:
    db = open_database(pg_database_url)
    from tests.conftest import _truncate_all

    await _truncate_all(db)
    await migrate.prepare(db)
    bundle = synthetic_bundle(2, 2, 8)
    (tmp_path / "b.json").write_text(json.dumps(bundle), encoding="utf-8")
    env = {
        **os.environ,
        "STREETLIGHT_DATA_DIR": str(tmp_path),
        "STREETLIGHT_DATABASE__URL": pg_database_url,
        "STREETLIGHT_MQTT__HOST": mqtt_broker.host,
        "STREETLIGHT_MQTT__PORT": str(mqtt_broker.port),
        "STREETLIGHT_MQTT__PREFIX": mqtt_prefix,
        "STREETLIGHT_MQTT__CLIENT_ID": f"ctl-{mqtt_prefix}",
        "STREETLIGHT_SECURITY__ALLOW_ANONYMOUS_BROKER": "true",
        "STREETLIGHT_SECURITY__ALLOW_INSECURE_DATABASE": "true",
    }
    fleet = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", "fake-fleet", "--inventory", str(tmp_path / "b.json"),
        "--inventory-out", str(tmp_path / "f.json"), "--broker",
        f"mqtt://{mqtt_broker.host}:{mqtt_broker.port}", "--prefix", mqtt_prefix,
        "--state-interval", "2", env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    procs = [fleet]
    try:
        assert fleet.stdout is not None
        async with asyncio.timeout(30):
            assert (await fleet.stdout.readline()).strip() == b"READY"
        served = json.loads((tmp_path / "f.json").read_text(encoding="utf-8"))
        control = served["fleet"]["control_url"]
        async with db.sessions() as session:
            await import_inventory(session=session, data=json.dumps(served).encode(),
                                   fmt=ImportFormat.GEOJSON, actor=ADMIN)  # fmt: skip
            lum = (await session.exec(select(func.count()).select_from(ReadingRow))).one()
            assert lum == 0
        # an override for the whole city: the level every light must have
        async with db.sessions() as session:
            from controller.scheduling.overrides import (
                OverrideCreate,
                OverrideTargets,
                create_override,
            )

            await create_override(
                session=session,
                data=OverrideCreate(targets=OverrideTargets(all=True), level=42, duration_min=120,
                                    reason="restart test"),
                actor=ADMIN, now=datetime.now(UTC),
            )  # fmt: skip
        names = [g["name"] for g in served["gateways"]]

        async def fleet_levels(client: httpx.AsyncClient) -> set[int]:
            out: set[int] = set()
            for name in names:
                out |= set((await client.get(f"{control}/gateways/{name}/levels")).json().values())
            return out

        async def start() -> asyncio.subprocess.Process:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "controller", "serve", "--port", str(free_port()),
                env=env, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            procs.append(proc)
            return proc

        async with httpx.AsyncClient() as client:
            first = await start()
            await eventually(lambda: _eq(fleet_levels(client), {42}), 30, "42 % everywhere")
            first.send_signal(signal.SIGKILL)
            await first.wait()
            for name in names:  # the devices restart at 0 % while no controller runs
                r = await client.post(f"{control}/gateways/{name}/reset")
                assert r.status_code == 204
            assert await fleet_levels(client) == {0}
            began = time.monotonic()
            await start()
            await eventually(lambda: _eq(fleet_levels(client), {42}), 10, "42 % after restart")
            restored_in = time.monotonic() - began
        assert restored_in < 5.0, f"levels restored in {restored_in:.1f} s"
    finally:
        await stop_processes(list(procs))
        await db.dispose()


async def _eq(value: Any, expected: set[int]) -> bool:
    return bool(await value == expected)
