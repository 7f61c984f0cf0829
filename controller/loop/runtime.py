"""The running controller: one reconcile loop per gateway, the scheduler, telemetry.

Structure (every task named and owned by the controller's TaskGroup):

- ``telemetry``: the writer of :class:`controller.loop.telemetry.TelemetrySink`;
- ``gateway[<name>]``: one loop per enabled gateway: read, compare, send the
  difference as batched commands, wait for the poll interval or a wake-up;
- ``mqtt-link`` / ``mqtt-events``: the one shared MQTT connection and its events;
- ``scheduler``: APScheduler 3.11 wakes every loop at each program step and
  override boundary, so lights change within a second or two of the instant,
  not at the next poll; it re-plans every day at 00:05 local and at start-up.

A gateway that is down is marked offline (logged once, and once on recovery) and
costs only its own loop; when it returns it gets the current state at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from time import perf_counter
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import delete

from controller.alerts.dispatcher import AlertDispatcher
from controller.alerts.monitor import FaultMonitor
from controller.config.settings import Settings
from controller.core.clock import Clock
from controller.core.errors import ConfigError, GatewayUnavailable, LightingError
from controller.core.ports import Gateway
from controller.core.values import (
    Address,
    CommandResult,
    DeviceFlag,
    GatewayReading,
    Level,
    Protocol,
    Reading,
)
from controller.energy.rollup import close_months
from controller.faults.tracker import Transition, TransitionKind
from controller.loop.cluster import (
    OVERRIDES_ONLY,
    Cluster,
    listen_config_changes,
    notify_config_changed,
)
from controller.loop.metrics import Histogram
from controller.loop.reconcile import (
    Batch,
    Target,
    Tracked,
    plan,
    quiet_until,
    record_readings,
    record_sent,
)
from controller.loop.targets import (
    GatewayInfo,
    LuminaireInfo,
    TargetBook,
    by_gateway,
    load_active_overrides,
    load_target_book,
)
from controller.loop.telemetry import LuminaireRef, StateRecord, TelemetrySink
from controller.store.db import Database
from controller.store.tables import IngestBatch, ReadingRow

if TYPE_CHECKING:
    from protocols.mqtt import MqttLink

log = logging.getLogger(__name__)

GatewayOpener = Callable[[GatewayInfo, int], AbstractAsyncContextManager[Gateway]]
"""Opens a driver for a gateway serving ``n`` luminaire addresses."""

PLAN_HORIZON = timedelta(hours=36)


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a library swallowed.

    Python 3.11's ``asyncio.wait_for`` (used inside pymodbus) can drop a cancellation
    that races with the awaited result; the task then runs on with ``cancelling() > 0``
    and its TaskGroup waits for ever. The loops call this at every turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


MISFIRE_GRACE_S = 120
INGEST_DEFER_S = 10.0
"""Telemetry waits at most this long (real seconds) for a burst of commands to be answered."""
BURST_IN_FLIGHT = 50
"""Commands in flight from which telemetry intake waits: a fan-out, not a few slow or silent
gateways (those must not hold back the telemetry of the others)."""


FREEZE_HEAP_FROM = 20_000
"""Luminaires from which a full reload ends with :func:`settle_heap` (below, it is not worth
the pause of a full collection)."""


def settle_heap() -> None:
    """After a reload: collect the old book's garbage once, then freeze what survives.

    At 100,000 luminaires the book and the loops' memory are a few million objects that
    live until the next reload. Left to the cyclic garbage collector, every full
    collection walks all of them again (a noticeable share of a core at rest, and pauses
    in the middle of a fan-out); frozen, they are skipped. They are still freed by
    reference counting when dropped; cyclic garbage among them waits for this function's
    next call (the next reload), which unfreezes and collects first.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass(slots=True)
class GatewayState:
    """Everything the controller knows about one gateway (owned by its loop)."""

    info: GatewayInfo
    addresses: dict[Address, int]
    tracked: dict[Address, Tracked] = field(default_factory=dict)
    targets: dict[Address, Target] = field(default_factory=dict)
    readings: dict[Address, Reading] = field(default_factory=dict)
    online: bool | None = None
    mains_present: bool | None = None
    last_seen: datetime | None = None
    last_error: str | None = None
    last_refresh: datetime | None = None
    targets_book: TargetBook | None = None
    targets_span: tuple[datetime, datetime] | None = None
    """The book and span ``targets`` were computed in (valid while both hold)."""
    snapshot: GatewayReading | None = None
    """The latest snapshot taken in (an MQTT link returns the same one until a new state)."""
    fresh: bool = True
    """Readings came in since the last diff."""
    quiet: bool = False
    quiet_until: datetime | None = None
    """``quiet``: the last diff was empty, and stays so until ``quiet_until`` (None: for
    good) unless targets, readings or commands change: the idle cycle skips it."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    cycles: int = 0
    commands: int = 0
    last_cycle_s: float = 0.0


@dataclass(frozen=True, slots=True)
class LuminaireState:
    """The three values of one luminaire (DOMAIN.md), for the API."""

    luminaire_id: int
    target: Target | None
    commanded: Level | None
    commanded_at: datetime | None
    actual: Level | None
    reading: Reading | None
    online: bool
    gateway_online: bool | None
    rejected: str | None


class Controller:
    """Owns the loops; ``run()`` until cancelled. The API reads its state in-process."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Clock,
        *,
        openers: Mapping[Protocol, GatewayOpener] | None = None,
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
        self.book: TargetBook | None = None
        self.gateways: dict[int, GatewayState] = {}
        self._openers: dict[Protocol, GatewayOpener] = dict(openers or {})
        self._scheduler: AsyncIOScheduler | None = None
        self._ready = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._ingest = asyncio.Lock()
        """Held while one gateway's readings and faults are taken in (CPU work)."""
        self._in_flight = 0
        """Commands sent and not yet answered (any gateway)."""
        self._no_burst = asyncio.Event()
        """Set while fewer than ``BURST_IN_FLIGHT`` commands are in flight."""
        self._no_burst.set()
        self._reload_wanted = asyncio.Event()
        self._reload_everything = False
        self._notify_wanted = asyncio.Event()
        self._notify_everything = False
        self.mqtt_link: MqttLink | None = None
        outbox_filled = asyncio.Event()  # alerts queued: the dispatcher delivers them
        self.monitor = FaultMonitor.from_settings(settings, db, stored=outbox_filled)
        self.dispatcher = AlertDispatcher(
            settings, db, leadership=self, publisher=lambda: self.mqtt_link, wake=outbox_filled
        )
        self.cluster: Cluster | None = None
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._link_ready = asyncio.Event()
        self.scheduled_wakeups = 0
        self.command_latency = Histogram()
        self.cycle_duration = Histogram()
        self.clock_jumps = 0

    # -- public ------------------------------------------------------------------------

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def request_reload(self, *, overrides_only: bool = False) -> None:
        """Ask for a reload soon (coalesced); safe to call from any request handler.

        ``overrides_only``: only overrides changed, so only they are read again (at
        100,000 luminaires a full reload takes seconds; an override for the whole city
        must not wait for it). In a cluster every other instance is told too
        (PostgreSQL NOTIFY).
        """
        self._changed_locally(overrides_only=overrides_only)
        if self.cluster is not None:
            self._notify_everything |= not overrides_only
            self._notify_wanted.set()

    def _changed_locally(self, *, overrides_only: bool) -> None:
        self._reload_everything |= not overrides_only
        self._reload_wanted.set()

    async def _run_notifier(self) -> None:
        while True:
            await self._notify_wanted.wait()
            self._notify_wanted.clear()
            everything, self._notify_everything = self._notify_everything, False
            try:
                await notify_config_changed(self.db, "" if everything else OVERRIDES_ONLY)
            except Exception as exc:  # the others reload by themselves at the daily plan
                log.warning("cluster: could not notify the other instances: %s", exc)

    async def _run_reloader(self) -> None:
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            everything, self._reload_everything = self._reload_everything, False
            try:
                if everything or self.book is None:
                    await self.reload()
                else:
                    await self.reload_overrides()
            except Exception:  # a failed reload keeps the previous book
                log.exception("reloading the configuration failed; keeping the previous one")

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

    def wake_all(self) -> None:
        """Make every gateway loop reconcile now."""
        for state in self.gateways.values():
            state.wake.set()

    async def reload(self) -> None:
        """Re-read schedules, overrides and inventory, re-plan, and reconcile now."""
        async with self._reload_lock:
            async with self.db.sessions() as session:
                book = await load_target_book(
                    session=session, settings=self.settings, now=self.clock.now()
                )
            self.book = book
            per_gateway = by_gateway(book.luminaires)
            for gw_id, state in self.gateways.items():
                state.addresses = per_gateway.get(gw_id, {})
            self._plan()
            if len(book.luminaires) >= FREEZE_HEAP_FROM:
                settle_heap()
        self.wake_all()

    async def reload_overrides(self) -> None:
        """Re-read only the overrides (the inventory and schedules stay), re-plan, reconcile."""
        async with self._reload_lock:
            assert self.book is not None
            now = self.clock.now()
            async with self.db.sessions() as session:
                active = await load_active_overrides(session=session, now=now)
            self.book = replace(self.book, overrides=active, _span=None)
            self._plan()
        self.wake_all()

    def luminaire_state(self, luminaire_id: int) -> LuminaireState | None:
        if self.book is None:
            return None
        info = self.book.luminaires.get(luminaire_id)
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
        if self.book is None:
            return []
        out = []
        for lid, info in self.book.luminaires.items():
            state = self.luminaire_state(lid)
            if state is not None:
                out.append((info, state))
        return out

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        """Run every loop until cancelled; unwinds in a fixed order."""
        await self.reload()
        assert self.book is not None
        per_gateway = by_gateway(self.book.luminaires)
        for gw in self.book.gateways.values():
            if gw.enabled:
                self.gateways[gw.id] = GatewayState(info=gw, addresses=per_gateway.get(gw.id, {}))
        await self.monitor.restore()
        if self.settings.cluster.enabled:
            if self.db.is_sqlite:
                raise ConfigError("cluster.enabled needs PostgreSQL (database.url)")
            self.cluster = Cluster(self.db, self.settings.cluster, on_release=self._stop_gateways)
            self.cluster.set_gateways(self.gateways)
        needs_link = self.settings.alerts.mqtt or any(
            s.info.protocol == Protocol.MQTT for s in self.gateways.values()
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.sink.run(), name="telemetry")
            tg.create_task(self._run_scheduler(), name="scheduler")
            tg.create_task(self._run_reloader(), name="reloader")
            tg.create_task(self.monitor.run_writer(lambda: self.book), name="fault-writer")
            tg.create_task(self.dispatcher.run(), name="alert-dispatcher")
            if needs_link:
                tg.create_task(self._run_mqtt(), name="mqtt-link")
            else:
                self._link_ready.set()
            if self.cluster is not None:
                tg.create_task(self.cluster.run(), name="cluster")
                tg.create_task(
                    listen_config_changes(
                        self.db,
                        lambda what: self._changed_locally(overrides_only=what == OVERRIDES_ONLY),
                    ),
                    name="cluster-config",
                )
                tg.create_task(self._run_notifier(), name="cluster-notify")
            tg.create_task(self._supervise(), name="gateways")
            self._ready.set()

    @property
    def leader(self) -> bool:
        """Whether this instance runs housekeeping and alert delivery (always, alone)."""
        return self.cluster is None or self.cluster.leader

    def _wanted_gateways(self) -> set[int]:
        if self.cluster is None:
            return set(self.gateways)
        return {g for g in self.cluster.owned if g in self.gateways}

    async def _supervise(self) -> None:
        """Keep one loop running for every gateway this instance drives."""
        await self._link_ready.wait()
        async with asyncio.TaskGroup() as tg:
            while True:
                for gid in self._wanted_gateways() - self._loops.keys():
                    state = self.gateways[gid]
                    opener = (
                        self._open_mqtt
                        if state.info.protocol == Protocol.MQTT
                        else self._openers.get(Protocol.MODBUS, self._open_modbus)
                    )
                    state.online = None
                    state.last_refresh = None  # a gateway taken over gets every target at once
                    self._loops[gid] = tg.create_task(
                        self._gateway_loop(state, opener), name=f"gateway[{state.info.name}]"
                    )
                cluster = self.cluster
                if cluster is None:
                    await asyncio.Event().wait()  # alone: every gateway, for good
                    continue
                await cluster.changed.wait()
                cluster.changed.clear()

    async def _stop_gateways(self, ids: set[int]) -> None:
        """Stop driving ``ids`` (their leases are about to go) and wait until they stopped."""
        tasks = [self._loops.pop(g) for g in ids if g in self._loops]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run_scheduler(self) -> None:
        scheduler = AsyncIOScheduler(
            timezone=self.settings.site.tz,
            job_defaults={"misfire_grace_time": MISFIRE_GRACE_S, "coalesce": True},
        )
        self._scheduler = scheduler
        scheduler.start()
        try:
            self._plan()
            await self._watch_clock()
        finally:
            scheduler.shutdown(wait=False)
            self._scheduler = None

    async def _watch_clock(self, every_s: float = 5.0, tolerance_s: float = 30.0) -> None:
        """Re-plan and reconcile at once when the clock jumps (NTP step, manual change).

        The scheduler's jobs sit at wall-clock instants; after a jump they would fire at the
        wrong moments or be dropped as misfires. Targets themselves are always computed from
        ``clock.now()``, so a re-plan and a wake-up put everything right.
        """
        loop = asyncio.get_running_loop()
        last_clock, last_mono = self.clock.now(), loop.time()
        while True:
            await asyncio.sleep(every_s)
            now, mono = self.clock.now(), loop.time()
            expected = (mono - last_mono) * self.clock.speed
            drift = (now - last_clock).total_seconds() - expected
            if abs(drift) > tolerance_s * self.clock.speed:
                log.warning("clock jumped by %+.0f s: re-planning and reconciling", drift)
                self.clock_jumps += 1
                self._plan()
                for state in self.gateways.values():
                    state.last_refresh = None  # send every target again
                self.wake_all()
            last_clock, last_mono = now, mono

    def _plan(self) -> None:
        """(Re)build the day's jobs: a wake-up at every change instant, and the next re-plan."""
        scheduler = self._scheduler
        if scheduler is None or self.book is None:
            return
        now = self.clock.now()
        for job in scheduler.get_jobs():
            if job.id.startswith("step-"):
                job.remove()
        for instant in self.book.change_instants(now, PLAN_HORIZON):
            scheduler.add_job(
                self._on_step,
                DateTrigger(run_date=self.clock.to_real(instant)),
                id=f"step-{instant.isoformat()}",
                replace_existing=True,
                misfire_grace_time=MISFIRE_GRACE_S,
            )
        local = now.astimezone(self.settings.site.tz)
        next_plan = datetime.combine(local.date(), time(0, 5), tzinfo=self.settings.site.tz)
        if next_plan <= local:
            next_plan += timedelta(days=1)
        scheduler.add_job(
            self._daily,
            DateTrigger(run_date=self.clock.to_real(next_plan)),
            id="daily-plan",
            replace_existing=True,
            misfire_grace_time=3600,
        )

    async def _on_step(self) -> None:
        self.scheduled_wakeups += 1
        self.wake_all()

    async def _daily(self) -> None:
        await self.reload()
        if not self.leader:
            return
        cutoff = self.clock.now() - timedelta(days=self.settings.controller.reading_retention_days)
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(delete(ReadingRow).where(ReadingRow.at < cutoff))  # type: ignore[arg-type]
                old = self.clock.now() - timedelta(days=3)
                await conn.execute(delete(IngestBatch).where(IngestBatch.at < old))  # type: ignore[arg-type]
        except Exception as exc:  # housekeeping must not stop the controller
            log.warning("deleting old readings failed: %s", exc)
        try:  # the monthly energy rollup of the months that are over (docs/ioc.md)
            await close_months(db=self.db, site=self.settings.site.to_site(), now=self.clock.now())
        except Exception as exc:
            log.warning("closing the monthly energy rollup failed: %s", exc)

    # -- gateways ----------------------------------------------------------------------

    @asynccontextmanager
    async def _open_modbus(self, info: GatewayInfo, count: int) -> AsyncIterator[Gateway]:
        from protocols.modbus import ModbusGateway

        assert info.host is not None and info.port is not None
        async with ModbusGateway(
            info.host,
            info.port,
            unit_ids=info.unit_ids,
            luminaire_count=count,
            settings=self.settings.modbus,
            clock=self.clock,
            name=info.name,
        ) as gw:
            yield gw

    async def _run_mqtt(self) -> None:
        from protocols.mqtt import AvailabilityChanged, LateAck, MqttLink

        link = MqttLink(
            self.settings.mqtt,
            client_id=f"{self.settings.mqtt.client_id}-{self.settings.cluster.instance_id}"
            if self.settings.cluster.enabled
            else None,
            clock=self.clock,
            ack_timeout_s=self.settings.controller.mqtt_ack_timeout_s,
            stale_after_s=max(
                self.settings.controller.mqtt_stale_after_s,
                6 * self.settings.controller.mqtt_read_interval_s,
            ),
        )
        self.mqtt_link = link
        by_topic_id = {
            s.info.mqtt_id: s for s in self.gateways.values() if s.info.protocol == Protocol.MQTT
        }
        async with link:
            self._link_ready.set()
            async for event in link.events():
                if isinstance(event, AvailabilityChanged):
                    changed = by_topic_id.get(event.gateway_id)
                    if changed is not None and event.online:
                        changed.wake.set()  # back: catch up at once
                elif isinstance(event, LateAck):
                    acked = by_topic_id.get(event.gateway_id)
                    if acked is not None:
                        # Applied after all: remember it (no re-send), and it answers.
                        batch = Batch(event.source, event.fade_s, event.levels)
                        self._record_command(acked, batch, event.result, event.at)
                        self._mark_online(acked, event.at)

    @asynccontextmanager
    async def _open_mqtt(self, info: GatewayInfo, _count: int) -> AsyncIterator[Gateway]:
        assert info.mqtt_id is not None and self.mqtt_link is not None
        async with self.mqtt_link.gateway(info.mqtt_id) as gw:
            yield gw

    def _interval_s(self, state: GatewayState) -> float:
        if state.info.protocol == Protocol.MQTT:
            return self.settings.controller.mqtt_read_interval_s
        return self.settings.modbus.poll_interval_s

    async def _gateway_loop(self, state: GatewayState, opener: GatewayOpener) -> None:
        backoff = 0.5
        while True:
            raise_if_cancelled()
            try:
                count = max(state.addresses, default=-1) + 1
                async with opener(state.info, count) as gateway:
                    backoff = 0.5
                    await self._serve(state, gateway)
            except (LightingError, OSError) as exc:
                self._mark_offline(state, str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.modbus.reconnect_max_s)

    async def _serve(self, state: GatewayState, gateway: Gateway) -> None:
        loop = asyncio.get_running_loop()
        while True:
            raise_if_cancelled()
            started = loop.time()
            await self._cycle(state, gateway)
            raise_if_cancelled()
            state.cycles += 1
            state.last_cycle_s = loop.time() - started
            self.cycle_duration.observe(state.last_cycle_s)
            real_wait = self._interval_s(state) / self.clock.speed
            try:
                async with asyncio.timeout(real_wait):
                    await state.wake.wait()
            except TimeoutError:
                pass
            state.wake.clear()

    async def _cycle(self, state: GatewayState, gateway: Gateway) -> None:
        """One turn: commands, then what the gateway reports, then the fault rules.

        Commands go first when the gateway is known to answer: at a step every loop wakes
        at once, and no gateway's command may wait behind another's telemetry. Taking in
        readings and judging faults is CPU work on the one event loop, so it is done one
        gateway at a time (``_ingest``): an ack that arrives meanwhile is taken in between
        two gateways, not after all of them.
        """
        was_online = state.online
        # Back after an outage: send everything (it may have lost its levels). Not at the
        # first contact: nothing is acknowledged yet, so the diff sends everything anyway.
        came_back = was_online is False and state.last_seen is not None
        answered = True
        if was_online is True:
            answered = await self._reconcile(state, gateway, came_back=False)
        now = self.clock.now()
        snapshot: GatewayReading | None = None
        try:
            if state.info.protocol == Protocol.MQTT:  # no I/O: decodes what has arrived
                async with self._ingesting():
                    snapshot = await gateway.read()
            else:
                snapshot = await gateway.read()
        except GatewayUnavailable as exc:
            self._mark_offline(state, str(exc))
            # An MQTT gateway that has not reported (recently) but has not said it is offline
            # may still take commands (state comes on its own schedule); try, the ack decides.
            # Only the differences go: without a reading there is no "came back" refresh.
            if getattr(gateway, "online", False) is not True:
                await self._observe(state, now, None)
                return
        else:
            self._mark_online(state, now)
            state.mains_present = snapshot.mains_present
            if snapshot is not state.snapshot:
                state.snapshot = snapshot
                async with self._ingesting():
                    self._take_readings(state, snapshot.luminaires.values())
        try:
            if answered:  # a command that just timed out is not sent again at once
                await self._reconcile(state, gateway, came_back and snapshot is not None)
        finally:
            await self._observe(state, now, snapshot)

    @asynccontextmanager
    async def _ingesting(self) -> AsyncIterator[None]:
        """Hold while taking in one gateway's readings or judging its faults (CPU work).

        One gateway at a time, and not while a burst of commands (``BURST_IN_FLIGHT`` or more)
        is waiting for its acks (at most ``INGEST_DEFER_S``): at a step the fan-out's round
        trips go first, the states that follow it are taken in after.
        """
        if not self._no_burst.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(INGEST_DEFER_S):
                    await self._no_burst.wait()
        async with self._ingest:
            yield

    async def _observe(
        self, state: GatewayState, now: datetime, snapshot: GatewayReading | None
    ) -> None:
        """The fault rules over one poll (one gateway at a time, see ``_cycle``)."""
        if self.book is not None:
            async with self._ingesting():
                self.monitor.observe(state, self.book, now, snapshot)

    async def _reconcile(self, state: GatewayState, gateway: Gateway, came_back: bool) -> bool:
        """Send what differs; False if the gateway did not take a command (marked offline)."""
        if self.book is None:
            return True
        book = self.book
        now = self.clock.now()
        span = book.span(now)
        if state.targets_book is not book or state.targets_span != span:
            ids = list(state.addresses.values())
            by_id = book.targets(now, only=ids)
            targets = {addr: by_id[lid] for addr, lid in state.addresses.items() if lid in by_id}
            self._record_targets(state, targets, now)
            state.targets_book, state.targets_span = book, span
            state.quiet = False
        targets = state.targets
        interval = timedelta(seconds=self.settings.controller.resend_interval_s)
        refresh = came_back or state.last_refresh is None or now - state.last_refresh >= interval
        if (
            not refresh
            and not state.fresh
            and state.quiet
            and (state.quiet_until is None or now < state.quiet_until)
        ):
            return True  # idle: the diff would be empty
        if refresh:
            state.last_refresh = now
        state.fresh = False
        batches = plan(targets, state.tracked, now, refresh=refresh)
        if not batches:
            self._go_quiet(state, now)
            return True
        state.quiet = False
        all_taken = True
        for batch in batches:
            raise_if_cancelled()
            sent = perf_counter()
            try:
                with self._command_in_flight():
                    result = await gateway.apply(
                        batch.levels, source=batch.source, fade_s=batch.fade_s
                    )
            except GatewayUnavailable as exc:
                self._mark_offline(state, str(exc))
                return False
            state.commands += 1
            self.command_latency.observe(perf_counter() - sent)
            self._record_command(state, batch, result, self.clock.now(), refresh=refresh)
            all_taken = all_taken and not result.rejected
        if all_taken:
            # Every address took its command: the diff is empty until something new comes
            # (a refusal is retried at the next turn instead).
            self._go_quiet(state, self.clock.now())
        return True

    @staticmethod
    def _go_quiet(state: GatewayState, now: datetime) -> None:
        """The diff is empty: skip it until new input or ``reconcile.quiet_until``."""
        state.quiet = True
        state.quiet_until = quiet_until(state.targets, state.tracked, now)

    @contextmanager
    def _command_in_flight(self) -> Iterator[None]:
        """Count a command waiting for its ack (telemetry waits for a burst of them)."""
        self._in_flight += 1
        if self._in_flight >= BURST_IN_FLIGHT:
            self._no_burst.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight < BURST_IN_FLIGHT:
                self._no_burst.set()

    def _record_command(
        self,
        state: GatewayState,
        batch: Batch,
        result: CommandResult,
        at: datetime,
        *,
        refresh: bool = False,
    ) -> None:
        """Remember what the gateway accepted, and write the changes to the history."""
        changed = record_sent(state.tracked, batch, result, at, refresh=refresh)
        state.quiet = False
        records = []
        for a in changed:
            lid = state.addresses.get(a)
            if lid is not None:
                target = state.targets.get(a)
                records.append(
                    StateRecord(
                        lid, at, "command", int(batch.levels[a]), batch.source.value,
                        target.detail if target is not None else "",
                    )
                )  # fmt: skip
        self.sink.offer_states(records)

    def _take_readings(self, state: GatewayState, readings: Any) -> None:
        fresh: list[Reading] = []
        for reading in readings:
            previous = state.readings.get(reading.address)
            if previous is not None and previous.at == reading.at:
                continue  # MQTT: the same state message seen again
            state.readings[reading.address] = reading
            fresh.append(reading)
        if fresh:
            state.fresh = True
        changed = record_readings(state.tracked, fresh)
        book = self.book
        refs = {}
        for r in fresh:
            lid = state.addresses.get(r.address)
            if lid is not None and book is not None:
                info = book.luminaires[lid]
                refs[r.address] = LuminaireRef(lid, info.ward, info.gateway_id)
        self.sink.offer_readings((refs[r.address], r) for r in fresh if r.address in refs)
        self.sink.offer_states(
            [
                StateRecord(
                    refs[a].luminaire_id,
                    state.readings[a].at,
                    "actual",
                    int(state.tracked[a].actual or 0),
                )
                for a in changed
                if a in refs
            ]
        )

    def _record_targets(
        self, state: GatewayState, targets: dict[Address, Target], now: datetime
    ) -> None:
        records = []
        for address, target in targets.items():
            previous = state.targets.get(address)
            if previous is None or (previous.level, previous.detail) != (
                target.level,
                target.detail,
            ):
                records.append(
                    StateRecord(
                        state.addresses[address], now, "target", int(target.level),
                        target.source.value, target.detail,
                    )
                )  # fmt: skip
        state.targets = targets
        if records:
            self.sink.offer_states(records)

    def _mark_offline(self, state: GatewayState, why: str) -> None:
        extra = {"gateway": state.info.name, "gateway_id": state.info.id}
        if state.online is None:
            log.info("gateway %s not reachable yet: %s", state.info.name, why, extra=extra)
        elif state.online:
            log.warning("gateway %s offline: %s", state.info.name, why, extra=extra)
        state.online = False
        state.last_error = why

    def _mark_online(self, state: GatewayState, now: datetime) -> None:
        if state.online is False:
            log.info(
                "gateway %s back online",
                state.info.name,
                extra={"gateway": state.info.name, "gateway_id": state.info.id},
            )
        state.online = True
        state.last_seen = now
        state.last_error = None
