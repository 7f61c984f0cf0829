"""One contract, two drivers: the same scenarios through ``controller.core.ports.Gateway``.

Each test runs against the Modbus driver (fake Modbus TCP server on loopback) and the
MQTT driver (fake MQTT gateway on a real mosquitto), both built from the same fake
luminaire model through :class:`fake_luminaires.fleet.Fleet`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from controller.config.settings import ModbusSettings
from controller.core.clock import AcceleratedClock
from controller.core.errors import GatewayUnavailable
from controller.core.ports import Gateway
from controller.core.values import Address, CommandSource, DeviceFlag, Level, ProtocolKind
from fake_luminaires.fleet import Fleet, GatewaySpec
from fake_luminaires.model import GatewayFault, LuminaireFault
from protocols.modbus import ModbusGateway
from protocols.mqtt import MqttLink
from tests.integration.conftest import MqttBroker

COUNT = 64


@dataclass
class Rig:
    protocol: ProtocolKind
    fleet: Fleet
    gateway: Gateway
    name: str

    async def state(self) -> dict[Address, object]:
        reading = await self.gateway.read()
        return dict(reading.luminaires)

    async def settle(self) -> None:
        """Give an MQTT fake time to publish what changed (Modbus reads are live)."""
        if self.protocol is ProtocolKind.MQTT:
            import asyncio

            await asyncio.sleep(0.3)


@pytest.fixture(params=[ProtocolKind.MODBUS, ProtocolKind.MQTT], ids=["modbus", "mqtt"])
async def rig(
    request: pytest.FixtureRequest, mqtt_broker: MqttBroker, mqtt_prefix: str
) -> AsyncIterator[Rig]:
    protocol: ProtocolKind = request.param
    clock = AcceleratedClock(datetime(2026, 6, 21, 13, 0, tzinfo=UTC), 1.0, time.time())
    settings = mqtt_broker.settings(mqtt_prefix)
    spec = GatewaySpec(
        name="gw-contract", protocol=protocol, count=COUNT,
        mqtt_id="gw-contract" if protocol is ProtocolKind.MQTT else None,
    )  # fmt: skip
    fleet = Fleet([spec], clock=clock, mqtt=settings, seed=5, state_interval_s=0.2)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(fleet)
        gateway: Gateway
        if protocol is ProtocolKind.MODBUS:
            gateway = await stack.enter_async_context(
                ModbusGateway(
                    "127.0.0.1",
                    fleet.modbus["gw-contract"].port,
                    unit_ids=[1],
                    luminaire_count=COUNT,
                    clock=clock,
                    settings=ModbusSettings(timeout_s=0.3, retries=0),
                    counters_max_age_s=0,
                )
            )
            await gateway.wait_connected()  # type: ignore[attr-defined]
        else:
            link = await stack.enter_async_context(
                MqttLink(settings, clock=clock, ack_timeout_s=1.0, stale_after_s=2.0)
            )
            await link.wait_connected()
            gateway = link.gateway("gw-contract")
            await stack.enter_async_context(gateway)  # type: ignore[arg-type]
        rig = Rig(protocol, fleet, gateway, "gw-contract")
        await rig.settle()
        yield rig


async def test_many_luminaires_in_one_command_round_trip(rig: Rig) -> None:
    levels = {Address(a): Level(a % 101) for a in range(COUNT)}
    result = await rig.gateway.apply(levels, source=CommandSource.OVERRIDE)
    assert result.accepted == frozenset(levels)
    assert result.rejected == {}
    model = rig.fleet.models[rig.name]
    assert {a: lum.commanded_level for a, lum in model.luminaires.items()} == levels
    await rig.settle()
    state = await rig.state()
    assert {a: r.level_pct for a, r in state.items()} == levels  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (
            LuminaireFault.LAMP_FAILURE,
            lambda r: DeviceFlag.LAMP_FAILURE in r.flags and r.power_w < 1,
        ),
        (LuminaireFault.DRIVER_FAILURE, lambda r: DeviceFlag.DRIVER_FAILURE in r.flags),
        (LuminaireFault.NOT_ANSWERING, lambda r: DeviceFlag.NOT_ANSWERING in r.flags),
        (LuminaireFault.OVER_TEMPERATURE, lambda r: DeviceFlag.OVER_TEMPERATURE in r.flags),
        (LuminaireFault.VOLTAGE_LOW, lambda r: r.voltage_v < 190),
        (LuminaireFault.VOLTAGE_HIGH, lambda r: r.voltage_v > 245),
        (LuminaireFault.POWER_HIGH, lambda r: r.power_w > 120),
        (LuminaireFault.POWER_LOW, lambda r: r.power_w < 80),
    ],
    ids=lambda v: v.value if isinstance(v, LuminaireFault) else "",
)
async def test_every_luminaire_fault_is_visible(
    rig: Rig, fault: LuminaireFault, check: object
) -> None:
    await rig.gateway.apply({Address(a): Level(100) for a in range(COUNT)})
    await rig.fleet.inject(rig.name, fault.value, 7)
    await rig.settle()
    state = await rig.state()
    assert check(state[Address(7)])  # type: ignore[operator]
    assert not check(state[Address(8)])  # type: ignore[operator]
    await rig.fleet.clear(rig.name, fault.value, 7)
    await rig.settle()
    assert not check((await rig.state())[Address(7)])  # type: ignore[operator]


async def test_stuck_on_is_visible_as_a_day_burner(rig: Rig) -> None:
    await rig.fleet.inject(rig.name, LuminaireFault.STUCK_ON.value, 3)
    await rig.gateway.apply({Address(a): Level(0) for a in range(COUNT)})
    await rig.settle()
    state = await rig.state()
    assert state[Address(3)].lamp_on and state[Address(3)].power_w > 50  # type: ignore[attr-defined]
    assert not state[Address(4)].lamp_on  # type: ignore[attr-defined]


async def test_mains_loss_is_visible_at_the_gateway(rig: Rig) -> None:
    await rig.gateway.apply({Address(a): Level(100) for a in range(COUNT)})
    await rig.fleet.inject(rig.name, GatewayFault.MAINS_LOSS.value)
    await rig.settle()
    reading = await rig.gateway.read()
    assert reading.mains_present is False
    assert all(r.power_w == 0 for r in reading.luminaires.values())
    await rig.fleet.clear(rig.name, GatewayFault.MAINS_LOSS.value)
    await rig.settle()
    assert (await rig.gateway.read()).mains_present is True


async def test_an_offline_gateway_is_unavailable_within_its_budget_and_comes_back(rig: Rig) -> None:
    await rig.fleet.inject(rig.name, GatewayFault.OFFLINE.value)
    started = time.monotonic()
    with pytest.raises(GatewayUnavailable):
        await rig.gateway.apply({Address(0): Level(50)})
    assert time.monotonic() - started < 2.0
    await rig.fleet.clear(rig.name, GatewayFault.OFFLINE.value)
    await rig.settle()
    result = await rig.gateway.apply({Address(0): Level(50)})
    assert result.accepted == {Address(0)}


async def test_an_address_beyond_the_gateway_is_refused_and_the_rest_applied(rig: Rig) -> None:
    result = await rig.gateway.apply({Address(COUNT + 5): Level(10), Address(1): Level(10)})
    assert Address(COUNT + 5) in result.rejected
    assert result.accepted == {Address(1)}
    assert rig.fleet.models[rig.name].luminaires[Address(1)].commanded_level == 10
