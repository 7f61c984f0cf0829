"""How the loop opens and paces the gateways of one protocol: what differs, in one place.

A :class:`Driver` opens a :class:`controller.core.ports.Gateway` for a gateway's inventory
row and says how that protocol is driven (poll interval, back-off, whether a read is local,
whether commands may go while no state is known). The MQTT driver also owns the one shared
link and hands its events (availability, late acks) to the loops. The controller holds one
driver per protocol; tests inject their own (an in-memory gateway, or a real driver against a
fake).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Protocol

from controller.config.settings import Settings
from controller.core.clock import Clock
from controller.core.ports import Gateway
from controller.loop.reconcile import Batch
from controller.loop.targets import GatewayInfo

if TYPE_CHECKING:
    from controller.loop.gateway_loop import GatewayLoop
    from protocols.mqtt import MqttLink


class Driver(Protocol):
    """Opens and paces the gateways of one protocol."""

    @property
    def interval_s(self) -> float:
        """Between two polls of one gateway (simulated seconds)."""
        ...

    @property
    def reconnect_max_s(self) -> float:
        """The longest back-off between two attempts to open a gateway (real seconds)."""
        ...

    @property
    def reads_locally(self) -> bool:
        """``read()`` only decodes what has arrived (no I/O): CPU work, taken in turn."""
        ...

    def may_command_unread(self, info: GatewayInfo) -> bool:
        """After a failed read: whether commands may still go (the ack decides)."""
        ...

    def open(self, info: GatewayInfo, count: int) -> AbstractAsyncContextManager[Gateway]:
        """The gateway ``info``, serving addresses ``0 .. count - 1``, for the block."""
        ...


class ModbusDriver:
    """Modbus TCP: one connection per gateway, polled; an unread gateway takes no command."""

    reads_locally = False

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._settings = settings.modbus
        self._clock = clock

    @property
    def interval_s(self) -> float:
        return self._settings.poll_interval_s

    @property
    def reconnect_max_s(self) -> float:
        return self._settings.reconnect_max_s

    def may_command_unread(self, info: GatewayInfo) -> bool:
        return False

    @asynccontextmanager
    async def open(self, info: GatewayInfo, count: int) -> AsyncIterator[Gateway]:
        from protocols.modbus import ModbusGateway

        assert info.host is not None and info.port is not None
        async with ModbusGateway(
            info.host,
            info.port,
            unit_ids=info.unit_ids,
            luminaire_count=count,
            settings=self._settings,
            clock=self._clock,
            name=info.name,
        ) as gw:
            yield gw


class MqttDriver:
    """MQTT: every gateway on one shared link, which reconnects by itself.

    ``connected()`` opens the link (one owner, the controller's ``mqtt-link`` task);
    ``open`` waits for it. A gateway that has not reported recently but has not said it is
    offline may still take commands. A gateway loop that fails (a protocol violation) tries
    again within one read interval: the Modbus reconnect setting is not MQTT's business.
    """

    reads_locally = True

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self.link: MqttLink | None = None
        self._ready = asyncio.Event()

    @property
    def interval_s(self) -> float:
        return self._settings.controller.mqtt_read_interval_s

    @property
    def reconnect_max_s(self) -> float:
        return self._settings.controller.mqtt_read_interval_s

    def may_command_unread(self, info: GatewayInfo) -> bool:
        link = self.link
        return (
            link is not None
            and info.mqtt_id is not None
            and link.availability(info.mqtt_id) is True
        )

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[MqttLink]:
        """Open the shared link for the block (gateways can be opened meanwhile)."""
        from protocols.mqtt import MqttLink

        settings = self._settings
        link = MqttLink(
            settings.mqtt,
            client_id=f"{settings.mqtt.client_id}-{settings.cluster.instance_id}"
            if settings.cluster.enabled
            else None,
            clock=self._clock,
            ack_timeout_s=settings.controller.mqtt_ack_timeout_s,
            stale_after_s=max(
                settings.controller.mqtt_stale_after_s,
                6 * settings.controller.mqtt_read_interval_s,
            ),
        )
        async with link:
            self.link = link
            self._ready.set()
            try:
                yield link
            finally:
                self._ready.clear()
                self.link = None

    async def follow(self, link: MqttLink, loops: Mapping[str, GatewayLoop]) -> None:
        """Hand the link's events to the running loops (``loops``: by MQTT id), until the
        link closes: a gateway back online catches up at once; a late ack is recorded."""
        from protocols.mqtt import AvailabilityChanged, LateAck

        async for event in link.events():
            if isinstance(event, AvailabilityChanged):
                changed = loops.get(event.gateway_id)
                if changed is not None and event.online:
                    changed.state.wake.set()  # back: catch up at once
            elif isinstance(event, LateAck):
                acked = loops.get(event.gateway_id)
                if acked is not None:
                    # Applied after all: remember it (no re-send), and it answers.
                    batch = Batch(event.source, event.fade_s, event.levels)
                    acked.record_command(batch, event.result, event.at)
                    acked.mark_online(event.at)

    @asynccontextmanager
    async def open(self, info: GatewayInfo, count: int) -> AsyncIterator[Gateway]:
        assert info.mqtt_id is not None
        await self._ready.wait()
        assert self.link is not None
        async with self.link.gateway(info.mqtt_id) as gw:
            yield gw
