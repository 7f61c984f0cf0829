"""One gateway's loop: read, compare, send the difference, record; mark online/offline.

A :class:`GatewayLoop` drives one gateway through a :class:`controller.loop.drivers.Driver`
(what differs between protocols lives there, not here). It shares with the other loops only
the :class:`Intake` (one gateway's readings taken in at a time, and not during a burst of
commands); everything else it reaches through the small interfaces below, so a unit test runs
it against an in-memory gateway without sockets or a database.

A gateway that is down is marked offline (logged once, and once on recovery) and costs only
its own loop; when it returns it gets the current state at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from time import perf_counter
from typing import Protocol

from controller.core.clock import Clock
from controller.core.errors import GatewayUnavailable, LightingError
from controller.core.ports import Gateway
from controller.core.values import Address, CommandResult, GatewayReading, Reading
from controller.loop.drivers import Driver
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
from controller.loop.targets import GatewayInfo, TargetBook
from controller.loop.telemetry import LuminaireRef, StateRecord

log = logging.getLogger(__name__)

INGEST_DEFER_S = 10.0
"""Telemetry waits at most this long (real seconds) for a burst of commands to be answered."""
BURST_IN_FLIGHT = 50
"""Commands in flight from which telemetry intake waits: a fan-out, not a few slow or silent
gateways (those must not hold back the telemetry of the others)."""
BACKOFF_MIN_S = 0.5


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a library swallowed.

    Python 3.11's ``asyncio.wait_for`` (used inside pymodbus) can drop a cancellation
    that races with the awaited result; the task then runs on with ``cancelling() > 0``
    and its TaskGroup waits for ever. The loops call this at every turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


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

    @property
    def luminaire_count(self) -> int:
        """Addresses a driver must serve: 0 up to the highest address in use."""
        return max(self.addresses, default=-1) + 1


class BookSource(Protocol):
    """Where a loop finds the current target book (None before the first load)."""

    @property
    def book(self) -> TargetBook | None: ...


class Recorder(Protocol):
    """Where readings and state changes go (:class:`controller.loop.telemetry.TelemetrySink`)."""

    def offer_readings(self, readings: Iterable[tuple[LuminaireRef, Reading]]) -> None: ...

    def offer_states(self, records: Sequence[StateRecord]) -> None: ...


class FaultObserver(Protocol):
    """Judges faults over one poll (:class:`controller.alerts.monitor.FaultMonitor`)."""

    def observe(
        self, state: GatewayState, book: TargetBook, now: datetime, snapshot: GatewayReading | None
    ) -> None: ...


@dataclass(slots=True)
class LoopMetrics:
    """Shared by every loop (read by ``/metrics``)."""

    command_latency: Histogram = field(default_factory=Histogram)
    cycle_duration: Histogram = field(default_factory=Histogram)


class Intake:
    """What the loops share: taking in readings one gateway at a time, and the burst gate.

    Taking in readings and judging faults is CPU work on the one event loop, so it is done
    one gateway at a time: an ack that arrives meanwhile is taken in between two gateways,
    not after all of them. And not while a burst of commands (``BURST_IN_FLIGHT`` or more)
    waits for its acks (at most ``INGEST_DEFER_S``): at a step the fan-out's round trips go
    first, the states that follow it are taken in after.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._in_flight = 0
        """Commands sent and not yet answered (any gateway)."""
        self._no_burst = asyncio.Event()
        """Set while fewer than ``BURST_IN_FLIGHT`` commands are in flight."""
        self._no_burst.set()

    @asynccontextmanager
    async def ingesting(self) -> AsyncIterator[None]:
        """Hold while taking in one gateway's readings or judging its faults."""
        if not self._no_burst.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(INGEST_DEFER_S):
                    await self._no_burst.wait()
        async with self._lock:
            yield

    @contextmanager
    def command_in_flight(self) -> Iterator[None]:
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


class GatewayLoop:
    """Drives one gateway until cancelled: connect (with back-off), then cycle."""

    def __init__(
        self,
        state: GatewayState,
        driver: Driver,
        *,
        clock: Clock,
        books: BookSource,
        recorder: Recorder,
        faults: FaultObserver,
        intake: Intake,
        metrics: LoopMetrics,
        resend_interval_s: float,
    ) -> None:
        self.state = state
        self.driver = driver
        self.clock = clock
        self.books = books
        self.recorder = recorder
        self.faults = faults
        self.intake = intake
        self.metrics = metrics
        self.resend_interval = timedelta(seconds=resend_interval_s)

    async def run(self) -> None:
        """Open the gateway and serve it; on an expected failure mark it offline, back off."""
        state = self.state
        backoff = BACKOFF_MIN_S
        while True:
            raise_if_cancelled()
            try:
                async with self.driver.open(state.info, state.luminaire_count) as gateway:
                    backoff = BACKOFF_MIN_S
                    await self._serve(gateway)
            except (LightingError, OSError) as exc:
                self.mark_offline(str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.driver.reconnect_max_s)

    async def _serve(self, gateway: Gateway) -> None:
        state = self.state
        loop = asyncio.get_running_loop()
        while True:
            raise_if_cancelled()
            started = loop.time()
            await self.cycle(gateway)
            raise_if_cancelled()
            state.cycles += 1
            state.last_cycle_s = loop.time() - started
            self.metrics.cycle_duration.observe(state.last_cycle_s)
            real_wait = self.driver.interval_s / self.clock.speed
            try:
                async with asyncio.timeout(real_wait):
                    await state.wake.wait()
            except TimeoutError:
                pass
            state.wake.clear()

    async def cycle(self, gateway: Gateway) -> None:
        """One turn: commands, then what the gateway reports, then the fault rules.

        Commands go first when the gateway is known to answer: at a step every loop wakes
        at once, and no gateway's command may wait behind another's telemetry.
        """
        state = self.state
        was_online = state.online
        # Back after an outage: send everything (it may have lost its levels). Not at the
        # first contact: nothing is acknowledged yet, so the diff sends everything anyway.
        came_back = was_online is False and state.last_seen is not None
        answered = True
        if was_online is True:
            answered = await self.reconcile(gateway, came_back=False)
        now = self.clock.now()
        snapshot: GatewayReading | None = None
        try:
            if self.driver.reads_locally:  # no I/O: decodes what has arrived
                async with self.intake.ingesting():
                    snapshot = await gateway.read()
            else:
                snapshot = await gateway.read()
        except GatewayUnavailable as exc:
            self.mark_offline(str(exc))
            # A gateway that has not reported (recently) but has not said it is offline may
            # still take commands (MQTT: state comes on its own schedule); try, the ack
            # decides. Only the differences go: without a reading there is no "came back".
            if not self.driver.may_command_unread(state.info):
                await self._observe(now, None)
                return
        else:
            self.mark_online(now)
            state.mains_present = snapshot.mains_present
            if snapshot is not state.snapshot:
                state.snapshot = snapshot
                async with self.intake.ingesting():
                    self.take_readings(snapshot.luminaires.values())
        try:
            if answered:  # a command that just timed out is not sent again at once
                await self.reconcile(gateway, came_back=came_back and snapshot is not None)
        finally:
            await self._observe(now, snapshot)

    async def _observe(self, now: datetime, snapshot: GatewayReading | None) -> None:
        """The fault rules over one poll (one gateway at a time, see :class:`Intake`)."""
        book = self.books.book
        if book is not None:
            async with self.intake.ingesting():
                self.faults.observe(self.state, book, now, snapshot)

    async def reconcile(self, gateway: Gateway, *, came_back: bool) -> bool:
        """Send what differs; False if the gateway did not take a command (marked offline)."""
        book = self.books.book
        if book is None:
            return True
        state = self.state
        now = self.clock.now()
        span = book.span(now)
        if state.targets_book is not book or state.targets_span != span:
            ids = list(state.addresses.values())
            by_id = book.targets(now, only=ids)
            targets = {addr: by_id[lid] for addr, lid in state.addresses.items() if lid in by_id}
            self._record_targets(targets, now)
            state.targets_book, state.targets_span = book, span
            state.quiet = False
        refresh = (
            came_back
            or state.last_refresh is None
            or now - state.last_refresh >= self.resend_interval
        )
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
        batches = plan(state.targets, state.tracked, now, refresh=refresh)
        if not batches:
            self._go_quiet(now)
            return True
        state.quiet = False
        all_taken = True
        for batch in batches:
            raise_if_cancelled()
            sent = perf_counter()
            try:
                with self.intake.command_in_flight():
                    result = await gateway.apply(
                        batch.levels, source=batch.source, fade_s=batch.fade_s
                    )
            except GatewayUnavailable as exc:
                self.mark_offline(str(exc))
                return False
            state.commands += 1
            self.metrics.command_latency.observe(perf_counter() - sent)
            self.record_command(batch, result, self.clock.now(), refresh=refresh)
            all_taken = all_taken and not result.rejected
        if all_taken:
            # Every address took its command: the diff is empty until something new comes
            # (a refusal is retried at the next turn instead).
            self._go_quiet(self.clock.now())
        return True

    def _go_quiet(self, now: datetime) -> None:
        """The diff is empty: skip it until new input or ``reconcile.quiet_until``."""
        state = self.state
        state.quiet = True
        state.quiet_until = quiet_until(state.targets, state.tracked, now)

    def record_command(
        self, batch: Batch, result: CommandResult, at: datetime, *, refresh: bool = False
    ) -> None:
        """Remember what the gateway accepted, and write the changes to the history."""
        state = self.state
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
        self.recorder.offer_states(records)

    def take_readings(self, readings: Iterable[Reading]) -> None:
        state = self.state
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
        book = self.books.book
        refs = {}
        for r in fresh:
            lid = state.addresses.get(r.address)
            if lid is not None and book is not None:
                info = book.luminaires[lid]
                refs[r.address] = LuminaireRef(lid, info.ward, info.gateway_id)
        self.recorder.offer_readings((refs[r.address], r) for r in fresh if r.address in refs)
        self.recorder.offer_states(
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

    def _record_targets(self, targets: dict[Address, Target], now: datetime) -> None:
        state = self.state
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
            self.recorder.offer_states(records)

    def mark_offline(self, why: str) -> None:
        state = self.state
        extra = {"gateway": state.info.name, "gateway_id": state.info.id}
        if state.online is None:
            log.info("gateway %s not reachable yet: %s", state.info.name, why, extra=extra)
        elif state.online:
            log.warning("gateway %s offline: %s", state.info.name, why, extra=extra)
        state.online = False
        state.last_error = why

    def mark_online(self, now: datetime) -> None:
        state = self.state
        if state.online is False:
            log.info(
                "gateway %s back online",
                state.info.name,
                extra={"gateway": state.info.name, "gateway_id": state.info.id},
            )
        state.online = True
        state.last_seen = now
        state.last_error = None
