"""MQTT front of the fake luminaires: `FakeGateway` models speaking docs/protocol/mqtt.md.

One class, :class:`FakeMqttFleet`, serves any number of models over a few client
connections::

    fleet = FakeMqttFleet([FakeGateway("gw-1", 100, start=now)], settings, clock=clock)
    async with fleet:
        await fleet.wait_online()
        fleet.inject("gw-1", LuminaireFault.LAMP_FAILURE, Address(3))

Connections. ``gateways_per_connection=1`` (the default) gives every gateway its
own client, with the gateway's Last Will (``offline``, retained) registered at
connect: that is what a real gateway does, and the only way to test the Last Will.
A larger value multiplexes that many gateways over one client (the 1,000-gateway
benchmark: 1,000 gateways over 10 connections). A connection has only one Last
Will, so a multiplexed connection has none, and availability is published
explicitly per gateway.

Per gateway, following the contract: subscribe to its ``cmd`` topic; apply each
command through the model and publish the ack; publish ``state`` once on connect,
then every ``interval_s`` (clock seconds; a multiplexed connection spreads its
gateways evenly over the interval) and shortly after each command; publish ``events``
when the flags differ from the ones last published (checked at once after
:meth:`FakeMqttFleet.inject`/``clear`` and at every state tick); publish
``online`` (retained) on connect.

Gateway faults (:class:`GatewayFault`):

* ``offline``: silent (no acks, no state, no events) but still connected and
  ``online``: found only by ack timeouts and stale state.
* ``disconnect``: dedicated connection: the socket is shut without an MQTT
  DISCONNECT, so the broker publishes the Last Will; reconnects when cleared.
  Multiplexed: publishes ``offline`` for that gateway and goes silent; ``online``
  again when cleared.
* ``mains_loss``: reported in the state (``mains_present`` false, supply-fault
  flags, 0 W, 0 V) like any other value of the model.

The state after a command is not part of the ack: as on a real gateway, the ack goes at
once and the state follows when the fleet has had no command for ``STATE_QUIET_S`` (at
most ``STATE_DELAY_MAX_S`` later), once per gateway however many commands it took in
between. One process stands in for many gateways that would work in parallel; building
and encoding 100 luminaires' state between two acks would make every later ack wait
for it, and the fake, not the controller, would set the pace of a fan-out.

A command that does not decode is counted (``stats.malformed``), logged, and
refused with an error ack if its ``id`` could be read. The fake gateways connect
with a clean session: commands sent while they were away are stale, and the
controller re-sends the desired state anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Final, Self

import aiomqtt

from controller.core.clock import Clock, SystemClock
from controller.core.errors import ProtocolViolation
from controller.core.values import Address, DeviceFlag
from fake_luminaires.model import FakeGateway, GatewayFault, LuminaireFault
from protocols.mqtt_client import MqttConnection, build_client
from protocols.mqtt_codec import (
    Ack,
    Availability,
    FlagChange,
    command_id_of,
    decode_command,
    encode_ack,
    encode_availability,
    encode_events,
    encode_state,
)
from protocols.mqtt_topics import QOS, TopicKind, Topics

__all__ = ["FakeMqttFleet", "FleetStats"]

log = logging.getLogger(__name__)

GOODBYE_TIMEOUT_S: Final = 2.0
STATE_QUIET_S: Final = 0.05
"""Real seconds without a command (fleet-wide) before the states owed after commands go."""
STATE_DELAY_MAX_S: Final = 5.0
"""Real seconds a state owed after a command waits at most, even under a stream of commands
(a burst of 1,000 commands takes the one process a few seconds to work through; states sent
meanwhile would slow the acks of the rest, which real gateways working in parallel would not)."""


@dataclass(slots=True)
class FleetStats:
    """Counters over the whole fleet since it was created."""

    commands: int = 0
    """Commands decoded and applied (acked)."""
    malformed: int = 0
    """Command payloads that did not decode."""
    ignored: int = 0
    """Commands received while the gateway was silent (offline/disconnect)."""
    states: int = 0
    events: int = 0
    connects: int = 0


class _Served:
    """One model and what the front last told the broker about it."""

    def __init__(self, model: FakeGateway) -> None:
        self.model = model
        self.announced: Availability | None = None
        self.published_flags: dict[Address, frozenset[DeviceFlag]] = {}


class _Connection:
    """One MQTT client serving one or more gateways."""

    def __init__(self, fleet: FakeMqttFleet, name: str, served: list[_Served]) -> None:
        self.fleet = fleet
        self.name = name
        self.served = {s.model.gateway_id: s for s in served}
        self.dedicated = len(served) == 1
        self.changes: asyncio.Queue[str] = asyncio.Queue()
        self.commanded: dict[str, None] = {}
        """Gateways that owe a state after a command (ordered, each once)."""
        self.commanded_event = asyncio.Event()
        self.connected = asyncio.Event()
        self.client: aiomqtt.Client | None = None

    # -- the session loop ----------------------------------------------------------

    async def run(self) -> None:
        fleet = self.fleet
        while True:
            await self._wait_while_disconnected()
            will = None
            if self.dedicated:
                (gateway_id,) = self.served
                will = aiomqtt.Will(
                    fleet.topics.topic(gateway_id, TopicKind.AVAILABILITY),
                    encode_availability(Availability.OFFLINE),
                    qos=QOS,
                    retain=True,
                )
            client = build_client(
                fleet.settings,
                client_id=f"{fleet.client_id_prefix}-{self.name}",
                persistent=False,
                will=will,
            )
            try:
                async with client:
                    await client.subscribe(
                        [(fleet.topics.topic(gw, TopicKind.CMD), QOS) for gw in self.served]
                    )
                    for served in self.served.values():
                        served.announced = None  # the broker may have lost or changed it
                    self.client = client
                    fleet.stats.connects += 1
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(
                            self._receive(client), name=f"fake-mqtt[{self.name}]-receive"
                        )
                        tg.create_task(self._report(client), name=f"fake-mqtt[{self.name}]-report")
                        tg.create_task(
                            self._report_commanded(client),
                            name=f"fake-mqtt[{self.name}]-after-command",
                        )
            except* aiomqtt.MqttError as group:
                log.info("fake MQTT connection %s ended: %s", self.name, group.exceptions[0])
            finally:
                self.client = None
                self.connected.clear()
            await asyncio.sleep(fleet.reconnect_s)

    async def _wait_while_disconnected(self) -> None:
        """A dedicated connection stays down while its gateway has the DISCONNECT fault."""
        if not self.dedicated:
            return
        (served,) = self.served.values()
        while GatewayFault.DISCONNECT in served.model.faults:
            # Woken by fleet.clear(); the timeout also catches a fault cleared on the model.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.fleet.real_s(self.fleet.interval_s)):
                    await self.changes.get()

    # -- commands ------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        fleet = self.fleet
        async for message in client.messages:
            parsed = fleet.topics.parse(message.topic.value)
            if parsed is None or parsed[1] is not TopicKind.CMD or parsed[0] not in self.served:
                continue
            served = self.served[parsed[0]]
            payload = message.payload if isinstance(message.payload, bytes) else b""
            await self._command(client, served, payload)

    async def _command(self, client: aiomqtt.Client, served: _Served, payload: bytes) -> None:
        fleet = self.fleet
        model = served.model
        if not model.answering:
            fleet.stats.ignored += 1
            return
        now = fleet.clock.now()
        ack_topic = fleet.topics.topic(model.gateway_id, TopicKind.ACK)
        try:
            command = decode_command(payload)
        except ProtocolViolation as exc:
            fleet.stats.malformed += 1
            log.warning("fake gateway %s: malformed command: %s", model.gateway_id, exc)
            command_id = command_id_of(payload)
            if command_id is not None:
                ack = Ack(command_id=command_id, at=now, error=str(exc))
                await client.publish(ack_topic, encode_ack(ack), qos=QOS)
            return
        rejected = model.command(command.levels, now, command.fade_s)
        accepted = frozenset(command.levels) - rejected.keys()
        ack = Ack(command.command_id, now, accepted=accepted, rejected=rejected)
        fleet.stats.commands += 1
        fleet.last_command_at = asyncio.get_running_loop().time()
        await client.publish(ack_topic, encode_ack(ack), qos=QOS)
        if fleet.report_on_command:
            self.commanded[model.gateway_id] = None
            self.commanded_event.set()

    # -- reporting -----------------------------------------------------------------

    async def _report(self, client: aiomqtt.Client) -> None:
        """State of each gateway in turn, spread over the interval; flag changes at once."""
        fleet = self.fleet
        for served in self.served.values():
            await self._refresh(client, served)
        self.connected.set()
        loop = asyncio.get_running_loop()
        turns = itertools.cycle(list(self.served.values()))
        step_s = fleet.real_s(fleet.interval_s) / len(self.served)
        deadline = loop.time() + step_s
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    gateway_id = await self.changes.get()
            except TimeoutError:
                deadline = max(deadline + step_s, loop.time())
                await self._refresh(client, next(turns))
            else:  # a fault injected or cleared: report it now, state first
                await self._refresh(client, self.served[gateway_id])

    async def _report_commanded(self, client: aiomqtt.Client) -> None:
        """The state owed after commands, once the fleet's command burst is over."""
        fleet = self.fleet
        loop = asyncio.get_running_loop()
        while True:
            await self.commanded_event.wait()
            first = loop.time()
            while True:
                now = loop.time()
                quiet_until = fleet.last_command_at + STATE_QUIET_S
                if now >= quiet_until or now >= first + STATE_DELAY_MAX_S:
                    break
                await asyncio.sleep(min(quiet_until, first + STATE_DELAY_MAX_S) - now)
            self.commanded_event.clear()
            owed, self.commanded = list(self.commanded), {}
            for gateway_id in owed:
                served = self.served[gateway_id]
                if served.model.answering and served.announced is Availability.ONLINE:
                    await self._publish_state(client, served)

    async def _refresh(self, client: aiomqtt.Client, served: _Served) -> None:
        """Availability as the faults say, then (if answering) state and any flag changes."""
        fleet = self.fleet
        model = served.model
        availability_topic = fleet.topics.topic(model.gateway_id, TopicKind.AVAILABILITY)
        if GatewayFault.DISCONNECT in model.faults:
            if self.dedicated:
                self._drop_connection(client)
            elif served.announced is not Availability.OFFLINE:
                offline = encode_availability(Availability.OFFLINE)
                await client.publish(availability_topic, offline, qos=QOS, retain=True)
                served.announced = Availability.OFFLINE
            return
        if served.announced is not Availability.ONLINE:
            online = encode_availability(Availability.ONLINE)
            await client.publish(availability_topic, online, qos=QOS, retain=True)
            served.announced = Availability.ONLINE
        if model.answering:
            await self._publish_state(client, served)

    async def _publish_state(self, client: aiomqtt.Client, served: _Served) -> None:
        fleet = self.fleet
        snapshot = served.model.snapshot(fleet.clock.now())
        topic = fleet.topics.topic(served.model.gateway_id, TopicKind.STATE)
        await client.publish(topic, encode_state(snapshot), qos=QOS)
        fleet.stats.states += 1
        flags = {address: reading.flags for address, reading in snapshot.luminaires.items()}
        await self._publish_events(client, served, flags, snapshot.at)

    async def _publish_events(
        self,
        client: aiomqtt.Client,
        served: _Served,
        flags: dict[Address, frozenset[DeviceFlag]],
        now: datetime,
    ) -> None:
        """Publish the flags that differ from the ones last published (all, the first time)."""
        fleet = self.fleet
        changes: list[FlagChange] = []
        for address, current in sorted(flags.items()):
            before = served.published_flags.get(address, frozenset())
            changes.extend(FlagChange(address, f, True, now) for f in sorted(current - before))
            changes.extend(FlagChange(address, f, False, now) for f in sorted(before - current))
        if not changes:
            return
        topic = fleet.topics.topic(served.model.gateway_id, TopicKind.EVENTS)
        await client.publish(topic, encode_events(changes), qos=QOS)
        served.published_flags = dict(flags)
        fleet.stats.events += 1

    def _drop_connection(self, client: aiomqtt.Client) -> None:
        """Die without an MQTT DISCONNECT, so the broker publishes the Last Will."""
        sock = client._client.socket()
        if isinstance(sock, socket.socket):
            log.info("fake gateway %s: dropping its connection", self.name)
            with contextlib.suppress(OSError):  # already closed: the same outcome
                sock.shutdown(socket.SHUT_RDWR)

    async def goodbye(self) -> None:
        """On a clean stop, say ``offline`` for every gateway still announced online."""
        client = self.client
        if client is None:
            return
        offline = encode_availability(Availability.OFFLINE)
        with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
            async with asyncio.timeout(GOODBYE_TIMEOUT_S):
                for gateway_id, served in self.served.items():
                    if served.announced is Availability.ONLINE:
                        topic = self.fleet.topics.topic(gateway_id, TopicKind.AVAILABILITY)
                        await client.publish(topic, offline, qos=QOS, retain=True)
                        served.announced = Availability.OFFLINE


class FakeMqttFleet:
    """Fake gateways on an MQTT broker; an async context manager owning their tasks.

    ``interval_s`` is in clock seconds (an accelerated clock publishes faster in
    real time). ``client_id_prefix`` must differ between fleets on one broker.
    """

    def __init__(
        self,
        gateways: Iterable[FakeGateway],
        settings: MqttConnection,
        *,
        clock: Clock | None = None,
        interval_s: float = 10.0,
        gateways_per_connection: int = 1,
        client_id_prefix: str | None = None,
        report_on_command: bool = True,
        reconnect_s: float = 0.2,
    ) -> None:
        models = list(gateways)
        if not models:
            raise ValueError("a fleet needs at least one gateway")
        if interval_s <= 0 or gateways_per_connection < 1 or reconnect_s <= 0:
            raise ValueError("interval_s, gateways_per_connection and reconnect_s must be positive")
        ids = [m.gateway_id for m in models]
        if len(set(ids)) != len(ids):
            raise ValueError("gateway ids must be unique")
        self.settings = settings
        self.topics = Topics(settings.prefix)
        self.clock: Clock = clock or SystemClock()
        self.interval_s = interval_s
        self.report_on_command = report_on_command
        self.reconnect_s = reconnect_s
        self.client_id_prefix = client_id_prefix or f"fake-{settings.prefix}"
        self.stats = FleetStats()
        self.last_command_at = 0.0
        """Event-loop time of the latest command any gateway of this fleet took."""
        self._served = {m.gateway_id: _Served(m) for m in models}
        served = list(self._served.values())
        self._connections: list[_Connection] = []
        for i in range(0, len(served), gateways_per_connection):
            chunk = served[i : i + gateways_per_connection]
            name = (
                chunk[0].model.gateway_id
                if len(chunk) == 1
                else f"conn{i // gateways_per_connection}"
            )
            self._connections.append(_Connection(self, name, chunk))
        self._by_gateway = {gw: c for c in self._connections for gw in c.served}
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def real_s(self, clock_s: float) -> float:
        return clock_s / self.clock.speed

    @property
    def connections(self) -> int:
        return len(self._connections)

    def model(self, gateway_id: str) -> FakeGateway:
        return self._served[gateway_id].model

    async def __aenter__(self) -> Self:
        if self._tg is not None:
            raise RuntimeError("FakeMqttFleet is not reentrant")
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._tasks = [
            self._tg.create_task(conn.run(), name=f"fake-mqtt[{conn.name}]-session")
            for conn in self._connections
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        if exc_type is None:
            for conn in self._connections:
                await conn.goodbye()
        for task in self._tasks:
            task.cancel()
        try:
            await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            self._tasks = []

    async def wait_online(self, timeout_s: float = 10.0) -> None:
        """Wait until every connection is up and has announced and reported its gateways."""
        async with asyncio.timeout(timeout_s):
            for conn in self._connections:
                await conn.connected.wait()

    def inject(
        self,
        gateway_id: str,
        fault: LuminaireFault | GatewayFault,
        address: Address | None = None,
    ) -> None:
        """Start a fault on the model and publish what it changes at once."""
        self._served[gateway_id].model.inject(fault, address)
        self._by_gateway[gateway_id].changes.put_nowait(gateway_id)

    def clear(
        self,
        gateway_id: str,
        fault: LuminaireFault | GatewayFault,
        address: Address | None = None,
    ) -> None:
        """End a fault on the model and publish what it changes at once."""
        self._served[gateway_id].model.clear(fault, address)
        self._by_gateway[gateway_id].changes.put_nowait(gateway_id)
