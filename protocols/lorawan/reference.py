"""Our reference LoRaWAN payload: a compact binary form of the MQTT contract's state and command.

Documented in ``docs/protocol/chirpstack.md`` ("The reference payload"). A node
that follows it needs no vendor codec. Every multi-byte integer is little-endian.

Uplink, fPort 10: ``0x01`` (format version), then one 22-byte record per luminaire:

=====  ======  ==================================================================
byte   type    field
=====  ======  ==================================================================
0      u8      address
1      u8      flags: bit 0 lamp on, 1 lampFailure, 2 controlGearFailure,
               3 controlGearCommFailure, 4 thermalDerating, 5 supplyFault
2      u8      level_pct, 0..100
3      u16     power, 0.1 W
5      u16     voltage, 0.1 V
7      u16     current, mA
9      u8      power factor, 0.01 (0..100)
10     u32     energy, Wh
14     u24     operating hours
17     u24     switch-on count
20     i16     temperature, 0.1 °C
=====  ======  ==================================================================

Downlink, fPort 11: ``0x01`` (set levels), fade in seconds (u8), then one
``address, level`` pair per luminaire (ascending, at most once each).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Final

from controller.core.errors import ProtocolViolation
from controller.core.values import Address, DeviceFlag, Level
from protocols.lorawan import object_fields as f
from protocols.lorawan.codec import Frame, Telemetry, Uplink
from protocols.lorawan.payload_reader import PayloadReader

UPLINK_PORT: Final = 10
DOWNLINK_PORT: Final = 11
VERSION: Final = 0x01
SET_LEVELS: Final = 0x01
RECORD_BYTES: Final = 22

FLAG_BITS: Final = (
    (1, DeviceFlag.LAMP_FAILURE),
    (2, DeviceFlag.DRIVER_FAILURE),
    (3, DeviceFlag.NOT_ANSWERING),
    (4, DeviceFlag.OVER_TEMPERATURE),
    (5, DeviceFlag.SUPPLY_FAULT),
)
LAMP_ON_BIT: Final = 0
_FLAG_NAMES: Final = frozenset(flag.value for flag in DeviceFlag)
_ADDRESS_KEY: Final = re.compile(r"0|[1-9][0-9]{0,2}")
_KNOWN_BITS: Final = 0b0011_1111

MAX_POWER_W: Final = 0xFFFF / 10
MAX_VOLTAGE_V: Final = 0xFFFF / 10
MAX_CURRENT_MA: Final = 0xFFFF
MAX_ENERGY_WH: Final = 0xFFFF_FFFF
MAX_U24: Final = 0xFF_FFFF
MIN_TEMPERATURE_C: Final = -3276.8
MAX_TEMPERATURE_C: Final = 3276.7


class ReferenceCodec:
    """The reference payload for a node of ``luminaires`` luminaires (addresses 0..n-1)."""

    NAME: Final = "streetlight-reference"

    def __init__(self, luminaires: int = 1) -> None:
        if not 1 <= luminaires <= 8:
            raise ValueError(f"a reference node has 1..8 luminaires, got {luminaires}")
        self._addresses = frozenset(Address(i) for i in range(luminaires))

    @property
    def name(self) -> str:
        return self.NAME

    @property
    def addresses(self) -> frozenset[Address]:
        return self._addresses

    # ------------------------------------------------------------------ controller side

    def decode_uplink(self, f_port: int, payload: bytes) -> Uplink:
        if f_port != UPLINK_PORT:
            raise ProtocolViolation(
                f"{self.NAME}: uplinks are on fPort {UPLINK_PORT}, got {f_port}"
            )
        reader = PayloadReader(self.NAME, payload)
        version = reader.uint(1, "format version")
        if version != VERSION:
            raise ProtocolViolation(f"{self.NAME}: format version {version} is not {VERSION}")
        if not reader.remaining:
            raise ProtocolViolation(f"{self.NAME}: no luminaire record")
        if reader.remaining % RECORD_BYTES:
            raise ProtocolViolation(
                f"{self.NAME}: {reader.remaining} bytes of records "
                f"is not a multiple of {RECORD_BYTES}"
            )
        luminaires: dict[Address, Telemetry] = {}
        while reader.remaining:
            address = Address(reader.uint(1, "address"))
            if address not in self._addresses:
                raise ProtocolViolation(f"{self.NAME}: address {address} is not on this node")
            if address in luminaires:
                raise ProtocolViolation(f"{self.NAME}: address {address} appears twice")
            bits = reader.uint(1, "flags")
            if bits & ~_KNOWN_BITS:
                raise ProtocolViolation(
                    f"{self.NAME}: address {address}: unknown flag bits 0x{bits:02x}"
                )
            level = reader.uint(1, "level")
            if level > 100:
                raise ProtocolViolation(f"{self.NAME}: address {address}: level {level} > 100")
            power = reader.uint(2, "power") / 10
            voltage = reader.uint(2, "voltage") / 10
            current = reader.uint(2, "current")
            factor = reader.uint(1, "power factor")
            if factor > 100:
                raise ProtocolViolation(
                    f"{self.NAME}: address {address}: power factor {factor} > 100"
                )
            luminaires[address] = Telemetry(
                lamp_on=bool(bits >> LAMP_ON_BIT & 1),
                level_pct=level,
                power_w=power,
                voltage_v=voltage,
                current_ma=current,
                power_factor=factor / 100,
                energy_wh=reader.uint(4, "energy"),
                operating_hours=reader.uint(3, "operating hours"),
                switch_on_count=reader.uint(3, "switch-on count"),
                temperature_c=reader.sint(2, "temperature") / 10,
                flags=frozenset(flag for bit, flag in FLAG_BITS if bits >> bit & 1),
            )
        return Uplink(luminaires=luminaires)

    def decode_object(self, obj: Mapping[str, Any]) -> Uplink:
        """``{"<address>": {<Reading field names>}}``, as a network-server codec would write it."""
        luminaires: dict[Address, Telemetry] = {}
        for key, values in obj.items():
            where = f"{self.NAME} object[{key!r}]"
            if not _ADDRESS_KEY.fullmatch(key) or Address(int(key)) not in self._addresses:
                raise ProtocolViolation(
                    f"{self.NAME} object: {key!r} is not an address of this node"
                )
            if not isinstance(values, Mapping):
                raise ProtocolViolation(f"{where} must be an object")
            flags = values.get("flags")
            if flags is not None and (
                not isinstance(flags, list) or not all(v in _FLAG_NAMES for v in flags)
            ):
                raise ProtocolViolation(
                    f"{where}: flags must be a list of flag names, got {flags!r}"
                )
            luminaires[Address(int(key))] = Telemetry(
                lamp_on=f.boolean(values, "lamp_on", where),
                flags=None if flags is None else frozenset(DeviceFlag(v) for v in flags),
                power_w=f.number(values, "power_w", where, minimum=0),
                voltage_v=f.number(values, "voltage_v", where, minimum=0),
                power_factor=f.number(values, "power_factor", where, minimum=0, maximum=1),
                temperature_c=f.number(values, "temperature_c", where, minimum=-100, maximum=300),
                level_pct=f.integer(values, "level_pct", where, minimum=0, maximum=100),
                current_ma=f.integer(values, "current_ma", where, minimum=0),
                energy_wh=f.integer(values, "energy_wh", where, minimum=0),
                operating_hours=f.integer(values, "operating_hours", where, minimum=0),
                switch_on_count=f.integer(values, "switch_on_count", where, minimum=0),
            )
        return Uplink(luminaires=luminaires)

    def encode_downlink(
        self, levels: Mapping[Address, Level], *, fade_s: int = 0
    ) -> tuple[Frame, ...]:
        if not levels:
            raise ValueError("no levels to send")
        if not 0 <= fade_s <= 255:
            raise ValueError(f"fade must be 0..255 s, got {fade_s}")
        out = bytearray((SET_LEVELS, fade_s))
        for address in sorted(levels):
            if address not in self._addresses:
                raise ValueError(f"address {address} is not on this node")
            level = levels[address]
            if not 0 <= level <= 100:
                raise ValueError(f"level must be 0..100 %, got {level}")
            out += bytes((address, level))
        return (Frame(DOWNLINK_PORT, bytes(out)),)

    # ------------------------------------------------------------------ node side

    def encode_uplink(self, uplink: Uplink) -> Frame:
        """Every field of every luminaire must be set: a reference record is complete."""
        if not uplink.luminaires:
            raise ValueError("no luminaire to report")
        out = bytearray((VERSION,))
        for address in sorted(uplink.luminaires):
            t = uplink.luminaires[address]
            if address not in self._addresses:
                raise ValueError(f"address {address} is not on this node")
            missing = [spec.name for spec in fields(t) if getattr(t, spec.name) is None]
            if missing:
                raise ValueError(
                    f"address {address}: a reference record needs {', '.join(missing)}"
                )
            assert t.flags is not None and t.lamp_on is not None  # checked just above
            bits = int(t.lamp_on) << LAMP_ON_BIT
            for bit, flag in FLAG_BITS:
                bits |= (flag in t.flags) << bit
            out += bytes((address, bits, _int(t.level_pct)))
            out += round(_num(t.power_w) * 10).to_bytes(2, "little")
            out += round(_num(t.voltage_v) * 10).to_bytes(2, "little")
            out += _int(t.current_ma).to_bytes(2, "little")
            out += round(_num(t.power_factor) * 100).to_bytes(1, "little")
            out += _int(t.energy_wh).to_bytes(4, "little")
            out += _int(t.operating_hours).to_bytes(3, "little")
            out += _int(t.switch_on_count).to_bytes(3, "little")
            out += round(_num(t.temperature_c) * 10).to_bytes(2, "little", signed=True)
        return Frame(UPLINK_PORT, bytes(out))

    def decode_downlink(self, f_port: int, payload: bytes) -> dict[Address, Level]:
        if f_port != DOWNLINK_PORT:
            raise ProtocolViolation(
                f"{self.NAME}: downlinks are on fPort {DOWNLINK_PORT}, got {f_port}"
            )
        reader = PayloadReader(self.NAME, payload)
        command = reader.uint(1, "command")
        if command != SET_LEVELS:
            raise ProtocolViolation(f"{self.NAME}: unknown command 0x{command:02x}")
        reader.uint(1, "fade")
        if not reader.remaining or reader.remaining % 2:
            raise ProtocolViolation(
                f"{self.NAME}: set-levels needs address/level pairs, got {reader.remaining} bytes"
            )
        levels: dict[Address, Level] = {}
        previous = -1
        while reader.remaining:
            address = Address(reader.uint(1, "address"))
            level = reader.uint(1, "level")
            if address <= previous:
                raise ProtocolViolation(
                    f"{self.NAME}: addresses must ascend, {address} after {previous}"
                )
            if address not in self._addresses:
                raise ProtocolViolation(f"{self.NAME}: address {address} is not on this node")
            if level > 100:
                raise ProtocolViolation(f"{self.NAME}: address {address}: level {level} > 100")
            levels[address] = Level(level)
            previous = address
        return levels


def _int(value: int | None) -> int:
    if value is None:
        raise ValueError("missing value")
    return value


def _num(value: float | None) -> float:
    if value is None:
        raise ValueError("missing value")
    return value
