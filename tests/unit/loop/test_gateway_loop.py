"""GatewayLoop against an in-memory gateway: no sockets, no database, a manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from controller.config.settings import SiteSettings
from controller.core.clock import ManualClock
from controller.core.errors import GatewayUnavailable
from controller.core.ports import Gateway
from controller.core.values import (
    Address,
    CommandResult,
    CommandSource,
    GatewayReading,
    Level,
    Reading,
)
from controller.loop.gateway_loop import GatewayLoop, GatewayState, Intake, LoopMetrics
from controller.loop.targets import GatewayInfo, LuminaireInfo, TargetBook
from controller.loop.telemetry import LuminaireRef, StateRecord
from controller.scheduling.data import ScheduleBook
from schedules.builtin import FULL_NIGHT
from schedules.calendar import Calendar
from tests.e2e.receivers import eventually

NIGHT = datetime(2026, 6, 21, 15, 0, tzinfo=UTC)  # 22:00 in Đông Hà: full night is 100 %
INFO = GatewayInfo(1, "gw-1", "modbus", "127.0.0.1", 1502, (1,), None, "Phường 1", True)
ADDRESSES = {Address(a): 10 + a for a in range(3)}


def book() -> TargetBook:
    luminaires = {
        lid: LuminaireInfo(lid, f"L{lid}", 1, address, "Phường 1", "Lê Duẩn", 100.0)
        for address, lid in ADDRESSES.items()
    }
    return TargetBook(
        site=SiteSettings().to_site(),
        default_level=0,
        book=ScheduleBook(
            programs={"full": FULL_NIGHT},
            calendars={1: Calendar(default_program="full")},
            default_calendar_id=1,
        ),
        luminaires=luminaires,
        gateways={1: INFO},
        calendar_of=dict.fromkeys(luminaires, 1),
    )


@dataclass
class MemoryGateway:
    """A gateway whose luminaires follow every command at once; can be made unreachable."""

    clock: ManualClock
    levels: dict[Address, int] = field(default_factory=lambda: dict.fromkeys(ADDRESSES, 0))
    reachable: bool = True
    commands: list[dict[Address, Level]] = field(default_factory=list)

    async def apply(
        self, levels: Mapping[Address, Level], *, source: CommandSource = CommandSource.PROGRAM,
        fade_s: float = 0.0,
    ) -> CommandResult:  # fmt: skip
        if not self.reachable:
            raise GatewayUnavailable("gw-1: timed out")
        self.clock.advance(0.05)  # a round trip: the ack comes after the read before it
        self.commands.append(dict(levels))
        self.levels.update(levels)
        return CommandResult(f"c{len(self.commands)}", frozenset(levels))

    async def read(self) -> GatewayReading:
        if not self.reachable:
            raise GatewayUnavailable("gw-1: timed out")
        now = self.clock.now()
        return GatewayReading(
            at=now, mains_present=True, uptime_s=1,
            luminaires={
                a: Reading(
                    address=a, at=now, lamp_on=lv > 0, level_pct=lv, power_w=lv, voltage_v=230.0,
                    current_ma=0, power_factor=0.9, energy_wh=0, operating_hours=0,
                    switch_on_count=0, temperature_c=30.0,
                )
                for a, lv in self.levels.items()
            },
        )  # fmt: skip


@dataclass
class MemoryDriver:
    gateway: MemoryGateway
    commands_unread: bool = False
    interval_s: float = 10.0
    reconnect_max_s: float = 30.0
    reads_locally: bool = False
    opened: list[int] = field(default_factory=list)

    def may_command_unread(self, info: GatewayInfo) -> bool:
        return self.commands_unread

    @asynccontextmanager
    async def open(self, info: GatewayInfo, count: int) -> AsyncIterator[Gateway]:
        self.opened.append(count)
        yield self.gateway


@dataclass
class Books:
    book: TargetBook | None


@dataclass
class Recorded:
    states: list[StateRecord] = field(default_factory=list)
    readings: list[tuple[LuminaireRef, Reading]] = field(default_factory=list)

    def offer_readings(self, readings: Iterable[tuple[LuminaireRef, Reading]]) -> None:
        self.readings.extend(readings)

    def offer_states(self, records: Sequence[StateRecord]) -> None:
        self.states.extend(records)


@dataclass
class Faults:
    polls: list[GatewayReading | None] = field(default_factory=list)

    def observe(
        self, state: GatewayState, book: TargetBook, now: datetime, snapshot: GatewayReading | None
    ) -> None:
        self.polls.append(snapshot)


@dataclass
class Rig:
    clock: ManualClock
    gateway: MemoryGateway
    driver: MemoryDriver
    recorded: Recorded
    faults: Faults
    loop: GatewayLoop

    @property
    def state(self) -> GatewayState:
        return self.loop.state


def rig(*, commands_unread: bool = False) -> Rig:
    clock = ManualClock(NIGHT)
    gateway = MemoryGateway(clock)
    driver = MemoryDriver(gateway, commands_unread=commands_unread)
    recorded, faults = Recorded(), Faults()
    loop = GatewayLoop(
        GatewayState(info=INFO, addresses=dict(ADDRESSES)), driver, clock=clock,
        books=Books(book()), recorder=recorded, faults=faults, intake=Intake(),
        metrics=LoopMetrics(), resend_interval_s=300,
    )  # fmt: skip
    return Rig(clock, gateway, driver, recorded, faults, loop)


async def test_a_cycle_commands_the_targets_and_records_all_three_values() -> None:
    r = rig()
    await r.loop.cycle(r.gateway)
    assert r.gateway.levels == dict.fromkeys(ADDRESSES, 100)
    assert r.state.online is True
    assert {a: t.level for a, t in r.state.targets.items()} == dict.fromkeys(ADDRESSES, 100)
    assert {a: t.acked for a, t in r.state.tracked.items()} == dict.fromkeys(ADDRESSES, 100)
    kinds = sorted({(rec.kind, rec.luminaire_id, rec.level) for rec in r.recorded.states})
    assert kinds == sorted(
        (kind, lid, level)
        for lid in ADDRESSES.values()
        for kind, level in (("target", 100), ("command", 100), ("actual", 0))
    )
    assert len(r.faults.polls) == 1 and r.faults.polls[0] is not None
    # the next cycle reads the lamps at 100 %: nothing more to send
    r.clock.advance(10)
    await r.loop.cycle(r.gateway)
    assert len(r.gateway.commands) == 1
    assert {a: t.actual for a, t in r.state.tracked.items()} == dict.fromkeys(ADDRESSES, 100)


async def test_an_unreachable_gateway_is_marked_offline_and_sent_nothing() -> None:
    r = rig()
    r.gateway.reachable = False
    await r.loop.cycle(r.gateway)
    assert r.state.online is False
    assert r.state.last_error == "gw-1: timed out"
    assert r.gateway.commands == []
    assert r.faults.polls == [None]  # the fault rules still judge the silent gateway


async def test_a_driver_that_allows_commands_unread_sends_them_and_the_ack_decides() -> None:
    r = rig(commands_unread=True)
    r.gateway.reachable = False
    await r.loop.cycle(r.gateway)  # the read fails; the command is tried and times out
    assert r.state.online is False and r.gateway.commands == []
    r.gateway.reachable = True
    real_read = r.gateway.read

    async def no_state() -> GatewayReading:
        raise GatewayUnavailable("gw-1: no state yet")

    r.gateway.read = no_state  # type: ignore[method-assign]
    await r.loop.cycle(r.gateway)
    assert r.gateway.commands == [dict.fromkeys(ADDRESSES, Level(100))]
    r.gateway.read = real_read  # type: ignore[method-assign]


async def test_back_after_an_outage_every_target_is_sent_again() -> None:
    r = rig()
    await r.loop.cycle(r.gateway)
    r.gateway.reachable = False
    r.clock.advance(10)
    await r.loop.cycle(r.gateway)
    r.gateway.levels = dict.fromkeys(ADDRESSES, 0)  # it lost its levels
    r.gateway.reachable = True
    r.clock.advance(10)
    await r.loop.cycle(r.gateway)
    assert r.state.online is True
    assert r.gateway.commands[-1] == dict.fromkeys(ADDRESSES, Level(100))
    assert len(r.gateway.commands) == 2


async def test_run_opens_with_the_address_span_and_backs_off_with_the_drivers_setting() -> None:
    r = rig()
    r.driver.reconnect_max_s = 0.01

    failures = 0

    @asynccontextmanager
    async def failing(info: GatewayInfo, count: int) -> AsyncIterator[Gateway]:
        nonlocal failures
        failures += 1
        r.driver.opened.append(count)
        raise GatewayUnavailable("connection refused")
        yield r.gateway  # pragma: no cover

    r.driver.open = failing  # type: ignore[method-assign]
    task = asyncio.create_task(r.loop.run())

    async def retried() -> bool:  # first back-off 0.5 s, then 0.01 s each
        return failures >= 5

    await eventually(retried, 5, "five attempts to open")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert failures >= 5
    assert set(r.driver.opened) == {3}
    assert r.state.online is False and r.state.last_error == "connection refused"
