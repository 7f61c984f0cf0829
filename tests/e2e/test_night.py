"""A whole Đông Hà night, time-lapsed, against a fake fleet of both protocols.

The controller, the API and the fake gateways run in this process on one
accelerated clock (600x: a night in about 70 s); the broker is a real mosquitto
and the Modbus gateways are real TCP servers. The fakes log every command they
receive, so the test checks what the *devices* saw and when (simulated time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import func, select

from api.app import create_app
from controller.access import auth
from controller.access.schemas import Role
from controller.config.settings import Settings, load_settings
from controller.core.clock import AcceleratedClock
from controller.core.values import Address, ProtocolKind
from controller.inventory.importer import ImportFormat, import_inventory
from controller.loop.runtime import Controller
from controller.store import migrate
from controller.store.db import Database, open_database
from controller.store.tables import EnergyDaily, Luminaire, StateChange
from fake_luminaires.fleet import Fleet, GatewaySpec, specs_from_bundle, synthetic_bundle
from fake_luminaires.model import GatewayFault
from schedules.builtin import DONG_HA_STANDARD
from schedules.program import resolve_night
from tests.integration.conftest import CommandLog, MqttBroker

pytestmark = pytest.mark.slow

SPEED = 600.0
TZ_OFFSET = timedelta(hours=7)
NIGHT = datetime(2026, 6, 21).date()
START = datetime(2026, 6, 21, 18, 5, tzinfo=UTC) - TZ_OFFSET  # 18:05 local
PER_GATEWAY = 12


@dataclass
class NightLog(CommandLog[datetime]):
    """Every level each fake luminaire was commanded, with the simulated instant."""

    stamp: Callable[[datetime], datetime] = field(default=lambda at: at)

    def level_at(self, key: tuple[str, int], at: datetime) -> int | None:
        current = None
        for when, level in self.seen.get(key, []):
            if when <= at:
                current = level
        return current

    def first_at_or_after(self, key: tuple[str, int], at: datetime, level: int) -> datetime | None:
        for when, seen_level in self.seen.get(key, []):
            if when >= at and seen_level == level:
                return when
        return None


async def _wait_sim(clock: AcceleratedClock, until: datetime) -> None:
    delay = clock.real_seconds((until - clock.now()).total_seconds())
    if delay > 0:
        await asyncio.sleep(delay)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}")
    await migrate.prepare(db)
    try:
        yield db
    finally:
        await db.dispose()


def _settings(tmp_path: Path, broker: MqttBroker, prefix: str) -> Settings:
    return load_settings(
        data_dir=tmp_path,
        mqtt=broker.settings(prefix).model_dump(),
        modbus={"poll_interval_s": 60, "timeout_s": 0.5, "retries": 0},
        controller={"mqtt_read_interval_s": 60, "resend_interval_s": 900},
    )


async def test_a_whole_night(
    tmp_path: Path, mqtt_broker: MqttBroker, mqtt_prefix: str, database: Database
) -> None:
    settings = _settings(tmp_path, mqtt_broker, mqtt_prefix)
    clock = AcceleratedClock(START, SPEED, time.time())
    bundle = synthetic_bundle(2, 2, PER_GATEWAY)
    specs = specs_from_bundle(bundle)
    fleet = Fleet(specs, clock=clock, mqtt=settings.mqtt, seed=7, state_interval_s=60)
    log = NightLog()
    for spec in specs:
        log.wrap(fleet.models[spec.name], spec.name)
    admin = auth.Principal(name="e2e", role=Role.ADMIN)
    async with fleet:
        served = fleet.inventory(bundle)
        async with database.sessions() as session:
            await import_inventory(
                session=session, data=__import__("json").dumps(served).encode(),
                fmt=ImportFormat.GEOJSON, actor=admin,
            )  # fmt: skip
            key, _ = await auth.create_key(session=session, name="op", role=Role.OPERATOR)
        energy_start = {spec.name: fleet.energy_wh(spec.name) for spec in specs}
        controller = Controller(settings, database, clock)
        app = create_app(settings, database, controller=controller)
        transport = httpx.ASGITransport(app=app)
        async with (
            asyncio.TaskGroup() as tg,
            httpx.AsyncClient(transport=transport, base_url="http://t") as api,
        ):
            loops = tg.create_task(controller.run(), name="controller")
            await controller.wait_ready()
            headers = {"Authorization": f"Bearer {key}"}

            # 20:00 local: an override on every luminaire, 30 % for an hour
            await _wait_sim(clock, START + timedelta(hours=1, minutes=55))
            r = await api.post(
                "/api/v1/overrides",
                headers=headers,
                json={"targets": {"all": True}, "level": 30, "duration_min": 60, "reason": "e2e"},
            )
            assert r.status_code == 201, r.text
            override_at = datetime.fromisoformat(r.json()["starts_at"])

            # 23:00: a Modbus gateway stops answering; back at 00:30
            modbus_gw = next(s.name for s in specs if s.protocol is ProtocolKind.MODBUS)
            await _wait_sim(clock, START + timedelta(hours=4, minutes=55))
            await fleet.inject(modbus_gw, GatewayFault.OFFLINE.value)
            await _wait_sim(clock, START + timedelta(hours=6, minutes=25))
            returned_at = clock.now()
            await fleet.clear(modbus_gw, GatewayFault.OFFLINE.value)
            summary = await api.get("/api/v1/state/summary", headers=headers)
            assert summary.status_code == 200
            scraped = await api.get("/metrics", headers=headers)
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
            families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
            lights = families["streetlight_luminaires"].samples
            assert sum(s.value for s in lights) == PER_GATEWAY * len(specs)
            up = {s.labels["gateway"]: s.value for s in families["streetlight_gateway_up"].samples}
            assert set(up) == {spec.name for spec in specs}
            # the gateway just released may not have answered yet; the others are up
            assert all(v == 1.0 for name, v in up.items() if name != modbus_gw)
            rtt = families["streetlight_command_round_trip_seconds"].samples
            assert next(s.value for s in rtt if s.name.endswith("_count")) > 0
            assert families["streetlight_telemetry_dropped"].samples[0].value == 0

            # until 05:30 local, after the off step (sunrise - 10 min)
            await _wait_sim(clock, START + timedelta(hours=11, minutes=25))
            loops.cancel()

        energy_end = {spec.name: fleet.energy_wh(spec.name) for spec in specs}

    # --- what the devices saw -----------------------------------------------------------
    steps = resolve_night(DONG_HA_STANDARD, settings.site.to_site(), NIGHT)
    assert [s.level for s in steps] == [100, 70, 50, 70, 0]
    tolerance = timedelta(minutes=2)
    for spec in specs:
        for address in range(spec.count):
            lum = (spec.name, address)
            for step in steps:
                if spec.name == modbus_gw and step.level == 50:
                    continue  # the 00:00 step fell while this gateway was offline: below
                got = log.first_at_or_after(lum, step.at, step.level)
                assert got is not None and got - step.at <= tolerance, (lum, step, log.seen[lum])
            # the override: 30 % within 2 minutes, back to 100 % when it ends
            got = log.first_at_or_after(lum, override_at, 30)
            assert got is not None and got - override_at <= tolerance, (lum, log.seen[lum])
            back = log.first_at_or_after(lum, override_at + timedelta(minutes=60), 100)
            assert back is not None and back - (override_at + timedelta(minutes=60)) <= tolerance
    # the gateway that was offline caught up with the 00:00 step as soon as it answered again:
    # within 2 s of real time (its reconnect back-off runs on the wall clock, 600x slower here)
    for address in range(PER_GATEWAY):
        got = log.first_at_or_after((modbus_gw, address), returned_at, 50)
        assert got is not None, log.seen[(modbus_gw, address)]
        assert (got - returned_at).total_seconds() / SPEED <= 2.0, (got, returned_at)

    # --- what the controller recorded ---------------------------------------------------
    async with database.sessions() as session:
        recorded = dict(
            (
                await session.exec(
                    select(EnergyDaily.luminaire_id, func.sum(EnergyDaily.energy_wh)).group_by(
                        EnergyDaily.luminaire_id
                    )
                )
            ).all()
        )
        names = {lum.id: lum.name for lum in (await session.exec(select(Luminaire))).all()}
        kinds = dict(
            (
                await session.exec(
                    select(StateChange.kind, func.count()).group_by(StateChange.kind)
                )
            ).all()
        )
    assert set(kinds) == {"target", "command", "actual"}
    total = PER_GATEWAY * len(specs)
    assert len(recorded) == total
    for lid, wh in recorded.items():
        gateway, _, index = names[lid].rpartition("-")
        expected = energy_end[gateway][int(index)] - energy_start[gateway][int(index)]
        assert expected > 500  # a night of light
        assert abs(wh - expected) <= 0.01 * expected, (names[lid], wh, expected)


async def test_a_restarted_controller_restores_levels_at_once(
    tmp_path: Path, mqtt_broker: MqttBroker, mqtt_prefix: str, database: Database
) -> None:
    settings = _settings(tmp_path, mqtt_broker, mqtt_prefix)
    start = datetime(2026, 6, 21, 16, 0, tzinfo=UTC)  # 23:00 local: 70 %
    clock = AcceleratedClock(start, 1.0, time.time())
    bundle = synthetic_bundle(1, 1, PER_GATEWAY)
    specs: list[GatewaySpec] = specs_from_bundle(bundle)
    fleet = Fleet(specs, clock=clock, mqtt=settings.mqtt, seed=3, state_interval_s=5)
    async with fleet:
        served = fleet.inventory(bundle)
        async with database.sessions() as session:
            await import_inventory(
                session=session, data=__import__("json").dumps(served).encode(),
                fmt=ImportFormat.GEOJSON, actor=auth.Principal(name="e2e", role=Role.ADMIN),
            )  # fmt: skip

        def levels() -> set[int]:
            return {
                lum.commanded_level for m in fleet.models.values() for lum in m.luminaires.values()
            }

        all_at_70 = asyncio.Event()
        for model in fleet.models.values():
            original = model.command

            def command(
                levels_: Mapping[Address, int], at: datetime, fade_s: float = 0.0, *, _o=original
            ) -> dict[Address, str]:
                rejected = _o(levels_, at, fade_s)
                if levels() == {70}:
                    all_at_70.set()
                return rejected

            model.command = command  # type: ignore[method-assign]

        for _ in range(2):  # first start, then a restart after the devices lost their state
            for model in fleet.models.values():
                model.command(dict.fromkeys(model.luminaires, 0), clock.now())
            assert levels() == {0}
            all_at_70.clear()
            began = time.monotonic()
            async with asyncio.TaskGroup() as tg:
                controller = Controller(settings, database, clock)
                loops = tg.create_task(controller.run(), name="controller")
                async with asyncio.timeout(5):
                    await all_at_70.wait()
                restored_in = time.monotonic() - began  # not counting the shutdown below
                loops.cancel()
            assert restored_in < 5
