"""Milesight WS558 smart light controller: eight relays switching lighting circuits, one meter.

Ported from the vendor's public codec (not copied): TheThingsNetwork/lorawan-devices
``vendor/milesight-iot/ws558.js`` (decoder) and ``ws558-encoder.js`` (encoder), and
Milesight-IoT/SensorDecoders ``WS_Series/WS558/README.md`` (payload table, example).

Uplink (fPort 85): a sequence of channels, each ``id, type, value`` (little-endian):

==========  ======  =====  ===================================================
channel     id      type   value
==========  ======  =====  ===================================================
voltage     0x03    0x74   u16, 0.1 V
power       0x04    0x80   u32, W (active power)
factor      0x05    0x81   u8, % (power factor x 100)
energy      0x06    0x83   u32, Wh (power consumption)
current     0x07    0xC9   u16, mA (total current)
switches    0x08    0x31   u8 change mask, u8 state; bit i = relay i+1
==========  ======  =====  ===================================================

The meter measures all eight relays together: it is reported as
:attr:`Uplink.node`, the relays as luminaire addresses 0..7 (on = level 100).

Downlink (fPort 85): ``[0x08, mask, state]`` switches the relays whose bit is in
``mask`` to the bit in ``state``. The relays switch; they do not dim: a level
above 0 means on.

Where we are stricter than the vendor decoder: it stops silently at an unknown
channel and reads past the end of a short payload; we raise ``ProtocolViolation``
so the bridge counts and logs the uplink.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from controller.core.errors import ProtocolViolation
from controller.core.values import Address, Level
from protocols.lorawan import object_fields as f
from protocols.lorawan.codec import Frame, Telemetry, Uplink
from protocols.lorawan.payload_reader import PayloadReader

F_PORT: Final = 85
"""Milesight's application port (the vendor's codec examples all use it)."""
RELAYS: Final = 8

_VOLTAGE: Final = (0x03, 0x74)
_POWER: Final = (0x04, 0x80)
_FACTOR: Final = (0x05, 0x81)
_ENERGY: Final = (0x06, 0x83)
_CURRENT: Final = (0x07, 0xC9)
_SWITCHES: Final = (0x08, 0x31)
_SWITCH_COMMAND: Final = 0x08

_CHANNEL_NAMES: Final = {
    _VOLTAGE: "voltage",
    _POWER: "active power",
    _FACTOR: "power factor",
    _ENERGY: "power consumption",
    _CURRENT: "total current",
    _SWITCHES: "switch status",
}


class Ws558Codec:
    """The WS558's payloads; relay ``i`` (switch_{i+1} in the vendor's names) is address ``i``."""

    NAME: Final = "milesight-ws558"

    @property
    def name(self) -> str:
        return self.NAME

    @property
    def addresses(self) -> frozenset[Address]:
        return frozenset(Address(i) for i in range(RELAYS))

    # ------------------------------------------------------------------ controller side

    def decode_uplink(self, f_port: int, payload: bytes) -> Uplink:
        if f_port != F_PORT:
            raise ProtocolViolation(f"{self.NAME}: uplinks are on fPort {F_PORT}, got {f_port}")
        if not payload:
            raise ProtocolViolation(f"{self.NAME}: empty payload")
        reader = PayloadReader(self.NAME, payload)
        node: dict[str, Any] = {}
        relays: dict[Address, Telemetry] = {}
        seen: set[tuple[int, int]] = set()
        while reader.remaining:
            at = reader.offset
            channel = (reader.uint(1, "channel id"), reader.uint(1, "channel type"))
            name = _CHANNEL_NAMES.get(channel)
            if name is None:
                raise ProtocolViolation(
                    f"{self.NAME}: unknown channel 0x{channel[0]:02x} 0x{channel[1]:02x} "
                    f"at byte {at} (payload {payload.hex()})"
                )
            if channel in seen:
                raise ProtocolViolation(f"{self.NAME}: channel {name} appears twice")
            seen.add(channel)
            if channel == _VOLTAGE:
                node["voltage_v"] = reader.uint(2, name) / 10
            elif channel == _POWER:
                node["power_w"] = float(reader.uint(4, name))
            elif channel == _FACTOR:
                percent = reader.uint(1, name)
                if percent > 100:
                    raise ProtocolViolation(
                        f"{self.NAME}: power factor must be 0..100 %, got {percent}"
                    )
                node["power_factor"] = percent / 100
            elif channel == _ENERGY:
                node["energy_wh"] = reader.uint(4, name)
            elif channel == _CURRENT:
                node["current_ma"] = reader.uint(2, name)
            else:
                reader.uint(1, "switch change mask")  # which relays changed: not state
                state = reader.uint(1, "switch state")
                relays = {Address(i): _relay(bool(state >> i & 1)) for i in range(RELAYS)}
        return Uplink(luminaires=relays, node=Telemetry(**node))

    def decode_object(self, obj: Mapping[str, Any]) -> Uplink:
        """The vendor decoder's names: voltage, active_power, power_factor, ... switch_1..8."""
        where = f"{self.NAME} object"
        factor = f.integer(obj, "power_factor", where, minimum=0, maximum=100)
        node = Telemetry(
            voltage_v=f.number(obj, "voltage", where, minimum=0, maximum=1000),
            power_w=f.number(obj, "active_power", where, minimum=0),
            power_factor=None if factor is None else factor / 100,
            energy_wh=f.integer(obj, "power_consumption", where, minimum=0),
            current_ma=f.integer(obj, "total_current", where, minimum=0),
        )
        relays: dict[Address, Telemetry] = {}
        for i in range(RELAYS):
            key = f"switch_{i + 1}"
            value = f.text(obj, key, where)
            if value is None:
                continue
            if value not in ("on", "off"):
                raise ProtocolViolation(f"{where}: {key} must be 'on' or 'off', got {value!r}")
            relays[Address(i)] = _relay(value == "on")
        return Uplink(luminaires=relays, node=node)

    def encode_downlink(self, levels: Mapping[Address, Level]) -> tuple[Frame, ...]:
        if not levels:
            raise ValueError("no levels to send")
        mask = state = 0
        for address, level in levels.items():
            if not 0 <= address < RELAYS:
                raise ValueError(f"{self.NAME} has relays 0..{RELAYS - 1}, got address {address}")
            if not 0 <= level <= 100:
                raise ValueError(f"level must be 0..100 %, got {level}")
            mask |= 1 << address
            state |= (level > 0) << address
        return (Frame(F_PORT, bytes((_SWITCH_COMMAND, mask, state))),)

    # ------------------------------------------------------------------ node side

    def encode_uplink(self, uplink: Uplink) -> Frame:
        node = uplink.node
        out = bytearray()
        if node.voltage_v is not None:
            out += bytes(_VOLTAGE) + round(node.voltage_v * 10).to_bytes(2, "little")
        if node.power_w is not None:
            out += bytes(_POWER) + round(node.power_w).to_bytes(4, "little")
        if node.power_factor is not None:
            out += bytes(_FACTOR) + round(node.power_factor * 100).to_bytes(1, "little")
        if node.energy_wh is not None:
            out += bytes(_ENERGY) + node.energy_wh.to_bytes(4, "little")
        if node.current_ma is not None:
            out += bytes(_CURRENT) + node.current_ma.to_bytes(2, "little")
        if uplink.luminaires:
            state = 0
            for address, telemetry in uplink.luminaires.items():
                if not 0 <= address < RELAYS:
                    raise ValueError(
                        f"{self.NAME} has relays 0..{RELAYS - 1}, got address {address}"
                    )
                state |= bool(telemetry.lamp_on) << address
            out += bytes((*_SWITCHES, 0, state))
        if not out:
            raise ValueError("nothing to send")
        return Frame(F_PORT, bytes(out))

    def decode_downlink(self, f_port: int, payload: bytes) -> dict[Address, Level]:
        if f_port != F_PORT:
            raise ProtocolViolation(f"{self.NAME}: downlinks are on fPort {F_PORT}, got {f_port}")
        if len(payload) != 3 or payload[0] != _SWITCH_COMMAND:
            raise ProtocolViolation(
                f"{self.NAME}: a switch command is 08 <mask> <state>, "
                f"got {payload.hex() or 'nothing'}"
            )
        mask, state = payload[1], payload[2]
        if not mask:
            raise ProtocolViolation(f"{self.NAME}: switch command with an empty mask")
        if state & ~mask:
            raise ProtocolViolation(
                f"{self.NAME}: switch state 0x{state:02x} sets relays outside mask 0x{mask:02x}"
            )
        return {
            Address(i): Level(100 if state >> i & 1 else 0) for i in range(RELAYS) if mask >> i & 1
        }


def _relay(on: bool) -> Telemetry:
    return Telemetry(lamp_on=on, level_pct=100 if on else 0)
