"""The Modbus driver against the fake Modbus gateway, over real loopback TCP sockets."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from controller.config.settings import ModbusSettings
from controller.core.clock import ManualClock
from controller.core.errors import ConfigError, GatewayUnavailable, ProtocolViolation
from controller.core.ports import Gateway
from controller.core.values import Address, DeviceFlag, GatewayReading, Level, level
from fake_luminaires.modbus_front import ModbusFront
from fake_luminaires.model import FakeGateway, GatewayFault, LuminaireFault
from protocols.modbus import ModbusGateway
from protocols.register_map import LuminaireField, RegisterProfile, load_builtin_profile
from tests.conftest import free_port

T0 = datetime(2025, 3, 1, 11, 0, tzinfo=UTC)
HOST = "127.0.0.1"
FAST = ModbusSettings(timeout_s=0.2, retries=1, reconnect_max_s=0.4)
DEAD_CALL_S = FAST.timeout_s * (FAST.retries + 1)
MARGIN_S = 0.35
REFERENCE = load_builtin_profile("reference")
ACME = load_builtin_profile("acme_dali_gw")


def levels_for(count: int, value: int) -> dict[Address, Level]:
    return {Address(i): level(value) for i in range(count)}


@asynccontextmanager
async def fake(
    count: int,
    clock: ManualClock,
    *,
    profile: RegisterProfile | None = None,
    port: int = 0,
    seed: int = 0,
) -> AsyncIterator[ModbusFront]:
    model = FakeGateway(f"gw-{seed}", count, start=T0, seed=seed)
    async with ModbusFront(model, clock=clock, profile=profile, port=port) as front:
        yield front


@asynccontextmanager
async def driver(
    port: int,
    count: int,
    clock: ManualClock,
    *,
    unit_ids: list[int] | None = None,
    profile: RegisterProfile | None = None,
    connected: bool = True,
    **options: Any,
) -> AsyncIterator[ModbusGateway]:
    gateway = ModbusGateway(
        HOST,
        port,
        unit_ids=unit_ids or list(range(1, 1 + max(1, -(-count // 64)))),
        luminaire_count=count,
        profile=profile,
        settings=FAST,
        clock=clock,
        reconnect_min_s=0.05,
        **options,
    )
    async with gateway:
        if connected:
            async with asyncio.timeout(3):
                await gateway.wait_connected()
        yield gateway


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [REFERENCE, ACME], ids=lambda p: p.name)
async def test_apply_then_read_round_trip(clock: ManualClock, profile: RegisterProfile) -> None:
    async with (
        fake(70, clock, profile=profile) as front,
        driver(front.port, 70, clock, profile=profile) as gw,
    ):
        first = await gw.read()
        assert sorted(first.luminaires) == list(range(70))
        assert all(not r.lamp_on for r in first.luminaires.values())
        assert first.map_version == profile.map_version

        result = await gw.apply({**levels_for(70, 80), Address(65): level(30)}, fade_s=0.0)
        assert result.accepted == frozenset(range(70))
        assert result.rejected == {}
        assert result.command_id

        clock.advance(60)
        reading = await gw.read()
        assert reading.mains_present
        assert reading.uptime_s == 60
        model = front.gateway.luminaires
        for address, r in reading.luminaires.items():
            expected = 30 if address == 65 else 80
            assert (r.level_pct, r.lamp_on) == (expected, True)
            truth = model[address].reading(clock.now())
            step_w = profile.fields["power_w"].spec.scale
            assert r.power_w == pytest.approx(truth.power_w, abs=step_w / 2 + 1e-6)
            assert r.energy_wh == truth.energy_wh
            assert r.at == clock.now()


async def test_fade_time_reaches_the_luminaires(clock: ManualClock) -> None:
    async with fake(4, clock) as front, driver(front.port, 4, clock) as gw:
        await gw.apply(levels_for(4, 100), fade_s=100.0)
        clock.advance(50)
        halfway = await gw.read()
        assert {r.level_pct for r in halfway.luminaires.values()} == {50}
        clock.advance(50)
        done = await gw.read()
        assert {r.level_pct for r in done.luminaires.values()} == {100}


async def test_64_luminaires_take_one_write_and_a_poll_takes_4_reads(
    clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        fake(64, clock) as front,
        driver(front.port, 64, clock, counters_max_age_s=3600) as gw,
    ):
        await gw.read()  # the first poll also fetches the slow counters
        writes = front.stats.writes
        result = await gw.apply(levels_for(64, 70), fade_s=1.0)
        assert front.stats.writes - writes == 1
        assert len(result.accepted) == 64

        reads = front.stats.reads
        durations = []
        for _ in range(20):
            started = time.perf_counter()
            reading = await gw.read()
            durations.append(time.perf_counter() - started)
        assert (front.stats.reads - reads) / 20 == 4
        assert len(reading.luminaires) == 64
        median_ms = statistics.median(durations) * 1000
        with capsys.disabled():
            print(f"\n64-luminaire poll on loopback: median {median_ms:.2f} ms (4 reads)")
        assert median_ms < 200


async def test_counters_are_refreshed_when_stale(clock: ManualClock) -> None:
    async with fake(3, clock) as front, driver(front.port, 3, clock, counters_max_age_s=60) as gw:
        await gw.apply(levels_for(3, 100))
        first = await gw.read()
        reads = front.stats.reads
        clock.advance(30)
        await gw.read()
        assert front.stats.reads - reads == 1  # gateway block + status records only
        clock.advance(3600)
        later = await gw.read()
        assert front.stats.reads - reads == 3  # + the counters block
        assert (
            later.luminaires[Address(0)].operating_hours
            > first.luminaires[Address(0)].operating_hours
        )


# -- faults seen through the driver -----------------------------------------------------------


async def read_with(
    front: ModbusFront, gw: ModbusGateway, clock: ManualClock, fault: LuminaireFault
) -> tuple[GatewayReading, GatewayReading]:
    await gw.apply(levels_for(len(front.gateway.luminaires), 100))
    clock.advance(10)
    before = await gw.read()
    await front.inject(fault, Address(1))
    clock.advance(10)
    return before, await gw.read()


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (
            LuminaireFault.LAMP_FAILURE,
            lambda b, r: DeviceFlag.LAMP_FAILURE in r.flags and not r.lamp_on and r.power_w < 1,
        ),
        (LuminaireFault.DRIVER_FAILURE, lambda b, r: DeviceFlag.DRIVER_FAILURE in r.flags),
        (
            LuminaireFault.NOT_ANSWERING,
            lambda b, r: (
                r.flags == {DeviceFlag.NOT_ANSWERING}
                and r.power_w == 0
                and r.energy_wh == b.energy_wh
            ),
        ),
        (LuminaireFault.POWER_HIGH, lambda b, r: r.power_w == pytest.approx(b.power_w * 1.3, 0.01)),
        (LuminaireFault.POWER_LOW, lambda b, r: r.power_w == pytest.approx(b.power_w * 0.7, 0.01)),
        (LuminaireFault.VOLTAGE_LOW, lambda b, r: r.voltage_v < 190),
        (LuminaireFault.VOLTAGE_HIGH, lambda b, r: r.voltage_v > 245),
        (
            LuminaireFault.OVER_TEMPERATURE,
            lambda b, r: DeviceFlag.OVER_TEMPERATURE in r.flags and r.temperature_c > 85,
        ),
    ],
    ids=lambda v: str(v) if isinstance(v, LuminaireFault) else "",
)
@pytest.mark.parametrize("profile", [REFERENCE, ACME], ids=lambda p: p.name)
async def test_luminaire_faults_are_visible(
    clock: ManualClock, fault: LuminaireFault, check: Any, profile: RegisterProfile
) -> None:
    async with (
        fake(3, clock, profile=profile) as front,
        driver(front.port, 3, clock, profile=profile, counters_max_age_s=0) as gw,
    ):
        before, after = await read_with(front, gw, clock, fault)
        assert check(before.luminaires[Address(1)], after.luminaires[Address(1)])
        healthy = after.luminaires[Address(0)]
        assert healthy.flags == frozenset() and healthy.lamp_on


async def test_stuck_on_and_cycling_are_visible(clock: ManualClock) -> None:
    async with fake(3, clock) as front, driver(front.port, 3, clock) as gw:
        await front.inject(LuminaireFault.STUCK_ON, Address(0))
        await front.inject(LuminaireFault.CYCLING, Address(1))
        await gw.apply({Address(0): level(0), Address(1): level(100)})
        seen = []
        for _ in range(4):
            clock.advance(30)
            reading = await gw.read()
            day_burner = reading.luminaires[Address(0)]
            assert day_burner.lamp_on and day_burner.power_w > 90
            seen.append(reading.luminaires[Address(1)].lamp_on)
        assert seen in ([True, False, True, False], [False, True, False, True])


async def test_mains_loss_is_visible(clock: ManualClock) -> None:
    async with fake(3, clock) as front, driver(front.port, 3, clock) as gw:
        await gw.apply(levels_for(3, 100))
        await front.inject(GatewayFault.MAINS_LOSS)
        clock.advance(5)
        reading = await gw.read()
        assert not reading.mains_present
        for r in reading.luminaires.values():
            assert DeviceFlag.SUPPLY_FAULT in r.flags
            assert (r.power_w, r.voltage_v) == (0.0, 0.0)


async def test_not_answering_luminaire_is_reported_rejected(clock: ManualClock) -> None:
    async with fake(3, clock) as front, driver(front.port, 3, clock) as gw:
        await front.inject(LuminaireFault.NOT_ANSWERING, Address(2))
        await gw.read()
        result = await gw.apply(levels_for(3, 50))
        assert result.accepted == {Address(0), Address(1)}
        assert result.rejected == {Address(2): "not answering (per last poll)"}


# -- a dead gateway costs only its own calls -------------------------------------------------


async def test_offline_gateway_fails_within_its_budget_while_another_answers(
    clock: ManualClock,
) -> None:
    async with (
        fake(64, clock, seed=1) as front_a,
        fake(64, clock, seed=2) as front_b,
        driver(front_a.port, 64, clock) as gw_a,
        driver(front_b.port, 64, clock) as gw_b,
    ):
        await gw_a.read()
        front_a.gateway.inject(GatewayFault.OFFLINE)  # on the model: the front just goes quiet

        async def dead() -> float:
            started = time.perf_counter()
            with pytest.raises(GatewayUnavailable, match="no valid answer"):
                await gw_a.read()
            return time.perf_counter() - started

        async def alive() -> list[float]:
            times = []
            for _ in range(5):
                started = time.perf_counter()
                reading = await gw_b.read()
                times.append(time.perf_counter() - started)
                assert len(reading.luminaires) == 64
            return times

        async with asyncio.TaskGroup() as tg:
            dead_task = tg.create_task(dead(), name="dead gateway read")
            alive_task = tg.create_task(alive(), name="live gateway reads")
        assert DEAD_CALL_S * 0.9 <= dead_task.result() <= DEAD_CALL_S + MARGIN_S
        assert max(alive_task.result()) < FAST.timeout_s
        assert front_a.stats.dropped >= 1
        assert gw_a.stats.timeouts == 1

        with pytest.raises(GatewayUnavailable):  # and so does apply
            await gw_a.apply(levels_for(2, 10))

        front_a.gateway.clear(GatewayFault.OFFLINE)
        async with asyncio.timeout(3):
            await gw_a.wait_connected()
        recovered = await gw_a.read()
        assert len(recovered.luminaires) == 64


async def test_disconnected_gateway_fails_fast_and_is_reconnected(clock: ManualClock) -> None:
    async with fake(10, clock) as front, driver(front.port, 10, clock) as gw:
        await gw.read()
        await front.inject(GatewayFault.DISCONNECT)
        assert not front.listening
        started = time.perf_counter()
        with pytest.raises(GatewayUnavailable):
            await gw.read()
        assert time.perf_counter() - started <= DEAD_CALL_S + MARGIN_S
        with pytest.raises(GatewayUnavailable, match="not connected"):
            await gw.read()

        await front.clear(GatewayFault.DISCONNECT)
        async with asyncio.timeout(3):
            await gw.wait_connected()
        assert len((await gw.read()).luminaires) == 10
        assert gw.stats.reconnects >= 1


async def test_driver_started_before_the_server_connects_when_it_appears(
    clock: ManualClock,
) -> None:
    port = free_port()
    async with driver(port, 5, clock, connected=False) as gw:
        started = time.perf_counter()
        with pytest.raises(GatewayUnavailable, match="not connected"):
            await gw.read()
        assert time.perf_counter() - started <= FAST.timeout_s + MARGIN_S
        await asyncio.sleep(0.3)  # a few failed connects, with back-off
        async with fake(5, clock, port=port):
            async with asyncio.timeout(3):
                await gw.wait_connected()
            assert len((await gw.read()).luminaires) == 5
        assert gw.stats.connects == 1


# -- refusals and violations keep the driver going ------------------------------------------


async def test_illegal_addresses_are_domain_errors_and_the_driver_carries_on(
    clock: ManualClock,
) -> None:
    # The driver believes in 70 luminaires; the gateway has 66 (unit 2 has only 2).
    async with fake(66, clock) as front, driver(front.port, 70, clock) as gw:
        with pytest.raises(
            ProtocolViolation, match=r"unit 2 read registers .*illegal data address"
        ):
            await gw.read()
        result = await gw.apply({Address(1): level(40), Address(68): level(40)})
        assert result.accepted == {Address(1)}
        assert result.rejected[Address(68)].startswith("refused by gateway: illegal data address")
        assert gw.stats.exception_responses == 2

        out_of_range = await gw.apply({Address(2): 150, Address(99): 5})  # type: ignore[dict-item]
        assert out_of_range.rejected == {
            Address(2): "level out of range",
            Address(99): "unknown address",
        }
    async with fake(66, clock) as front, driver(front.port, 66, clock) as gw:
        await gw.apply({Address(1): level(40)})
        clock.advance(1)
        assert (await gw.read()).luminaires[Address(1)].level_pct == 40


async def test_unknown_unit_id_is_a_violation(clock: ManualClock) -> None:
    async with fake(5, clock) as front, driver(front.port, 5, clock, unit_ids=[9]) as gw:
        with pytest.raises(ProtocolViolation, match="unit 9"):
            await gw.read()


async def test_wrong_map_is_refused(clock: ManualClock) -> None:
    acme_on_reference = replace(ACME, read_table=REFERENCE.read_table)
    async with (
        fake(5, clock) as front,
        driver(front.port, 5, clock, profile=acme_on_reference) as gw,
    ):
        with pytest.raises(ProtocolViolation):
            await gw.read()


async def test_implausible_record_drops_only_that_luminaire(clock: ManualClock) -> None:
    # A gateway whose firmware reports levels in half-percent steps: 80 % reads as 160.
    level_field = REFERENCE.fields["level_pct"]
    broken_spec = replace(level_field.spec, scale=0.5, maximum=None)
    broken = replace(
        REFERENCE,
        fields={**REFERENCE.fields, "level_pct": LuminaireField(broken_spec, level_field.block)},
    )
    async with fake(3, clock, profile=broken) as front, driver(front.port, 3, clock) as gw:
        await gw.apply({Address(0): level(80), Address(1): level(40)})
        clock.advance(1)
        reading = await gw.read()
        assert sorted(reading.luminaires) == [1, 2]  # 0 dropped, 1 reads 80 (40 x 2)
        assert reading.luminaires[Address(1)].level_pct == 80
        assert gw.stats.malformed == 1
        await gw.read()
        assert gw.stats.malformed == 2  # counted every time, logged once


async def test_front_refuses_out_of_range_levels_on_the_wire(clock: ManualClock) -> None:
    async with fake(3, clock) as front:
        client = AsyncModbusTcpClient(
            HOST, port=front.port, timeout=1, retries=0, reconnect_delay=0
        )
        try:
            assert await client.connect()
            refused = await client.write_registers(1, [50, 150], device_id=1)
            assert refused.isError() and refused.exception_code == 3
            assert front.gateway.luminaires[Address(0)].commanded_level == 0  # nothing applied
            accepted = await client.write_registers(1, [50, 60], device_id=1)
            assert not accepted.isError()
            assert front.gateway.luminaires[Address(1)].commanded_level == 60
        finally:
            client.close()


def test_driver_implements_the_gateway_interface() -> None:
    gateway: Gateway = ModbusGateway(HOST, 502, unit_ids=[1, 2], luminaire_count=128)
    assert isinstance(gateway, ModbusGateway)
    assert gateway.locate(Address(70)) == (2, 6)
    with pytest.raises(ConfigError, match="luminaire_count"):
        ModbusGateway(HOST, 502, unit_ids=[1], luminaire_count=65)
    with pytest.raises(ConfigError, match="unit_ids"):
        ModbusGateway(HOST, 502, unit_ids=[1, 1], luminaire_count=1)
