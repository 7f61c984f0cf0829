"""MQTT driver: one shared connection (:class:`MqttLink`) for every MQTT gateway.

The contract is in ``docs/protocol/mqtt.md``; payloads are encoded and decoded by the
pure :mod:`protocols.mqtt_codec`. This module is the thin async shell that composes the
sans-IO parts: :class:`~protocols.mqtt_acks.AckMatcher` (which ack answers which
command, late acks included) and :class:`~protocols.mqtt_state_cache.StateCache` (latest
state and availability per gateway), over the client of :mod:`protocols.mqtt_client`::

    async with MqttLink(settings.mqtt, clock=clock) as link:
        gw = link.gateway("gw-001")               # a controller.core.ports.Gateway
        result = await gw.apply({Address(0): Level(70)}, source=Source.PROGRAM)
        reading = await gw.read()                 # latest reported state
        async for event in link.events():         # flag changes, availability, connection
            ...

Why one connection: a controller drives thousands of MQTT gateways; one client per
gateway would be thousands of sockets, keepalives and sessions for no gain. The link
subscribes once to ``{prefix}/gw/+/{ack,state,events,availability}`` and routes
every message by the gateway id in its topic.

Connection: a fixed client id and a persistent session (MQTT 5: clean start off and
a session expiry interval; MQTT 3.1.1: clean session off), so QoS 1 messages sent
while the link is away (broker restart, controller restart) are queued by the broker
and delivered on reconnection. The reconnect loop is aiomqtt's documented pattern:
enter the client, subscribe (again, every time), iterate the messages; on
``MqttError`` wait (exponential back-off) and start over.

Tasks (owned by the link's ``TaskGroup``, named ``mqtt-link[{client_id}]-...``):
``connection`` runs the reconnect loop and moves incoming messages into a bounded
queue; ``dispatch`` decodes them and routes them by gateway id. A full queue drops
the message and counts it (``stats.dropped``); a payload that breaks the contract is
counted (``stats.malformed``) and logged with the gateway and topic, and the loop
goes on.

Library exceptions (``aiomqtt.MqttError``) are translated here, once, into
:class:`controller.core.errors.GatewayUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Final, Self, cast

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from controller.core.clock import Clock, SystemClock
from controller.core.errors import GatewayUnavailable, ProtocolViolation
from controller.core.values import Address, CommandResult, CommandSource, GatewayReading, Level
from protocols.mqtt_acks import (
    AckMatcher,
    AckOutcome,
    Answered,
    AnsweredLate,
    Mismatched,
    Refused,
    Unmatched,
)
from protocols.mqtt_client import MqttConnection, build_client, mqtt5_properties
from protocols.mqtt_codec import (
    Availability,
    Command,
    FlagChange,
    decode_ack,
    decode_availability,
    decode_events,
    encode_command,
)
from protocols.mqtt_state_cache import StateCache
from protocols.mqtt_topics import (
    CONTROLLER_SUBSCRIPTIONS,
    QOS,
    TopicKind,
    Topics,
    check_gateway_id,
)

__all__ = [
    "QOS",
    "AvailabilityChanged",
    "ConnectionChanged",
    "FlagChanged",
    "LateAck",
    "LinkEvent",
    "LinkStats",
    "MqttGateway",
    "MqttLink",
]

log = logging.getLogger(__name__)


def _refused(code: object) -> bool:
    """A SUBACK code that refuses the subscription (v5 reason code or v3.1.1 0x80)."""
    if isinstance(code, ReasonCode):
        return bool(code.is_failure)
    return not isinstance(code, int) or code >= 0x80


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class FlagChanged:
    """A luminaire flag raised or cleared, from ``.../events``."""

    gateway_id: str
    change: FlagChange


@dataclass(frozen=True, slots=True)
class AvailabilityChanged:
    """A gateway went online or offline (retained ``.../availability``, or its Last Will).

    ``at`` is when the link learnt it (the payload carries no time).
    """

    gateway_id: str
    online: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    """The link itself connected to (and subscribed on) the broker, or lost it."""

    connected: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class LateAck:
    """A gateway acknowledged a command after ``apply`` had given up waiting for it.

    ``apply`` raised ``GatewayUnavailable`` for it; the gateway applied it anyway, and
    this says what it accepted, so the controller need not send it again.
    """

    gateway_id: str
    command_id: str
    levels: Mapping[Address, Level]
    source: CommandSource
    fade_s: float
    result: CommandResult
    at: datetime


LinkEvent = FlagChanged | AvailabilityChanged | ConnectionChanged | LateAck


@dataclass(slots=True)
class LinkStats:
    """Counters since the link was created (read them; the link writes them)."""

    messages_in: int = 0
    """Messages received on the link's subscriptions."""
    malformed: int = 0
    """Payloads or topics that broke the contract (logged, then ignored)."""
    dropped: int = 0
    """Messages dropped because the incoming queue was full."""
    stray: int = 0
    """Messages on topics outside the contract (ignored)."""
    commands_sent: int = 0
    acks_matched: int = 0
    acks_unmatched: int = 0
    """Acks for no command of ours (or one timed out too long ago)."""
    acks_late: int = 0
    """Acks after the ack timeout, reported as :class:`LateAck` events."""
    timeouts: int = 0
    """Commands not acknowledged within the ack timeout."""
    connects: int = 0
    """Successful connections (the first one included)."""
    reconnects: int = 0
    """Successful connections after the first one."""
    connect_failures: int = 0
    events_dropped: int = 0
    """Events not delivered because nobody consumed ``events()`` fast enough."""


# --------------------------------------------------------------------------- link


@dataclass(frozen=True, slots=True)
class _Incoming:
    topic: str
    payload: bytes


_CLOSED: Final = object()


class _EventStream:
    """``async for`` over the link's event queue; ends when the link closes."""

    def __init__(self, queue: asyncio.Queue[object]) -> None:
        self._queue = queue

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> LinkEvent:
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # later iterators end too
            raise StopAsyncIteration
        return cast(LinkEvent, item)


class MqttLink:
    """One MQTT connection shared by every MQTT gateway; an async context manager.

    ``ack_timeout_s``: real seconds ``apply`` waits for the gateway's ack.
    ``stale_after_s``: clock seconds after which the latest state no longer counts
    (``read`` raises); make it at least three state intervals of the gateways.
    ``session_expiry_s``: how long (MQTT 5) the broker keeps the session, and so
    queues QoS 1 messages, while the link is away.
    ``queue_size``: bound of the incoming queue; ``events_queue_size``: of ``events()``.
    """

    def __init__(
        self,
        settings: MqttConnection,
        *,
        client_id: str | None = None,
        clock: Clock | None = None,
        ack_timeout_s: float = 5.0,
        stale_after_s: float = 120.0,
        session_expiry_s: int = 86_400,
        queue_size: int = 10_000,
        events_queue_size: int = 10_000,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        max_inflight: int = 1000,
    ) -> None:
        if ack_timeout_s <= 0 or stale_after_s <= 0:
            raise ValueError("ack_timeout_s and stale_after_s must be positive")
        if not 0 < reconnect_min_s <= reconnect_max_s:
            raise ValueError("need 0 < reconnect_min_s <= reconnect_max_s")
        self.settings = settings
        self.client_id = client_id or settings.client_id
        self.topics = Topics(settings.prefix)
        self.stats = LinkStats()
        self._clock: Clock = clock or SystemClock()
        self._ack_timeout_s = ack_timeout_s
        self._session_expiry_s = session_expiry_s
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._max_inflight = max_inflight
        self._incoming: asyncio.Queue[_Incoming] = asyncio.Queue(maxsize=queue_size)
        self._events: asyncio.Queue[object] = asyncio.Queue(maxsize=events_queue_size)
        self._acks = AckMatcher()
        self._waiters: dict[str, asyncio.Future[CommandResult]] = {}
        self._states = StateCache(stale_after_s=stale_after_s)
        self._gateways: dict[str, MqttGateway] = {}
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._entered = False
        self._cmd_properties: Properties | None = None
        if settings.protocol == "5":
            # A command nobody picked up within the ack timeout is stale: let the broker drop it.
            self._cmd_properties = mqtt5_properties(PacketTypes.PUBLISH)
            self._cmd_properties.MessageExpiryInterval = max(1, math.ceil(ack_timeout_s))

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("an MqttLink can be entered only once")
        self._entered = True
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        name = f"mqtt-link[{self.client_id}]"
        self._tasks = [
            self._tg.create_task(self._run_connection(), name=f"{name}-connection"),
            self._tg.create_task(self._run_dispatch(), name=f"{name}-dispatch"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        for task in self._tasks:
            task.cancel()
        try:
            await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            self._tasks = []
            self._fail_pending("link closed")
            self._close_events()

    @property
    def connected(self) -> bool:
        """Connected to the broker and subscribed."""
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        """Wait until connected and subscribed; ``GatewayUnavailable`` after ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError as exc:
            raise GatewayUnavailable(
                f"MQTT broker {self.settings.host}:{self.settings.port} not reached "
                f"within {timeout_s:g} s"
            ) from exc

    def gateway(self, gateway_id: str) -> MqttGateway:
        """The :class:`controller.core.ports.Gateway` for ``gateway_id`` on this link."""
        gw = self._gateways.get(gateway_id)
        if gw is None:
            gw = self._gateways[gateway_id] = MqttGateway(self, check_gateway_id(gateway_id))
        return gw

    def events(self) -> AsyncIterator[LinkEvent]:
        """Flag changes, availability changes and connection changes, in arrival order.

        One consumer (the controller). The iteration ends when the link closes. If
        nobody consumes, the bounded queue fills and further events are dropped
        (``stats.events_dropped``); state and ``read`` are not affected.
        """
        return _EventStream(self._events)

    def availability(self, gateway_id: str) -> bool | None:
        """What the gateway last said about itself: True online, False offline, None unknown."""
        return self._states.online(gateway_id)

    # -- the connection --------------------------------------------------------------

    async def _run_connection(self) -> None:
        backoff = self._reconnect_min_s
        outage_logged = False
        address = f"{self.settings.host}:{self.settings.port}"
        while True:
            client = build_client(
                self.settings,
                client_id=self.client_id,
                persistent=True,
                session_expiry_s=self._session_expiry_s,
                timeout_s=10.0,
                max_inflight=self._max_inflight,
            )
            try:
                async with client:
                    await self._subscribe(client)
                    self._on_connected(client)
                    backoff = self._reconnect_min_s
                    if outage_logged:
                        log.info("MQTT link %s: reconnected to %s", self.client_id, address)
                        outage_logged = False
                    async for message in client.messages:
                        self._enqueue(message)
            except aiomqtt.MqttError as exc:
                if self._client is None:
                    self.stats.connect_failures += 1
                if not outage_logged:
                    what = "lost the connection to" if self._client else "cannot connect to"
                    log.warning("MQTT link %s: %s %s: %s", self.client_id, what, address, exc)
                    outage_logged = True
            finally:
                if self._client is not None:
                    self._on_disconnected()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._reconnect_max_s)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        topics = [(self.topics.wildcard(kind), QOS) for kind in CONTROLLER_SUBSCRIPTIONS]
        granted = await client.subscribe(topics)
        for (topic, _), code in zip(topics, granted, strict=False):
            if _refused(code):
                raise aiomqtt.MqttError(f"subscription to {topic} refused: {code}")

    def _on_connected(self, client: aiomqtt.Client) -> None:
        self._client = client
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        self._connected.set()
        self._emit(ConnectionChanged(connected=True, at=self._clock.now()))

    def _on_disconnected(self) -> None:
        self._client = None
        self._connected.clear()
        self._fail_pending("connection to the broker lost")
        self._emit(ConnectionChanged(connected=False, at=self._clock.now()))

    def _enqueue(self, message: aiomqtt.Message) -> None:
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):  # paho always gives bytes
            payload = b"" if payload is None else str(payload).encode()
        try:
            self._incoming.put_nowait(_Incoming(message.topic.value, bytes(payload)))
        except asyncio.QueueFull:
            self.stats.dropped += 1
            if self.stats.dropped == 1 or self.stats.dropped % 1000 == 0:
                log.warning(
                    "MQTT link %s: incoming queue full (%d), %d message(s) dropped so far",
                    self.client_id,
                    self._incoming.maxsize,
                    self.stats.dropped,
                )

    def _fail_pending(self, why: str) -> None:
        for sent in self._acks.drop_waiting():
            future = self._waiters[sent.command_id]
            if not future.done():
                future.set_exception(GatewayUnavailable(f"MQTT gateway {sent.gateway_id}: {why}"))

    def _close_events(self) -> None:
        while True:
            try:
                self._events.put_nowait(_CLOSED)
                return
            except asyncio.QueueFull:
                self._events.get_nowait()

    def _emit(self, event: LinkEvent) -> None:
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            self.stats.events_dropped += 1
            if self.stats.events_dropped == 1 or self.stats.events_dropped % 1000 == 0:
                log.warning(
                    "MQTT link %s: events queue full, %d event(s) dropped so far",
                    self.client_id,
                    self.stats.events_dropped,
                )

    # -- dispatch ------------------------------------------------------------------

    async def _run_dispatch(self) -> None:
        while True:
            item = await self._incoming.get()
            self._dispatch(item.topic, item.payload)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        self.stats.messages_in += 1
        parsed = self.topics.parse(topic)
        if parsed is None:
            # Not one of our subscriptions: a broker bug (amqtt 0.12 sends every client the
            # retained messages of every subscription at connect), not a gateway's fault.
            self.stats.stray += 1
            log.debug("MQTT link %s: ignored a message on %r", self.client_id, topic)
            return
        gateway_id, kind = parsed
        try:
            if kind is TopicKind.ACK:
                self._on_ack(gateway_id, payload)
            elif kind is TopicKind.STATE:
                at = self._clock.now()
                if self._states.on_state(gateway_id, payload, at):  # back after offline
                    self._emit(AvailabilityChanged(gateway_id, True, at))
            elif kind is TopicKind.EVENTS:
                for change in decode_events(payload):
                    self._emit(FlagChanged(gateway_id, change))
            elif kind is TopicKind.AVAILABILITY:
                availability = decode_availability(payload)
                at = self._clock.now()
                if self._states.on_availability(gateway_id, availability, at):
                    online = availability is Availability.ONLINE
                    self._emit(AvailabilityChanged(gateway_id, online, at))
            else:  # a command on a topic we never subscribe to (cmd): not for us
                raise ProtocolViolation(f"unexpected {kind} message")
        except ProtocolViolation as exc:
            self._malformed(gateway_id, topic, exc)

    def _malformed(self, gateway_id: str, topic: str, exc: ProtocolViolation) -> None:
        self.stats.malformed += 1
        log.warning("MQTT gateway %s: malformed message on %s: %s", gateway_id, topic, exc)

    def _on_ack(self, gateway_id: str, payload: bytes) -> None:
        ack = decode_ack(payload)
        future = self._waiters.get(ack.command_id)
        if future is not None and future.done():
            # Settled already (its timer fired, or the connection was lost) and its caller
            # has not resumed yet: the caller's outcome stands.
            outcome: AckOutcome = Unmatched(ack.command_id)
        else:
            outcome = self._acks.on_ack(gateway_id, ack)
        match outcome:
            case Unmatched():
                self.stats.acks_unmatched += 1
                log.info(
                    "MQTT gateway %s: ack for command %s that is not pending (late?)",
                    gateway_id,
                    ack.command_id,
                )
            case AnsweredLate(sent=sent, result=result):
                self.stats.acks_late += 1
                command = sent.command
                self._emit(
                    LateAck(
                        gateway_id, command.command_id, command.levels, command.source,
                        command.fade_s, result, self._clock.now(),
                    )
                )  # fmt: skip
            case Answered(result=result):
                self.stats.acks_matched += 1
                self._waiters[ack.command_id].set_result(result)
            case Refused(error=refusal):
                self.stats.acks_matched += 1
                self._waiters[ack.command_id].set_exception(refusal)
            case Mismatched(error=violation):
                self._waiters[ack.command_id].set_exception(violation)
                raise violation

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = QOS,
        retain: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        """Publish an application message (e.g. an alert) on this link's connection.

        Raises :class:`GatewayUnavailable` when not connected or the broker does not
        take it within ``timeout_s`` (the caller keeps it and retries).
        """
        client = self._client
        if client is None or not self.connected:
            raise GatewayUnavailable(
                f"MQTT broker {self.settings.host}:{self.settings.port} not connected"
            )
        try:
            async with asyncio.timeout(timeout_s):
                await client.publish(topic, payload, qos=qos, retain=retain, timeout=math.inf)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise GatewayUnavailable(f"publishing to {topic} failed: {exc}") from exc

    # -- what MqttGateway calls ----------------------------------------------------

    async def _apply(
        self,
        gateway_id: str,
        levels: Mapping[Address, Level],
        source: CommandSource,
        fade_s: float,
    ) -> CommandResult:
        command_id = uuid.uuid4().hex
        if not levels:
            return CommandResult(command_id=command_id, accepted=frozenset())
        command = Command(
            command_id, CommandSource(source), fade_s, dict(levels), self._clock.now()
        )
        payload = encode_command(command)  # ValueError for a level outside 0..100: a bug
        client = self._client
        if client is None:
            raise GatewayUnavailable(
                f"MQTT gateway {gateway_id}: not connected to the broker "
                f"{self.settings.host}:{self.settings.port}"
            )
        if self._states.online(gateway_id) is False:
            raise GatewayUnavailable(f"MQTT gateway {gateway_id}: reports itself offline")
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._acks.expect(gateway_id, command)
        self._waiters[command_id] = future
        try:
            async with asyncio.timeout(self._ack_timeout_s):
                try:
                    await client.publish(
                        self.topics.topic(gateway_id, TopicKind.CMD),
                        payload,
                        qos=QOS,
                        properties=self._cmd_properties,
                        timeout=math.inf,
                    )
                except aiomqtt.MqttError as exc:
                    raise GatewayUnavailable(
                        f"MQTT gateway {gateway_id}: command {command_id} not sent: {exc}"
                    ) from exc
                self.stats.commands_sent += 1
                return await future
        except TimeoutError as exc:
            if future.done() and not future.cancelled():
                # The ack came in time; only the event loop was too busy to resume us before
                # the timer fired. Its answer stands (a refusal raises as it would have).
                return future.result()
            self.stats.timeouts += 1
            self._acks.timed_out(command_id)  # its ack may still come: LateAck
            raise GatewayUnavailable(
                f"MQTT gateway {gateway_id}: command {command_id} not acknowledged "
                f"within {self._ack_timeout_s:g} s"
            ) from exc
        finally:
            self._acks.forget(command_id)
            del self._waiters[command_id]
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a failure after a timeout is not "lost"

    def _read(self, gateway_id: str) -> GatewayReading:
        try:
            self._states.decode_latest(gateway_id)
        except ProtocolViolation as exc:  # the last good state stands
            self._malformed(gateway_id, self.topics.topic(gateway_id, TopicKind.STATE), exc)
        return self._states.read(gateway_id, self._clock.now())


class MqttGateway:
    """One gateway behind an :class:`MqttLink`; implements ``controller.core.ports.Gateway``.

    Get it from ``link.gateway(gateway_id)``. Entering it (``async with``) does
    nothing: the link owns the connection. Valid only while the link is open.
    """

    def __init__(self, link: MqttLink, gateway_id: str) -> None:
        self._link = link
        self.gateway_id = gateway_id

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @property
    def online(self) -> bool | None:
        """The gateway's own availability (retained/Last Will); None before it said anything."""
        return self._link.availability(self.gateway_id)

    async def apply(
        self,
        levels: Mapping[Address, Level],
        *,
        source: CommandSource = CommandSource.PROGRAM,
        fade_s: float = 0.0,
    ) -> CommandResult:
        """Publish one command (QoS 1) and wait for the gateway's ack.

        Raises ``GatewayUnavailable`` at once if the link is not connected or the
        gateway says it is offline, and after the ack timeout if no ack came; a
        ``GatewayUnavailable`` does not prove the command was not applied (the
        next state tells). ``CommandRejected`` if the gateway refused the whole
        command; ``ProtocolViolation`` if its ack does not match the command.
        """
        return await self._link._apply(self.gateway_id, levels, source, fade_s)

    async def read(self) -> GatewayReading:
        """The latest state the gateway reported (no request is sent).

        ``GatewayUnavailable`` if it never reported, says it is offline, or its latest
        state is older than the link's ``stale_after_s``.
        """
        return self._link._read(self.gateway_id)

    def __repr__(self) -> str:
        return f"MqttGateway({self.gateway_id!r})"
