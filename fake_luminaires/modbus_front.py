"""A fake DALI-to-Modbus-TCP gateway: one :class:`FakeGateway` served over real TCP.

One pymodbus ``ModbusTcpServer`` with one ``SimDevice`` per unit id (a DALI
line of up to 64 luminaires; address ``i`` is unit ``unit_ids[i // 64]``, short
address ``i % 64``) plus an id-0 catch-all that answers unknown unit ids with
"illegal address" instead of logging a KeyError. Registers follow a
:class:`RegisterProfile` (the reference map by default) through the same codec
the driver uses.

* Reads refresh only the records they cover from the model at ``clock.now()``,
  just before pymodbus copies them out, so every read is fresh.
* Writes to the level registers become ``FakeGateway.command`` calls with the
  fade time last written to the unit's fade register; a level above 100 % is
  refused with exception 3 (illegal data value) and changes nothing.
* ``offline`` (checked on every request, so injecting it on the model is enough):
  requests are swallowed, the TCP connection stays up, clients time out.
  ``disconnect`` (use :meth:`ModbusFront.inject`): connections are closed and
  the port stops listening until the fault is cleared; injected on the model
  only, it behaves like ``offline``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from controller.core.clock import Clock
from controller.core.errors import ProtocolViolation
from controller.core.values import MAX_LUMINAIRES_PER_UNIT, Address
from fake_luminaires.model import FakeGateway, GatewayFault, LuminaireFault
from protocols.modbus_codec import (
    GatewayBlock,
    RegisterViolation,
    decode_write,
    encode_gateway_block,
    encode_luminaire,
)
from protocols.register_map import RegisterProfile, Table, load_builtin_profile

__all__ = ["FrontStats", "ModbusFront"]

log = logging.getLogger(__name__)

_READ_FUNCTIONS = {3: Table.HOLDING, 4: Table.INPUT}
_WRITE_FUNCTIONS = {6, 16}


@dataclass(slots=True)
class FrontStats:
    """Requests as the fake gateway saw them (tests assert on these)."""

    reads: int = 0
    """Read requests received (function codes 3 and 4)."""
    writes: int = 0
    """Write requests received (function codes 6 and 16)."""
    registers_written: int = 0
    exceptions: int = 0
    """Exception responses sent."""
    dropped: int = 0
    """Responses swallowed while offline."""


class _Unit:
    """One DALI line: its unit id, its luminaires and its fade register."""

    __slots__ = ("count", "fade_s", "first", "unit_id")

    def __init__(self, unit_id: int, first: int, count: int) -> None:
        self.unit_id = unit_id
        self.first = first
        self.count = count
        self.fade_s = 0.0


class ModbusFront:
    """Serve ``gateway`` on ``host:port`` (port 0 picks a free one; see :attr:`port`)."""

    def __init__(
        self,
        gateway: FakeGateway,
        *,
        clock: Clock,
        profile: RegisterProfile | None = None,
        unit_ids: Sequence[int] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.gateway = gateway
        self.profile = profile or load_builtin_profile("reference")
        self.clock = clock
        self.host = host
        self._port = port
        count = len(gateway.luminaires)
        needed = max(1, -(-count // MAX_LUMINAIRES_PER_UNIT))
        ids = list(unit_ids) if unit_ids is not None else list(range(1, needed + 1))
        if len(ids) < needed:
            raise ValueError(f"{count} luminaires need {needed} unit ids, got {ids}")
        if len(set(ids)) != len(ids) or not all(1 <= i <= 247 for i in ids):
            raise ValueError(f"unit ids must be distinct and 1..247, got {ids}")
        self.units: dict[int, _Unit] = {}
        for index, unit_id in enumerate(ids):
            first = index * MAX_LUMINAIRES_PER_UNIT
            self.units[unit_id] = _Unit(
                unit_id, first, max(0, min(MAX_LUMINAIRES_PER_UNIT, count - first))
            )
        self.stats = FrontStats()
        self._server: ModbusTcpServer | None = None
        self._listening = False

    # -- lifecycle -----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port actually listened on (known once started)."""
        return self._port

    @property
    def listening(self) -> bool:
        return self._listening

    async def __aenter__(self) -> Self:
        if GatewayFault.DISCONNECT not in self.gateway.faults:
            await self._listen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _listen(self) -> None:
        server = ModbusTcpServer(
            self._devices(),
            address=(self.host, self._port),
            trace_packet=self._trace_packet,
            trace_pdu=self._trace_pdu,
        )
        await server.serve_forever(background=True)
        self._server = server
        self._listening = True
        if self._port == 0:
            listener = server.transport
            assert isinstance(listener, asyncio.Server)
            self._port = int(listener.sockets[0].getsockname()[1])
        log.debug(
            "fake Modbus gateway %s listening on %s:%d",
            self.gateway.gateway_id,
            self.host,
            self._port,
        )

    async def _stop(self) -> None:
        server, self._server = self._server, None
        self._listening = False
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]

    async def inject(
        self, fault: LuminaireFault | GatewayFault, address: Address | None = None
    ) -> None:
        """Inject a fault into the model and apply its network effect now."""
        self.gateway.inject(fault, address)
        if fault is GatewayFault.DISCONNECT:
            await self._stop()

    async def clear(
        self, fault: LuminaireFault | GatewayFault, address: Address | None = None
    ) -> None:
        """Clear a fault; after ``disconnect`` the same port listens again."""
        self.gateway.clear(fault, address)
        if fault is GatewayFault.DISCONNECT and not self._listening:
            await self._listen()

    # -- register image ------------------------------------------------------------

    def _devices(self) -> list[SimDevice]:
        devices = [self._device(unit) for unit in self.units.values()]
        # Catch-all for unknown unit ids: one invalid register, so every request
        # gets "illegal address" rather than a KeyError in pymodbus' log.
        devices.append(SimDevice(id=0, simdata=[SimData(address=0, datatype=DataType.INVALID)]))
        return devices

    def _device(self, unit: _Unit) -> SimDevice:
        profile = self.profile
        spans: dict[Table, list[tuple[int, int]]] = {Table.HOLDING: [], Table.INPUT: []}
        command = profile.command
        if unit.count:
            spans[Table.HOLDING].append((command.level_base, command.level_base + unit.count))
        if command.fade_address is not None:
            spans[Table.HOLDING].append((command.fade_address, command.fade_address + 1))
        gw = profile.gateway.values()
        reads = [(min(s.offset for s in gw), max(s.offset + s.registers for s in gw))]
        reads += [(b.base, b.base + unit.count * b.stride) for b in profile.blocks if unit.count]
        spans[profile.read_table].extend(reads)

        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            return self._on_request(
                unit, function_code, start_address, address, count, registers, set_values
            )

        def simdata(table: Table) -> list[SimData]:
            merged = _merge(spans[table], profile.max_read_gap)
            if not merged:  # a table the map does not use: every address is illegal
                return [SimData(address=0, datatype=DataType.INVALID)]
            return [
                SimData(address=a, count=b - a, values=0, datatype=DataType.REGISTERS)
                for a, b in merged
            ]

        bits = [SimData(address=0, values=[False] * 16, datatype=DataType.BITS)]
        return SimDevice(
            id=unit.unit_id,
            simdata=(bits, list(bits), simdata(Table.HOLDING), simdata(Table.INPUT)),
            action=action,
        )

    def _on_request(
        self,
        unit: _Unit,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if not self.gateway.answering:
            return ExcCodes.DEVICE_FAILURE  # never sent: _trace_packet swallows it
        if set_values is not None:
            if function_code not in _WRITE_FUNCTIONS:
                return None
            return self._on_write(unit, address, [int(v) for v in set_values])
        if _READ_FUNCTIONS.get(function_code) is self.profile.read_table:
            self._refresh(unit, start_address, address, address + count, registers)
        return None

    def _on_write(self, unit: _Unit, address: int, values: list[int]) -> ExcCodes | None:
        try:
            write = decode_write(self.profile, address, values)
        except RegisterViolation as exc:
            log.info("fake gateway %s refused a write: %s", self.gateway.gateway_id, exc)
            return ExcCodes.ILLEGAL_VALUE
        except ProtocolViolation as exc:
            log.info("fake gateway %s refused a write: %s", self.gateway.gateway_id, exc)
            return ExcCodes.ILLEGAL_ADDRESS
        self.stats.registers_written += len(values)
        if write.fade_s is not None:
            unit.fade_s = write.fade_s
        if write.levels:
            levels = {Address(unit.first + s): v for s, v in write.levels.items()}
            # A luminaire that is not answering simply misses the DALI frame, as on a
            # real line: the Modbus write still succeeds; the next poll shows the flag.
            self.gateway.command(levels, self.clock.now(), fade_s=unit.fade_s)
        return None

    def _refresh(
        self, unit: _Unit, start_address: int, low: int, high: int, registers: list[int]
    ) -> None:
        """Rewrite the records that overlap registers ``low..high-1`` from the model."""
        profile = self.profile
        now = self.clock.now()
        image: dict[int, int] = {}
        gw = profile.gateway.values()
        if min(s.offset for s in gw) < high and low < max(s.offset + s.registers for s in gw):
            block = GatewayBlock(
                map_version=profile.map_version,
                luminaire_count=unit.count,
                mains_present=self.gateway.mains_present,
                uptime_s=max(0, int((now - self.gateway.started_at).total_seconds())),
            )
            image.update(encode_gateway_block(profile, block))
        shorts: set[int] = set()
        for b in profile.blocks:
            first = max(0, (low - b.base) // b.stride)
            last = min(unit.count - 1, (high - 1 - b.base) // b.stride)
            shorts.update(range(first, last + 1))
        for short in sorted(shorts):
            lum = self.gateway.luminaires[Address(unit.first + short)]
            image.update(encode_luminaire(profile, lum.reading(now), short))
        size = len(registers)
        for reg, value in image.items():
            index = reg - start_address
            if 0 <= index < size:
                registers[index] = value

    # -- hooks -----------------------------------------------------------------------

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending and not self.gateway.answering:
            self.stats.dropped += 1
            return b""
        return data

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        code = int(pdu.function_code)
        if not sending:
            if code in _READ_FUNCTIONS:
                self.stats.reads += 1
            elif code in _WRITE_FUNCTIONS:
                self.stats.writes += 1
        elif code & 0x80 and self.gateway.answering:
            self.stats.exceptions += 1
        return pdu


def _merge(spans: list[tuple[int, int]], max_gap: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start - out[-1][1] <= max_gap:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
