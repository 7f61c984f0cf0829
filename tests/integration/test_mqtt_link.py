"""The MQTT driver against the fake MQTT gateways, over a real mosquitto on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import pytest

from controller.config.settings import MqttSettings
from controller.core.clock import AcceleratedClock, Clock, ManualClock
from controller.core.errors import CommandRejected, GatewayUnavailable, ProtocolViolation
from controller.core.values import (
    Address,
    CommandResult,
    CommandSource,
    DeviceFlag,
    GatewayReading,
    Level,
    Reading,
)
from fake_luminaires.model import FakeGateway, GatewayFault, LuminaireFault, lit_power_w
from fake_luminaires.mqtt_front import FakeMqttFleet
from protocols.mqtt import (
    AvailabilityChanged,
    ConnectionChanged,
    FlagChanged,
    LinkEvent,
    MqttGateway,
    MqttLink,
)
from protocols.mqtt_codec import decode_command
from tests.conftest import free_port
from tests.integration.conftest import MqttBroker, MqttVersion

pytestmark = pytest.mark.broker

START = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
ACK_TIMEOUT_S = 1.0
WAIT_S = 5.0


def models(*ids: str, count: int = 100, start: datetime | None = None) -> list[FakeGateway]:
    """Fake gateways; ``start`` must not be later than the fleet clock's time."""
    at = start or datetime.now(UTC)
    return [FakeGateway(gw, count, start=at, seed=i) for i, gw in enumerate(ids)]


@contextlib.asynccontextmanager
async def running(
    settings: MqttSettings,
    gateways: Sequence[FakeGateway],
    *,
    clock: Clock | None = None,
    link_clock: Clock | None = None,
    interval_s: float = 10.0,
    per_connection: int = 1,
    **link_options: Any,
) -> AsyncIterator[tuple[MqttLink, FakeMqttFleet]]:
    """A link and a fleet, both connected and the fleet's first state received."""
    link_options.setdefault("ack_timeout_s", ACK_TIMEOUT_S)
    link = MqttLink(settings, clock=link_clock or clock, **link_options)
    fleet = FakeMqttFleet(
        gateways,
        settings,
        clock=clock,
        interval_s=interval_s,
        gateways_per_connection=per_connection,
    )
    async with link:
        await link.wait_connected(WAIT_S)  # subscribed before the fakes send their first state
        async with fleet:
            await fleet.wait_online(WAIT_S)
            for model in gateways:
                if model.answering:
                    await wait_reading(link.gateway(model.gateway_id), lambda r: True)
            yield link, fleet


async def wait_reading(
    gw: MqttGateway, predicate: Callable[[GatewayReading], bool], timeout_s: float = WAIT_S
) -> GatewayReading:
    """The first state read from ``gw`` that satisfies ``predicate`` (state has no event)."""
    last: GatewayReading | Exception | None = None
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    last = await gw.read()
                    if predicate(last):
                        return last
                except GatewayUnavailable as exc:
                    last = exc
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"no matching state from {gw.gateway_id}; last: {last!r}") from None


async def wait_event(
    events: AsyncIterator[LinkEvent],
    predicate: Callable[[LinkEvent], bool],
    timeout_s: float = WAIT_S,
) -> LinkEvent:
    seen: list[LinkEvent] = []
    try:
        async with asyncio.timeout(timeout_s):
            async for event in events:
                if predicate(event):
                    return event
                seen.append(event)
    except TimeoutError:
        pass
    raise AssertionError(f"no matching event; saw {seen!r}")


async def apply_eventually(
    gw: MqttGateway, levels: dict[Address, Level], timeout_s: float = WAIT_S
) -> CommandResult:
    """Apply, retrying while the gateway is unavailable (after a broker restart the fake
    gateway may reconnect a moment after the link)."""
    async with asyncio.timeout(timeout_s):
        while True:
            with contextlib.suppress(GatewayUnavailable):
                return await gw.apply(levels)
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def raw_client(settings: MqttSettings, name: str) -> AsyncIterator[aiomqtt.Client]:
    """A plain client: a spy, or a misbehaving gateway."""
    protocol = (
        aiomqtt.ProtocolVersion.V5 if settings.protocol == "5" else aiomqtt.ProtocolVersion.V311
    )
    async with aiomqtt.Client(
        settings.host, settings.port, identifier=f"{name}-{settings.prefix}", protocol=protocol
    ) as client:
        yield client


async def collect(client: aiomqtt.Client, topic: str, *, quiet_s: float) -> list[bytes]:
    """Payloads on ``topic`` until none came for ``quiet_s`` (others are ignored: amqtt
    delivers retained messages of topics the client never subscribed to)."""
    payloads: list[bytes] = []
    with contextlib.suppress(TimeoutError):
        while True:
            async with asyncio.timeout(quiet_s if payloads else WAIT_S):
                message = await anext(aiter(client.messages))
            if message.topic.matches(topic) and isinstance(message.payload, bytes):
                payloads.append(message.payload)
    return payloads


def lum(reading: GatewayReading, address: int) -> Reading:
    return reading.luminaires[Address(address)]


ALL = {Address(i): Level(100) for i in range(100)}


# --------------------------------------------------------------------------- commands


async def test_apply_is_acknowledged_and_the_state_follows(
    mqtt_broker: MqttBroker, mqtt_prefix: str, mqtt_protocol: MqttVersion
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix, protocol=mqtt_protocol)
    async with running(settings, models("gw-1")) as (link, fleet):
        gw = link.gateway("gw-1")
        result = await gw.apply(
            {Address(0): Level(70), Address(5): Level(0)}, source=CommandSource.OVERRIDE, fade_s=0.0
        )
        assert result.accepted == {Address(0), Address(5)}
        assert result.rejected == {}
        state = await wait_reading(gw, lambda r: lum(r, 0).level_pct == 70)
        assert lum(state, 0).lamp_on
        assert not lum(state, 5).lamp_on
        assert fleet.model("gw-1").luminaires[Address(0)].commanded_level == 70
        assert link.stats.acks_matched == 1
        assert link.stats.timeouts == 0
        assert link.stats.malformed == 0


async def test_a_hundred_luminaires_take_one_publish_and_unknown_ones_are_rejected(
    mqtt_broker: MqttBroker, mqtt_prefix: str, mqtt_protocol: MqttVersion
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix, protocol=mqtt_protocol)
    async with (
        running(settings, models("gw-1")) as (link, fleet),
        raw_client(settings, "spy") as spy,
    ):
        await spy.subscribe(f"{mqtt_prefix}/gw/+/cmd", qos=1)
        levels = dict(ALL) | {Address(100): Level(50), Address(4000): Level(10)}
        result = await link.gateway("gw-1").apply(levels, source=CommandSource.PROGRAM, fade_s=3.0)
        assert result.accepted == set(ALL)
        assert result.rejected == {
            Address(100): "unknown address",
            Address(4000): "unknown address",
        }

        published = await collect(spy, f"{mqtt_prefix}/gw/gw-1/cmd", quiet_s=0.2)
        assert len(published) == 1
        command = decode_command(published[0])
        assert command.command_id == result.command_id
        assert command.levels == levels
        assert command.fade_s == 3.0
        assert fleet.stats.commands == 1


async def test_many_commands_in_flight_each_get_their_own_ack(
    mqtt_broker: MqttBroker, mqtt_prefix: str
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix)
    ids = [f"gw-{i}" for i in range(20)]
    async with running(settings, models(*ids, count=10), per_connection=10) as (link, fleet):
        assert fleet.connections == 2
        results = await asyncio.gather(
            *(link.gateway(gw).apply({Address(i % 10): Level(i)}) for i, gw in enumerate(ids))
        )
        for i, result in enumerate(results):
            assert result.accepted == {Address(i % 10)}
        assert len({r.command_id for r in results}) == len(ids)
        assert link.stats.acks_matched == len(ids)


async def test_an_empty_command_sends_nothing(mqtt_broker: MqttBroker, mqtt_prefix: str) -> None:
    settings = mqtt_broker.settings(mqtt_prefix)
    async with running(settings, models("gw-1")) as (link, _):
        result = await link.gateway("gw-1").apply({})
        assert result.accepted == frozenset()
        assert link.stats.commands_sent == 0


# --------------------------------------------------------------------------- state


async def test_read_returns_every_luminaire_and_the_gateway_block(
    mqtt_broker: MqttBroker, mqtt_prefix: str, mqtt_protocol: MqttVersion
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix, protocol=mqtt_protocol)
    async with running(settings, models("gw-1")) as (link, fleet):
        gw = link.gateway("gw-1")
        await gw.apply(ALL)
        state = await wait_reading(
            gw, lambda r: all(x.level_pct == 100 for x in r.luminaires.values())
        )
        assert set(state.luminaires) == set(ALL)
        assert state.mains_present
        assert state.uptime_s >= 0
        expected = fleet.model("gw-1").luminaires[Address(7)]
        seven = lum(state, 7)
        assert seven.address == Address(7)
        assert seven.lamp_on
        assert seven.power_w == pytest.approx(100.0 * expected.trim, rel=1e-3)
        assert 215 < seven.voltage_v < 225
        assert seven.power_factor == pytest.approx(0.95)
        assert seven.current_ma > 0
        assert seven.energy_wh > 0
        assert seven.switch_on_count > 0
        assert seven.flags == frozenset()


async def test_read_refuses_a_gateway_that_never_reported_or_went_stale(
    mqtt_broker: MqttBroker, mqtt_prefix: str
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix)
    clock = ManualClock(START)
    async with running(settings, models("gw-1"), link_clock=clock, stale_after_s=60) as (link, _):
        with pytest.raises(GatewayUnavailable, match="has not reported"):
            await link.gateway("gw-unknown").read()
        await link.gateway("gw-1").read()
        clock.advance(61)
        with pytest.raises(GatewayUnavailable, match="61 s old"):
            await link.gateway("gw-1").read()


async def test_every_luminaire_fault_shows_in_state_and_events(
    mqtt_broker: MqttBroker, mqtt_prefix: str
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix)
    clock = AcceleratedClock(START, speed=60)  # the cycling fault flips every 30 s
    rated = 100.0
    async with running(
        settings, models("gw-1", "gw-2", count=12, start=START), clock=clock, interval_s=5
    ) as (
        link,
        fleet,
    ):
        events = link.events()
        gw = link.gateway("gw-1")
        await gw.apply({Address(i): Level(100) for i in range(12)})
        await gw.apply({Address(4): Level(0)})  # stuck on: commanded off, stays lit
        cases = {
            1: LuminaireFault.LAMP_FAILURE,
            2: LuminaireFault.DRIVER_FAILURE,
            3: LuminaireFault.NOT_ANSWERING,
            4: LuminaireFault.STUCK_ON,
            5: LuminaireFault.POWER_HIGH,
            6: LuminaireFault.POWER_LOW,
            7: LuminaireFault.VOLTAGE_LOW,
            8: LuminaireFault.VOLTAGE_HIGH,
            9: LuminaireFault.CYCLING,
            10: LuminaireFault.OVER_TEMPERATURE,
        }
        for address, fault in cases.items():
            fleet.inject("gw-1", fault, Address(address))
        fleet.inject("gw-2", GatewayFault.MAINS_LOSS)

        raised: set[tuple[str, int, DeviceFlag]] = set()
        wanted = {
            ("gw-1", 1, DeviceFlag.LAMP_FAILURE),
            ("gw-1", 2, DeviceFlag.DRIVER_FAILURE),
            ("gw-1", 3, DeviceFlag.NOT_ANSWERING),
            ("gw-1", 10, DeviceFlag.OVER_TEMPERATURE),
        } | {("gw-2", a, DeviceFlag.SUPPLY_FAULT) for a in range(12)}
        async with asyncio.timeout(WAIT_S):
            async for event in events:
                if isinstance(event, FlagChanged) and event.change.raised:
                    raised.add((event.gateway_id, event.change.address, event.change.flag))
                if wanted <= raised:
                    break
        assert raised == wanted

        def power(level: float) -> float:
            return lit_power_w(rated, level)

        state = await wait_reading(gw, lambda r: lum(r, 3).flags == {DeviceFlag.NOT_ANSWERING})
        assert lum(state, 0).flags == frozenset()
        assert lum(state, 0).power_w == pytest.approx(power(100), rel=0.02)
        assert lum(state, 1).flags == {DeviceFlag.LAMP_FAILURE}
        assert not lum(state, 1).lamp_on
        assert lum(state, 1).power_w < 1
        assert lum(state, 2).flags == {DeviceFlag.DRIVER_FAILURE}
        assert lum(state, 3).power_w == 0
        assert lum(state, 4).lamp_on
        assert lum(state, 4).level_pct == 100
        assert lum(state, 4).power_w == pytest.approx(power(100), rel=0.02)
        assert lum(state, 5).power_w == pytest.approx(1.3 * power(100), rel=0.02)
        assert lum(state, 6).power_w == pytest.approx(0.7 * power(100), rel=0.02)
        assert lum(state, 7).voltage_v == pytest.approx(185, rel=0.02)
        assert lum(state, 8).voltage_v == pytest.approx(250, rel=0.02)
        assert lum(state, 10).flags == {DeviceFlag.OVER_TEMPERATURE}
        assert lum(state, 10).temperature_c > 90
        # Cycling: the lamp goes dark and lit again while commanded on.
        starts = lum(state, 9).switch_on_count
        await wait_reading(gw, lambda r: not lum(r, 9).lamp_on)
        await wait_reading(gw, lambda r: lum(r, 9).switch_on_count > starts and lum(r, 9).lamp_on)

        mains = await wait_reading(link.gateway("gw-2"), lambda r: not r.mains_present)
        assert all(x.flags == {DeviceFlag.SUPPLY_FAULT} for x in mains.luminaires.values())
        assert all(x.voltage_v == 0 and x.power_w == 0 for x in mains.luminaires.values())

        fleet.clear("gw-1", LuminaireFault.LAMP_FAILURE, Address(1))
        cleared = await wait_event(
            events, lambda e: isinstance(e, FlagChanged) and not e.change.raised
        )
        assert isinstance(cleared, FlagChanged)
        assert (cleared.gateway_id, cleared.change.address) == ("gw-1", 1)
        assert cleared.change.flag is DeviceFlag.LAMP_FAILURE


# --------------------------------------------------------------------------- gateway faults


async def test_a_silent_gateway_times_out_while_another_keeps_working(
    mqtt_broker: MqttBroker, mqtt_prefix: str, mqtt_protocol: MqttVersion
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix, protocol=mqtt_protocol)
    async with running(settings, models("gw-1", "gw-2")) as (link, fleet):
        fleet.inject("gw-1", GatewayFault.OFFLINE)
        silent, alive = link.gateway("gw-1"), link.gateway("gw-2")

        async def timed_out() -> float:
            started = time.monotonic()
            with pytest.raises(GatewayUnavailable, match="not acknowledged within 1 s"):
                await silent.apply({Address(0): Level(10)})
            return time.monotonic() - started

        async def keeps_working() -> None:
            for level in (10, 20, 30):
                result = await alive.apply({Address(0): Level(level)})
                assert result.accepted == {Address(0)}

        elapsed, _ = await asyncio.gather(timed_out(), keeps_working())
        assert ACK_TIMEOUT_S <= elapsed < ACK_TIMEOUT_S + 0.5
        assert link.stats.timeouts == 1
        assert fleet.stats.ignored == 1
        assert silent.online is True  # silent, not disconnected: no Last Will

        fleet.clear("gw-1", GatewayFault.OFFLINE)
        assert (await silent.apply({Address(0): Level(10)})).accepted == {Address(0)}


async def test_a_dropped_gateway_connection_fires_its_last_will(
    mqtt_broker: MqttBroker, mqtt_prefix: str, mqtt_protocol: MqttVersion
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix, protocol=mqtt_protocol)
    async with running(settings, models("gw-1", "gw-2")) as (link, fleet):
        events = link.events()
        gw = link.gateway("gw-1")
        assert gw.online is True
        fleet.inject("gw-1", GatewayFault.DISCONNECT)
        went = await wait_event(
            events, lambda e: isinstance(e, AvailabilityChanged) and not e.online
        )
        assert isinstance(went, AvailabilityChanged)
        assert went.gateway_id == "gw-1"
        assert gw.online is False
        started = time.monotonic()
        with pytest.raises(GatewayUnavailable, match="offline"):
            await gw.apply({Address(0): Level(10)})
        assert time.monotonic() - started < 0.1  # no wait for an ack that cannot come
        with pytest.raises(GatewayUnavailable, match="offline"):
            await gw.read()
        assert (await link.gateway("gw-2").apply({Address(0): Level(10)})).accepted

        fleet.clear("gw-1", GatewayFault.DISCONNECT)
        back = await wait_event(events, lambda e: isinstance(e, AvailabilityChanged) and e.online)
        assert isinstance(back, AvailabilityChanged)
        assert (back.gateway_id, back.online) == ("gw-1", True)
        assert (await gw.apply({Address(0): Level(10)})).accepted == {Address(0)}


async def test_a_multiplexed_gateway_that_disconnects_says_offline_and_goes_silent(
    mqtt_broker: MqttBroker, mqtt_prefix: str
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix)
    async with running(settings, models("gw-1", "gw-2"), per_connection=2) as (link, fleet):
        events = link.events()
        fleet.inject("gw-1", GatewayFault.DISCONNECT)
        went = await wait_event(
            events, lambda e: isinstance(e, AvailabilityChanged) and not e.online
        )
        assert isinstance(went, AvailabilityChanged)
        assert (went.gateway_id, went.online) == ("gw-1", False)
        assert (await link.gateway("gw-2").apply({Address(0): Level(10)})).accepted
        fleet.clear("gw-1", GatewayFault.DISCONNECT)
        back = await wait_event(events, lambda e: isinstance(e, AvailabilityChanged) and e.online)
        assert isinstance(back, AvailabilityChanged)
        assert (back.gateway_id, back.online) == ("gw-1", True)
        assert (await link.gateway("gw-1").apply({Address(0): Level(10)})).accepted


async def test_a_clean_stop_of_the_fleet_says_offline(
    mqtt_broker: MqttBroker, mqtt_prefix: str
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix)
    async with MqttLink(settings) as link:
        await link.wait_connected(WAIT_S)
        async with FakeMqttFleet(models("gw-1"), settings) as fleet:
            await fleet.wait_online(WAIT_S)
            await wait_reading(link.gateway("gw-1"), lambda r: True)
        events = link.events()
        await wait_event(events, lambda e: isinstance(e, AvailabilityChanged) and not e.online)
        assert link.gateway("gw-1").online is False


# --------------------------------------------------------------------------- the broker


async def test_apply_fails_fast_while_the_broker_is_down_and_works_after_restart(
    mqtt_broker: MqttBroker, mqtt_prefix: str, mqtt_protocol: MqttVersion
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix, protocol=mqtt_protocol)
    gateways = models("gw-1", "gw-2")
    async with running(settings, gateways, reconnect_min_s=0.1, reconnect_max_s=0.2) as (
        link,
        fleet,
    ):
        events = link.events()
        fleet.inject("gw-2", GatewayFault.OFFLINE)  # its command will be waiting for an ack
        failed_at: list[float] = []

        async def waits_for_an_ack_that_cannot_come() -> None:
            with pytest.raises(GatewayUnavailable, match="connection to the broker lost"):
                await link.gateway("gw-2").apply({Address(0): Level(1)})
            failed_at.append(time.monotonic())

        async with asyncio.TaskGroup() as tg:
            tg.create_task(waits_for_an_ack_that_cannot_come(), name="waiting-apply")
            await asyncio.sleep(0.1)
            lost_at = time.monotonic()
            await mqtt_broker.stop()
            await wait_event(events, lambda e: isinstance(e, ConnectionChanged) and not e.connected)
            started = time.monotonic()
            with pytest.raises(GatewayUnavailable, match="not connected"):
                await link.gateway("gw-1").apply({Address(0): Level(10)})
            assert time.monotonic() - started < 0.1
        assert failed_at[0] - lost_at < ACK_TIMEOUT_S / 2  # failed on the loss, not the timeout

        await mqtt_broker.start()
        await wait_event(events, lambda e: isinstance(e, ConnectionChanged) and e.connected)
        result = await apply_eventually(link.gateway("gw-1"), {Address(0): Level(10)})
        assert result.accepted == {Address(0)}
        assert link.stats.reconnects == 1
        assert fleet.stats.connects >= 4


async def test_the_link_subscribes_again_when_the_broker_forgot_its_session(
    mqtt_broker: MqttBroker, mqtt_prefix: str, mqtt_protocol: MqttVersion
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix, protocol=mqtt_protocol)
    async with running(
        settings, models("gw-1"), reconnect_min_s=0.1, reconnect_max_s=0.2, stale_after_s=60
    ) as (link, fleet):
        events = link.events()
        await mqtt_broker.restart(forget_sessions=True)
        await wait_event(events, lambda e: isinstance(e, ConnectionChanged) and not e.connected)
        await wait_event(events, lambda e: isinstance(e, ConnectionChanged) and e.connected)
        result = await apply_eventually(link.gateway("gw-1"), {Address(0): Level(33)})
        assert result.accepted == {Address(0)}  # the ack came back: ack/+ subscribed again
        await wait_reading(link.gateway("gw-1"), lambda r: lum(r, 0).level_pct == 33)
        fleet.inject("gw-1", LuminaireFault.LAMP_FAILURE, Address(1))
        await wait_event(events, lambda e: isinstance(e, FlagChanged))


async def test_qos1_messages_sent_while_the_link_was_away_arrive_after_it_reconnects(
    mqtt_broker: MqttBroker, mqtt_prefix: str, mqtt_protocol: MqttVersion
) -> None:
    mqtt_broker.require(persistent=True)
    settings = mqtt_broker.settings(mqtt_prefix, protocol=mqtt_protocol)
    backoff_s = 1.5  # the link stays away this long after the restart; the fake returns at once
    async with running(
        settings, models("gw-1"), reconnect_min_s=backoff_s, reconnect_max_s=backoff_s
    ) as (
        link,
        fleet,
    ):
        events = link.events()
        await mqtt_broker.stop()
        await wait_event(events, lambda e: isinstance(e, ConnectionChanged) and not e.connected)
        await mqtt_broker.start()
        await fleet.wait_online(WAIT_S)
        fleet.inject("gw-1", LuminaireFault.LAMP_FAILURE, Address(42))
        await asyncio.sleep(0.1)  # published (QoS 1) and queued by the broker for the link
        assert not link.connected, "the test needs the link to be away at this point"

        event = await wait_event(events, lambda e: isinstance(e, FlagChanged))
        assert isinstance(event, FlagChanged)
        assert (event.gateway_id, event.change.address, event.change.flag) == (
            "gw-1",
            42,
            DeviceFlag.LAMP_FAILURE,
        )
        assert link.stats.reconnects == 1


async def test_the_session_survives_a_controller_restart_and_a_broker_restart(
    mqtt_broker: MqttBroker, mqtt_prefix: str, mqtt_protocol: MqttVersion
) -> None:
    mqtt_broker.require(persistent=True)
    settings = mqtt_broker.settings(mqtt_prefix, protocol=mqtt_protocol)
    async with MqttLink(settings) as link:  # registers the session and its subscriptions
        await link.wait_connected(WAIT_S)
    await mqtt_broker.restart()
    async with FakeMqttFleet(models("gw-1"), settings) as fleet:  # while no controller runs
        await fleet.wait_online(WAIT_S)
        fleet.inject("gw-1", LuminaireFault.DRIVER_FAILURE, Address(7))
        await asyncio.sleep(0.2)
    async with MqttLink(settings) as link:
        event = await wait_event(link.events(), lambda e: isinstance(e, FlagChanged))
        assert isinstance(event, FlagChanged)
        assert (event.change.address, event.change.flag) == (7, DeviceFlag.DRIVER_FAILURE)
        state = await link.gateway("gw-1").read()  # the queued state came too
        assert lum(state, 7).flags == {DeviceFlag.DRIVER_FAILURE}


# --------------------------------------------------------------------------- bad payloads


async def test_malformed_payloads_are_counted_logged_and_survived(
    mqtt_broker: MqttBroker,
    mqtt_prefix: str,
    mqtt_protocol: MqttVersion,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix, protocol=mqtt_protocol)
    caplog.set_level(logging.WARNING, logger="protocols.mqtt")
    good_state = {
        "ts": "2026-06-21T12:00:00Z",
        "gateway": {"mains_present": True, "uptime_s": 5},
        "luminaires": {
            "0": {
                "lamp_on": True,
                "level_pct": 50,
                "power_w": 54.0,
                "voltage_v": 220.0,
                "current_ma": 300,
                "power_factor": 0.8,
                "energy_wh": 10,
                "operating_hours": 1,
                "switch_on_count": 1,
                "temperature_c": 40.0,
                "flags": [],
            }
        },
    }
    level_150 = json.loads(json.dumps(good_state))
    level_150["luminaires"]["0"]["level_pct"] = 150
    wrong_type = json.loads(json.dumps(good_state))
    wrong_type["gateway"]["uptime_s"] = "5"
    bad = [
        ("state", b"{not json"),
        ("state", json.dumps(wrong_type).encode()),
        ("state", json.dumps(level_150).encode()),
        (
            "events",
            b'{"events": [{"address": 1, "flag": "melted", "change": "raised", "ts": "x"}]}',
        ),
        ("availability", b"maybe"),
        ("ack", b'{"id": 5}'),
    ]
    async with (
        MqttLink(settings, ack_timeout_s=ACK_TIMEOUT_S) as link,
        raw_client(settings, "rogue") as rogue,
    ):
        await link.wait_connected(WAIT_S)
        topic = f"{mqtt_prefix}/gw/rogue-gw"
        for kind, payload in bad:
            received = link.stats.messages_in
            await rogue.publish(f"{topic}/{kind}", payload, qos=1)
            if kind == "state":  # a state is decoded when read: read each bad one
                for _ in range(100):
                    if link.stats.messages_in > received:
                        break
                    await asyncio.sleep(0.02)
                with pytest.raises(GatewayUnavailable):
                    await link.gateway("rogue-gw").read()
        await rogue.publish(f"{topic}/state", json.dumps(good_state).encode(), qos=1)
        state = await wait_reading(link.gateway("rogue-gw"), lambda r: True)
        assert lum(state, 0).level_pct == 50  # the loop went on after the bad ones
        assert link.stats.malformed == len(bad)
        warnings = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
        assert len(warnings) == len(bad)
        assert all("rogue-gw" in w and f"{topic}/" in w for w in warnings)
        assert any("level_pct: must be 0..100, got 150" in w for w in warnings)
        assert any("uptime_s: must be an integer" in w for w in warnings)


async def test_an_ack_that_does_not_match_its_command_is_a_violation(
    mqtt_broker: MqttBroker, mqtt_prefix: str
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix)
    async with (
        MqttLink(settings, ack_timeout_s=ACK_TIMEOUT_S) as link,
        raw_client(settings, "rogue") as rogue,
    ):
        await link.wait_connected(WAIT_S)
        await rogue.subscribe(f"{mqtt_prefix}/gw/rogue-gw/cmd", qos=1)

        async def answer(make: Callable[[str], dict[str, Any]]) -> None:
            async for message in rogue.messages:
                if not message.topic.matches(f"{mqtt_prefix}/gw/rogue-gw/cmd"):
                    continue  # amqtt sends strays
                assert isinstance(message.payload, bytes)
                command = decode_command(message.payload)
                ack = make(command.command_id) | {
                    "id": command.command_id,
                    "ts": "2026-06-21T12:00:00Z",
                }
                await rogue.publish(
                    f"{mqtt_prefix}/gw/rogue-gw/ack", json.dumps(ack).encode(), qos=1
                )
                return

        gw = link.gateway("rogue-gw")
        unknown_address = {"results": {"0": {"ok": True}, "99": {"ok": True}}}
        with pytest.raises(ProtocolViolation, match=r"unknown address\(es\) \[99\]"):
            await asyncio.gather(
                gw.apply({Address(0): Level(5)}), answer(lambda _: unknown_address)
            )
        assert link.stats.malformed == 1

        refused = {"error": "levels do not decode"}
        with pytest.raises(CommandRejected, match="levels do not decode"):
            await asyncio.gather(gw.apply({Address(0): Level(5)}), answer(lambda _: refused))


async def test_the_fake_refuses_a_malformed_command_and_goes_on(
    mqtt_broker: MqttBroker, mqtt_prefix: str, mqtt_protocol: MqttVersion
) -> None:
    settings = mqtt_broker.settings(mqtt_prefix, protocol=mqtt_protocol)
    async with (
        running(settings, models("gw-1")) as (link, fleet),
        raw_client(settings, "rogue") as rogue,
    ):
        await rogue.subscribe(f"{mqtt_prefix}/gw/gw-1/ack", qos=1)
        cmd = f"{mqtt_prefix}/gw/gw-1/cmd"
        await rogue.publish(cmd, b"{not json", qos=1)
        bad = {"id": "bad-1", "source": "program", "fade_s": 0, "levels": {"0": 150}, "ts": "x"}
        await rogue.publish(cmd, json.dumps(bad).encode(), qos=1)
        acks = await collect(rogue, f"{mqtt_prefix}/gw/gw-1/ack", quiet_s=0.2)
        assert len(acks) == 1
        ack = json.loads(acks[0])
        assert ack["id"] == "bad-1"
        assert "150" in ack["error"]
        assert fleet.stats.malformed == 2
        assert (await link.gateway("gw-1").apply({Address(0): Level(10)})).accepted
        assert link.stats.acks_unmatched == 1  # the refusal of bad-1 reached the link too


# --------------------------------------------------------------------------- lifecycle


async def test_events_end_when_the_link_closes(mqtt_broker: MqttBroker, mqtt_prefix: str) -> None:
    settings = mqtt_broker.settings(mqtt_prefix)
    async with MqttLink(settings) as link:
        await link.wait_connected(WAIT_S)
        events = link.events()
    seen = [event async for event in events]
    assert seen == [ConnectionChanged(True, seen[0].at), ConnectionChanged(False, seen[1].at)]  # type: ignore[union-attr]


async def test_wait_connected_gives_up_when_there_is_no_broker(mqtt_prefix: str) -> None:
    settings = MqttSettings(port=free_port(), prefix=mqtt_prefix, client_id=f"ctl-{mqtt_prefix}")
    async with MqttLink(settings, reconnect_min_s=0.05, reconnect_max_s=0.05) as link:
        with pytest.raises(GatewayUnavailable, match=r"not reached within 0\.3 s"):
            await link.wait_connected(0.3)
        with pytest.raises(GatewayUnavailable, match="not connected"):
            await link.gateway("gw-1").apply({Address(0): Level(10)})
        assert link.stats.connect_failures >= 2
