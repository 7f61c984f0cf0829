"""Modbus TCP gateway driver: :class:`controller.core.ports.Gateway` over pymodbus.

One :class:`ModbusGateway` per gateway (IP). It owns one
``AsyncModbusTcpClient`` and one named connection task inside its own
TaskGroup; the task connects with exponential back-off (also when the very
first connect fails, which pymodbus itself never retries) and reconnects when
the link drops. pymodbus' own reconnect is switched off so there is exactly one
owner of the connection.

Cost of a dead gateway, per call: while not connected a call waits at most
``timeout_s`` for the connection and then raises
:class:`GatewayUnavailable`; when connected but silent, the first request
fails after ``timeout_s x (retries + 1)`` and the call stops there. Requests on
one client are serialised (pymodbus holds a lock), so concurrent calls on the
same gateway queue; other gateways are unaffected.

Library exceptions are translated here, once: no connection or no answer ->
:class:`GatewayUnavailable`; an exception response to a write ->
:class:`CommandRejected` (reported per address in the :class:`CommandResult`);
an exception response to a read, a short response, a wrong map version or an
implausible register -> :class:`ProtocolViolation`. An implausible luminaire
record only drops that luminaire from the reading (counted in
``stats.malformed``, logged once until it recovers).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from controller.core.clock import Clock, SystemClock
from controller.core.errors import (
    CommandRejected,
    ConfigError,
    GatewayUnavailable,
    ProtocolViolation,
)
from controller.core.values import (
    MAX_LUMINAIRES_PER_UNIT,
    Address,
    CommandResult,
    CommandSource,
    DeviceFlag,
    GatewayReading,
    Level,
    Reading,
)
from protocols.modbus_codec import (
    GatewayBlock,
    ReadRequest,
    RegisterViolation,
    RegisterWrite,
    decode_gateway_block,
    decode_luminaire,
    encode_levels,
    plan_reads,
)
from protocols.register_map import RegisterProfile, Table, load_builtin_profile

__all__ = ["ModbusConfig", "ModbusGateway", "ModbusOptions", "ModbusStats", "WriteRefused"]

log = logging.getLogger(__name__)

_EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}
_UNAVAILABLE_CODES = {10, 11}


class ModbusOptions(Protocol):
    """How patient a driver is (the controller's ``ModbusSettings`` satisfies it)."""

    @property
    def timeout_s(self) -> float:
        """Real seconds one request (or one wait for the connection) may take."""
        ...

    @property
    def retries(self) -> int:
        """Requests sent again after a timeout before the call fails."""
        ...

    @property
    def reconnect_max_s(self) -> float:
        """Longest pause between two connection attempts (exponential back-off)."""
        ...


@dataclass(frozen=True, slots=True)
class ModbusConfig:
    """:class:`ModbusOptions` for a driver made without the controller's settings."""

    timeout_s: float = 1.0
    retries: int = 1
    reconnect_max_s: float = 30.0


class WriteRefused(CommandRejected):
    """The gateway answered a write with an exception response."""

    def __init__(self, message: str, *, unit_id: int, registers: range, reason: str) -> None:
        super().__init__(message)
        self.unit_id = unit_id
        self.registers = registers
        self.reason = reason


@dataclass(slots=True)
class ModbusStats:
    """Counters of one driver since it was created."""

    requests: int = 0
    """Requests sent (reads and writes)."""
    errors: int = 0
    """Requests that failed: no answer, connection lost or an exception response."""
    timeouts: int = 0
    exception_responses: int = 0
    malformed: int = 0
    """Protocol violations: implausible registers, short responses, wrong map version."""
    unavailable: int = 0
    """Calls refused at once because there was no connection."""
    connects: int = 0
    reconnects: int = 0
    """Successful connects after the first one."""


class ModbusGateway:
    """A DALI-to-Modbus-TCP gateway: ``luminaire_count`` luminaires on ``unit_ids``.

    Address ``i`` is unit ``unit_ids[i // 64]``, DALI short address ``i % 64``.
    Use as ``async with ModbusGateway(...) as gw:``; ``read()`` and ``apply()``
    work once connected and raise :class:`GatewayUnavailable` otherwise.

    ``counters_max_age_s``: blocks of the profile marked ``every_poll = false``
    (slow counters: operating hours, switch-on count, temperature in the
    reference map) are re-read only when the copy is older than this, measured
    on ``clock``; 0 reads them on every poll.
    """

    def __init__(
        self,
        host: str,
        port: int = 502,
        *,
        unit_ids: Sequence[int],
        luminaire_count: int,
        profile: RegisterProfile | None = None,
        settings: ModbusOptions | None = None,
        clock: Clock | None = None,
        name: str | None = None,
        counters_max_age_s: float = 60.0,
        reconnect_min_s: float = 0.1,
    ) -> None:
        ids = list(unit_ids)
        if not ids or len(set(ids)) != len(ids) or not all(1 <= i <= 247 for i in ids):
            raise ConfigError(f"unit_ids must be distinct and 1..247, got {ids}")
        if not 0 <= luminaire_count <= MAX_LUMINAIRES_PER_UNIT * len(ids):
            raise ConfigError(
                f"luminaire_count must be 0..{MAX_LUMINAIRES_PER_UNIT * len(ids)} "
                f"for {len(ids)} unit id(s), got {luminaire_count}"
            )
        if counters_max_age_s < 0 or reconnect_min_s <= 0:
            raise ConfigError("counters_max_age_s must be >= 0 and reconnect_min_s > 0")
        self.host = host
        self.port = port
        self.unit_ids: tuple[int, ...] = tuple(ids)
        self.luminaire_count = luminaire_count
        self.profile = profile or load_builtin_profile("reference")
        self.settings: ModbusOptions = settings or ModbusConfig()
        self.name = name or f"{host}:{port}"
        self.stats = ModbusStats()
        self._clock: Clock = clock or SystemClock()
        self._counters_max_age_s = counters_max_age_s
        self._reconnect_min_s = reconnect_min_s
        self._client: AsyncModbusTcpClient | None = None
        self._task_group: asyncio.TaskGroup | None = None
        self._connection_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._images: dict[int, dict[int, int]] = {unit: {} for unit in self.unit_ids}
        self._counters_at: datetime | None = None
        self._not_answering: frozenset[Address] = frozenset()
        self._bad: set[Address] = set()

    # -- addressing ------------------------------------------------------------------

    def locate(self, address: Address) -> tuple[int, int]:
        """``(unit id, DALI short address)`` of a luminaire address."""
        if not 0 <= address < self.luminaire_count:
            raise KeyError(address)
        return self.unit_ids[address // MAX_LUMINAIRES_PER_UNIT], address % MAX_LUMINAIRES_PER_UNIT

    def _count_on(self, index: int) -> int:
        first = index * MAX_LUMINAIRES_PER_UNIT
        return max(0, min(MAX_LUMINAIRES_PER_UNIT, self.luminaire_count - first))

    # -- lifecycle -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Wait until the connection is up (wrap in ``asyncio.timeout``)."""
        await self._connected.wait()

    async def __aenter__(self) -> Self:
        if self._task_group is not None:
            raise RuntimeError(f"{self.name}: already open")
        self._client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.settings.timeout_s,
            retries=self.settings.retries,
            reconnect_delay=0,  # our connection task is the only one that reconnects
            trace_connect=self._on_link,
        )
        task_group = asyncio.TaskGroup()
        await task_group.__aenter__()
        self._task_group = task_group
        self._connection_task = task_group.create_task(
            self._run_connection(), name=f"modbus-connection {self.name}"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group, self._task_group = self._task_group, None
        if self._connection_task is not None:
            self._connection_task.cancel()
        try:
            if task_group is not None:
                # Hand the group only a cancellation: an error from the body of
                # ``async with`` must reach the caller as itself, not wrapped in an
                # ExceptionGroup. The group raises one only if our own task failed.
                if isinstance(exc, asyncio.CancelledError):
                    await task_group.__aexit__(exc_type, exc, tb)
                else:
                    await task_group.__aexit__(None, None, None)
        finally:
            self._connected.clear()
            if self._client is not None:
                self._client.close()

    def _on_link(self, up: bool) -> None:
        """pymodbus' connect/disconnect hook: wakes the connection task when the link drops."""
        if not up:
            self._lost.set()

    async def _run_connection(self) -> None:
        """Connect, wait for the link to drop, reconnect: forever, with back-off on failures."""
        client = self._client
        assert client is not None
        delay = self._reconnect_min_s
        failures = 0
        while True:
            self._lost.clear()
            if not await client.connect():
                failures += 1
                if failures == 1:
                    log.warning(
                        "%s: cannot connect; retrying with back-off up to %g s",
                        self.name,
                        self.settings.reconnect_max_s,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.reconnect_max_s)
                continue
            self.stats.connects += 1
            if self.stats.connects > 1:
                self.stats.reconnects += 1
            if failures or self.stats.connects > 1:
                log.info("%s: connected again after %d failed attempt(s)", self.name, failures)
            failures = 0
            delay = self._reconnect_min_s
            self._counters_at = None  # the device may have restarted
            self._connected.set()
            await self._lost.wait()
            self._connected.clear()
            client.close()
            log.warning("%s: connection lost; reconnecting", self.name)
            await asyncio.sleep(self._reconnect_min_s)

    # -- requests ----------------------------------------------------------------------

    async def _request(self, what: str, call: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """Send one request; translate every pymodbus failure into a domain error."""
        if self._client is None:
            raise RuntimeError(f"{self.name}: use 'async with' before calling the gateway")
        if not self._connected.is_set():
            try:
                async with asyncio.timeout(self.settings.timeout_s):
                    await self._connected.wait()
            except TimeoutError:
                self.stats.unavailable += 1
                raise GatewayUnavailable(f"{self.name}: not connected") from None
        self.stats.requests += 1
        try:
            return await call()
        except ConnectionException as exc:
            self.stats.errors += 1
            self._lost.set()
            raise GatewayUnavailable(f"{self.name}: {what}: connection lost") from exc
        except ModbusIOException as exc:
            self.stats.errors += 1
            self.stats.timeouts += 1
            attempts = self.settings.retries + 1
            timeout_s = self.settings.timeout_s
            raise GatewayUnavailable(
                f"{self.name}: {what}: no valid answer in {attempts} x {timeout_s:g} s"
            ) from exc
        except ModbusException as exc:
            self.stats.errors += 1
            self.stats.malformed += 1
            raise ProtocolViolation(f"{self.name}: {what}: {exc}") from exc

    def _refusal(self, response: ModbusPDU) -> tuple[int, str]:
        self.stats.errors += 1
        self.stats.exception_responses += 1
        code = int(getattr(response, "exception_code", 0))
        return code, f"{_EXCEPTION_NAMES.get(code, 'unknown exception')} (exception {code})"

    async def _read_registers(self, unit_id: int, request: ReadRequest) -> list[int]:
        client = self._client
        assert client is not None
        what = f"unit {unit_id} read registers {request.address}..{request.end - 1}"
        if self.profile.read_table is Table.INPUT:
            read = client.read_input_registers
        else:
            read = client.read_holding_registers
        response = await self._request(
            what, lambda: read(request.address, count=request.count, device_id=unit_id)
        )
        if response.isError():
            code, reason = self._refusal(response)
            if code in _UNAVAILABLE_CODES:
                raise GatewayUnavailable(f"{self.name}: {what}: {reason}")
            self.stats.malformed += 1
            raise ProtocolViolation(f"{self.name}: {what}: refused: {reason}")
        registers = list(response.registers)
        if len(registers) != request.count:
            self.stats.malformed += 1
            raise ProtocolViolation(
                f"{self.name}: {what}: got {len(registers)} registers, asked for {request.count}"
            )
        return registers

    async def _write_registers(self, unit_id: int, write: RegisterWrite) -> None:
        client = self._client
        assert client is not None
        end = write.address + len(write.values) - 1
        what = f"unit {unit_id} write registers {write.address}..{end}"
        response = await self._request(
            what,
            lambda: client.write_registers(write.address, list(write.values), device_id=unit_id),
        )
        if response.isError():
            code, reason = self._refusal(response)
            if code in _UNAVAILABLE_CODES:
                raise GatewayUnavailable(f"{self.name}: {what}: {reason}")
            raise WriteRefused(
                f"{self.name}: {what}: refused: {reason}",
                unit_id=unit_id,
                registers=range(write.address, end + 1),
                reason=f"refused by gateway: {reason}",
            )

    # -- Gateway -----------------------------------------------------------------------

    async def read(self) -> GatewayReading:
        """Poll the gateway block and every luminaire (see the class doc for the counters)."""
        at = self._clock.now()
        counters_due = (
            self._counters_at is None
            or (at - self._counters_at).total_seconds() >= self._counters_max_age_s
        )
        block: GatewayBlock | None = None
        readings: dict[Address, Reading] = {}
        for index, unit_id in enumerate(self.unit_ids):
            count = self._count_on(index)
            image = self._images[unit_id]
            plan = plan_reads(
                self.profile, count, every_poll_only=not counters_due, gateway_block=index == 0
            )
            for request in plan:
                registers = await self._read_registers(unit_id, request)
                image.update(zip(range(request.address, request.end), registers, strict=True))
            if index == 0:
                try:
                    block = decode_gateway_block(self.profile, image)
                except ProtocolViolation as exc:
                    self.stats.malformed += 1
                    raise ProtocolViolation(f"{self.name}: unit {unit_id}: {exc}") from exc
            first = index * MAX_LUMINAIRES_PER_UNIT
            for short in range(count):
                address = Address(first + short)
                try:
                    readings[address] = decode_luminaire(
                        self.profile, image, short, address=address, at=at
                    )
                except RegisterViolation as exc:
                    self.stats.malformed += 1
                    if address not in self._bad:
                        log.warning(
                            "%s: unit %d: dropped address %d: %s", self.name, unit_id, address, exc
                        )
                        self._bad.add(address)
                    continue
                if address in self._bad:
                    log.info("%s: address %d reads plausibly again", self.name, address)
                    self._bad.discard(address)
        if counters_due:
            self._counters_at = at
        self._not_answering = frozenset(
            a for a, r in readings.items() if DeviceFlag.NOT_ANSWERING in r.flags
        )
        assert block is not None
        return GatewayReading(
            at=at,
            mains_present=block.mains_present,
            uptime_s=block.uptime_s,
            luminaires=readings,
            map_version=block.map_version,
        )

    async def apply(
        self,
        levels: Mapping[Address, Level],
        *,
        source: CommandSource = CommandSource.PROGRAM,
        fade_s: float = 0.0,
    ) -> CommandResult:
        """Write ``levels`` with the fewest "write multiple registers" requests.

        An address is accepted when the write covering it succeeded; refused by
        the gateway (exception response), out of range, or known from the last
        poll to be not answering, it is in ``rejected`` with the reason. Raises
        :class:`GatewayUnavailable` if the gateway stops answering part-way (the
        next poll shows what took effect).
        """
        command_id = uuid.uuid4().hex
        rejected: dict[Address, str] = {}
        per_unit: dict[int, dict[int, int]] = {}
        for address, value in levels.items():
            if not 0 <= address < self.luminaire_count:
                rejected[address] = "unknown address"
            elif isinstance(value, bool) or not 0 <= value <= 100:
                rejected[address] = "level out of range"
            else:
                unit_id, short = self.locate(address)
                per_unit.setdefault(unit_id, {})[short] = int(value)
        accepted: set[Address] = set()
        for unit_id, shorts in per_unit.items():
            first = self.unit_ids.index(unit_id) * MAX_LUMINAIRES_PER_UNIT
            writes = encode_levels(self.profile, shorts, fade_s)
            for write in writes:
                covered = write.shorts or tuple(shorts)  # a fade-only write governs all
                try:
                    await self._write_registers(unit_id, write)
                except WriteRefused as exc:
                    log.warning("%s: command %s: %s", self.name, command_id, exc)
                    for short in covered:
                        rejected[Address(first + short)] = exc.reason
                    if not write.shorts:
                        break  # without the fade time the levels must not go out
                    continue
                accepted.update(Address(first + short) for short in write.shorts)
        for address in accepted & self._not_answering:
            rejected[address] = "not answering (per last poll)"
        accepted -= rejected.keys()
        log.debug(
            "%s: command %s (%s, fade %g s): %d accepted, %d rejected",
            self.name,
            command_id,
            source,
            fade_s,
            len(accepted),
            len(rejected),
        )
        return CommandResult(command_id, frozenset(accepted), rejected)
