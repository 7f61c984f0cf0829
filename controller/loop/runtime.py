"""The running controller: a small supervisor over the parts that do the work.

Parts (every task named and owned by the supervisor's TaskGroup):

- :class:`controller.loop.reloader.Reloader` (``reloader``): inventory, schedule and override
  changes, coalesced, and the cluster's NOTIFY; hands each new book to the supervisor, which
  connects new gateways, closes removed ones and reconnects changed ones;
- :class:`controller.loop.planner.Planner` (``scheduler``): APScheduler 3.11 wakes every loop
  at each program step and override boundary, re-plans daily and after a clock jump;
- :class:`controller.loop.gateway_loop.GatewayLoop` (``gateway[<name>]``): one loop per
  gateway this instance drives, through the :class:`controller.loop.drivers.Driver` of its
  protocol (``mqtt-link``: the one shared MQTT connection and its events);
- :class:`controller.loop.housekeeping.Housekeeping`: the leader's nightly DELETEs and rollup;
- ``telemetry``: the writer of :class:`controller.loop.telemetry.TelemetrySink`;
- ``cluster``: the leases (:mod:`controller.loop.cluster`), when clustered.

The supervisor owns the read model the API reads in-process (``luminaire_state``,
``all_states``, ``gateways``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from controller.alerts.dispatcher import AlertDispatcher
from controller.alerts.monitor import FaultMonitor
from controller.config.settings import Settings
from controller.core.clock import Clock
from controller.core.errors import ConfigError
from controller.core.values import DeviceFlag, Level, ProtocolKind, Reading
from controller.faults.tracker import Transition, TransitionKind
from controller.loop.cluster import Cluster
from controller.loop.drivers import Driver, ModbusDriver, MqttDriver
from controller.loop.gateway_loop import GatewayLoop, GatewayState, Intake, LoopMetrics
from controller.loop.housekeeping import Housekeeping
from controller.loop.metrics import Histogram
from controller.loop.planner import Planner
from controller.loop.reconcile import Target
from controller.loop.reloader import Reloader, settle_heap
from controller.loop.targets import GatewayInfo, LuminaireInfo, TargetBook, by_gateway
from controller.loop.telemetry import TelemetrySink
from controller.store.db import Database

if TYPE_CHECKING:
    from protocols.mqtt import MqttLink

__all__ = ["Controller", "GatewayState", "LuminaireState", "settle_heap"]


@dataclass(frozen=True, slots=True)
class LuminaireState:
    """The three values of one luminaire (target, commanded, actual), for the API."""

    luminaire_id: int
    target: Target | None
    commanded: Level | None
    commanded_at: datetime | None
    actual: Level | None
    reading: Reading | None
    online: bool
    gateway_online: bool | None
    rejected: str | None


def connection_of(info: GatewayInfo, count: int) -> tuple[object, ...]:
    """What a running driver was opened with: a change means closing and opening again."""
    if info.protocol == ProtocolKind.MQTT:
        return (info.protocol, info.mqtt_id)
    return (info.protocol, info.host, info.port, info.unit_ids, count)


@dataclass(slots=True)
class _Running:
    loop: GatewayLoop
    task: asyncio.Task[None]
    connection: tuple[object, ...]
    mqtt_id: str | None
    """As opened (the state's info may already name another)."""


class Controller:
    """Owns the parts; ``run()`` until cancelled. The API reads its state in-process."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Clock,
        *,
        drivers: Mapping[ProtocolKind, Driver] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.sink = TelemetrySink(
            db,
            site=settings.site.to_site(),
            max_gap_s=settings.energy.coverage_max_gap_s,
            capacity=settings.controller.telemetry_buffer,
            store_raw=settings.controller.store_raw_readings,
        )
        self.gateways: dict[int, GatewayState] = {}
        """The gateways this instance may drive (enabled), by id: the read model."""
        self._mqtt = MqttDriver(settings, clock)
        self._drivers: dict[ProtocolKind, Driver] = {
            ProtocolKind.MODBUS: ModbusDriver(settings, clock),
            ProtocolKind.MQTT: self._mqtt,
            **(drivers or {}),
        }
        self._ready = asyncio.Event()
        self._intake = Intake()
        self._metrics = LoopMetrics()
        self.reloader = Reloader(settings, db, clock, user=self, cluster=settings.cluster.enabled)
        self.planner = Planner(clock, settings.site.tz, loops=self, daily=self._daily)
        self.housekeeping = Housekeeping(settings, db, clock)
        self.mqtt_link: MqttLink | None = None
        outbox_filled = asyncio.Event()  # alerts queued: the dispatcher delivers them
        self.monitor = FaultMonitor.from_settings(settings, db, stored=outbox_filled)
        self.dispatcher = AlertDispatcher(
            settings, db, leadership=self, publisher=lambda: self.mqtt_link, wake=outbox_filled
        )
        self.cluster: Cluster | None = None
        self._roster_changed = asyncio.Event()
        """Set when the gateways to drive may have changed (reload, cluster round)."""
        self._running: dict[int, _Running] = {}
        self._by_mqtt_id: dict[str, GatewayLoop] = {}
        """The running loops of MQTT gateways, by the id in their topics (for link events)."""

    # -- public ------------------------------------------------------------------------

    @property
    def book(self) -> TargetBook | None:
        """The current target book (None before the first load)."""
        return self.reloader.book

    @property
    def command_latency(self) -> Histogram:
        return self._metrics.command_latency

    @property
    def cycle_duration(self) -> Histogram:
        return self._metrics.cycle_duration

    @property
    def scheduled_wakeups(self) -> int:
        return self.planner.scheduled_wakeups

    @property
    def clock_jumps(self) -> int:
        return self.planner.clock_jumps

    @property
    def leader(self) -> bool:
        """Whether this instance runs housekeeping and alert delivery (always, alone)."""
        return self.cluster is None or self.cluster.leader

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def request_reload(self, *, overrides_only: bool = False) -> None:
        """Ask for a reload soon (coalesced); safe to call from any request handler.

        ``overrides_only``: only overrides changed, so only they are read again. In a
        cluster every other instance is told too (PostgreSQL NOTIFY).
        """
        self.reloader.request(overrides_only=overrides_only)

    async def reload(self) -> None:
        """Re-read schedules, overrides and inventory, re-plan, and reconcile now."""
        await self.reloader.reload()

    async def reload_overrides(self) -> None:
        """Re-read only the overrides (the inventory and schedules stay), re-plan, reconcile."""
        await self.reloader.reload_overrides()

    def fault_acted_on(self, transition: Transition) -> None:
        """A fault was acknowledged or resolved by hand: tell the tracker, deliver alerts."""
        if transition.kind is TransitionKind.RESOLVED:
            self.monitor.tracker.resolve_by_hand(
                transition.subject, transition.fault_type, transition.at, transition.actor or ""
            )
        elif transition.kind is TransitionKind.ACKNOWLEDGED:
            self.monitor.tracker.acknowledge(
                transition.subject, transition.fault_type, transition.at, transition.actor or ""
            )
        self.dispatcher.poke()

    def wake_all(self, *, resend: bool = False) -> None:
        """Make every gateway loop reconcile now (``resend``: send every target again)."""
        for state in self.gateways.values():
            if resend:
                state.last_refresh = None
            state.wake.set()

    def luminaire_state(self, luminaire_id: int) -> LuminaireState | None:
        book = self.book
        if book is None:
            return None
        info = book.luminaires.get(luminaire_id)
        if info is None:
            return None
        gw = self.gateways.get(info.gateway_id)
        tracked = gw.tracked.get(info.address) if gw else None
        reading = gw.readings.get(info.address) if gw else None
        answering = reading is not None and DeviceFlag.NOT_ANSWERING not in reading.flags
        return LuminaireState(
            luminaire_id=luminaire_id,
            target=gw.targets.get(info.address) if gw else None,
            commanded=tracked.acked if tracked else None,
            commanded_at=tracked.acked_at if tracked else None,
            actual=tracked.actual if tracked else None,
            reading=reading,
            online=bool(gw and gw.online and answering),
            gateway_online=gw.online if gw else None,
            rejected=tracked.rejected if tracked else None,
        )

    def all_states(self) -> list[tuple[LuminaireInfo, LuminaireState]]:
        book = self.book
        if book is None:
            return []
        out = []
        for lid, info in book.luminaires.items():
            state = self.luminaire_state(lid)
            if state is not None:
                out.append((info, state))
        return out

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        """Run every part until cancelled; unwinds in a fixed order."""
        if self.settings.cluster.enabled and self.db.is_sqlite:
            raise ConfigError("cluster.enabled needs PostgreSQL (database.url)")
        await self.reload()
        await self.monitor.restore()
        if self.settings.cluster.enabled:
            self.cluster = Cluster(
                self.db,
                self.settings.cluster,
                on_release=self._stop_gateways,
                changed=self._roster_changed,
            )
            self.cluster.set_gateways(self.gateways)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.sink.run(), name="telemetry")
            tg.create_task(self.planner.run(), name="scheduler")
            tg.create_task(self.reloader.run(), name="reloader")
            tg.create_task(self.monitor.run_writer(lambda: self.book), name="fault-writer")
            tg.create_task(self.dispatcher.run(), name="alert-dispatcher")
            if self.cluster is not None:
                tg.create_task(self.cluster.run(), name="cluster")
            tg.create_task(self._supervise(), name="gateways")
            self._ready.set()

    def book_loaded(self, book: TargetBook, *, inventory: bool) -> None:
        """A new book (:class:`controller.loop.reloader.BookUser`): re-plan, follow the
        inventory, reconcile now."""
        self.planner.plan(book)
        if inventory:
            self._follow_inventory(book)
        self.wake_all()

    def _follow_inventory(self, book: TargetBook) -> None:
        """Make ``gateways`` the book's enabled gateways; the supervisor acts on the change."""
        per_gateway = by_gateway(book.luminaires)
        enabled = {g.id: g for g in book.gateways.values() if g.enabled}
        for gid in self.gateways.keys() - enabled.keys():
            del self.gateways[gid]  # removed or disabled: its loop is stopped
        for gid, info in enabled.items():
            addresses = per_gateway.get(gid, {})
            state = self.gateways.get(gid)
            if state is None:
                self.gateways[gid] = GatewayState(info=info, addresses=addresses)
            else:  # a changed connection is reopened by the supervisor
                state.info, state.addresses = info, addresses
        if self.cluster is not None:
            self.cluster.set_gateways(self.gateways)
        self._roster_changed.set()

    def _wanted_gateways(self) -> set[int]:
        if self.cluster is None:
            return set(self.gateways)
        return {g for g in self.cluster.owned if g in self.gateways}

    def _needs_link(self) -> bool:
        return (
            self.settings.alerts.mqtt
            or self.settings.ioc.mqtt
            or any(
                s.info.protocol == ProtocolKind.MQTT
                and self._drivers[ProtocolKind.MQTT] is self._mqtt
                for s in self.gateways.values()
            )
        )

    async def _supervise(self) -> None:
        """Keep one loop running for every gateway this instance drives, as it was configured."""
        async with asyncio.TaskGroup() as tg:
            link: asyncio.Task[None] | None = None
            while True:
                self._roster_changed.clear()
                if link is None and self._needs_link():
                    link = tg.create_task(self._run_mqtt(), name="mqtt-link")
                wanted = self._wanted_gateways()
                stale = {
                    gid
                    for gid, running in self._running.items()
                    if gid not in wanted
                    or running.connection != self._connection(self.gateways[gid])
                }
                await self._stop_gateways(stale)
                for gid in self._wanted_gateways() - self._running.keys():  # after the wait
                    self._start(tg, self.gateways[gid])
                await self._roster_changed.wait()

    def _connection(self, state: GatewayState) -> tuple[object, ...]:
        return connection_of(state.info, state.luminaire_count)

    def _start(self, tg: asyncio.TaskGroup, state: GatewayState) -> None:
        state.online = None
        state.last_refresh = None  # a gateway taken over or reconnected gets every target
        loop = GatewayLoop(
            state,
            self._drivers[ProtocolKind(state.info.protocol)],
            clock=self.clock,
            books=self.reloader,
            recorder=self.sink,
            faults=self.monitor,
            intake=self._intake,
            metrics=self._metrics,
            resend_interval_s=self.settings.controller.resend_interval_s,
        )
        task = tg.create_task(loop.run(), name=f"gateway[{state.info.name}]")
        mqtt_id = state.info.mqtt_id if state.info.protocol == ProtocolKind.MQTT else None
        self._running[state.info.id] = _Running(loop, task, self._connection(state), mqtt_id)
        if mqtt_id is not None:
            self._by_mqtt_id[mqtt_id] = loop

    async def _stop_gateways(self, ids: set[int]) -> None:
        """Stop driving ``ids`` (their leases are about to go) and wait until they stopped."""
        stopped = [self._running.pop(g) for g in ids if g in self._running]
        for running in stopped:
            if (
                running.mqtt_id is not None
                and self._by_mqtt_id.get(running.mqtt_id) is running.loop
            ):
                del self._by_mqtt_id[running.mqtt_id]
        tasks = [running.task for running in stopped]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _daily(self) -> None:
        await self.reload()
        if self.leader:
            await self.housekeeping.nightly()

    async def _run_mqtt(self) -> None:
        async with self._mqtt.connected() as link:
            self.mqtt_link = link
            await self._mqtt.follow(link, self._by_mqtt_id)
