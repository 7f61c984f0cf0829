"""The payload codec interface of LoRaWAN nodes, and the registry of shipped codecs.

A LoRaWAN node speaks bytes on a port (fPort 1..223). A codec turns an uplink
into what the controller understands (:class:`Uplink`: per-luminaire
:class:`Telemetry`, which is a *partial* :class:`~controller.core.values.Reading`
because most uplinks carry only some fields) and target levels into downlinks.
When the network server already decoded the payload (ChirpStack's ``object``, The
Things Stack's ``decoded_payload``), :meth:`Codec.decode_object` reads the vendor
decoder's field names instead of the bytes.

The node side (:meth:`Codec.encode_uplink`, :meth:`Codec.decode_downlink`) lets the
fake network server and the property tests speak the same codec from the other end.

Pure: no I/O, no clock. Malformed input raises
:class:`controller.core.errors.ProtocolViolation` naming what is wrong. Encoding a
value the codec cannot express is a programming error (``ValueError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final, Protocol

from controller.core.values import Address, DeviceFlag, Level, Reading

MIN_F_PORT: Final = 1
MAX_F_PORT: Final = 223
"""Application fPorts (LoRaWAN 1.0.x/1.1: 0 is MAC commands, 224.. are reserved)."""


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What one uplink says about one luminaire or circuit; ``None`` = not in this uplink.

    Field names and units are those of :class:`~controller.core.values.Reading`.
    ``flags`` is the full set raised now when the uplink reports flags at all.
    """

    lamp_on: bool | None = None
    level_pct: int | None = None
    power_w: float | None = None
    voltage_v: float | None = None
    current_ma: int | None = None
    power_factor: float | None = None
    energy_wh: int | None = None
    operating_hours: int | None = None
    switch_on_count: int | None = None
    temperature_c: float | None = None
    flags: frozenset[DeviceFlag] | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def merged(self, other: Telemetry) -> Telemetry:
        """This telemetry with every field ``other`` reports replacing ours."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(
            {
                f.name: getattr(other, f.name)
                for f in fields(other)
                if getattr(other, f.name) is not None
            }
        )
        return Telemetry(**values)

    def reading(self, *, address: Address, at: datetime, previous: Reading | None) -> Reading:
        """A full :class:`Reading`: fields this uplink lacks keep ``previous`` (or zero).

        A node that reports only a switch state still yields a reading; its meter
        values stay what the last uplink that carried them said.
        """

        def pick(name: str, zero: Any) -> Any:
            value = getattr(self, name)
            if value is not None:
                return value
            return getattr(previous, name) if previous is not None else zero

        return Reading(
            address=address,
            at=at,
            lamp_on=pick("lamp_on", False),
            level_pct=pick("level_pct", 0),
            power_w=pick("power_w", 0.0),
            voltage_v=pick("voltage_v", 0.0),
            current_ma=pick("current_ma", 0),
            power_factor=pick("power_factor", 0.0),
            energy_wh=pick("energy_wh", 0),
            operating_hours=pick("operating_hours", 0),
            switch_on_count=pick("switch_on_count", 0),
            temperature_c=pick("temperature_c", 0.0),
            flags=pick("flags", frozenset()),
        )


@dataclass(frozen=True, slots=True)
class Uplink:
    """What one uplink says.

    ``luminaires``: per address behind the node (a relay channel, a DALI driver).
    ``node``: what the node measures as a whole (the WS558's meter sums all eight
    relays); the bridge decides whom it belongs to (see docs/protocol/chirpstack.md).
    """

    luminaires: Mapping[Address, Telemetry] = field(default_factory=dict)
    node: Telemetry = Telemetry()


@dataclass(frozen=True, slots=True)
class Frame:
    """One LoRaWAN application payload: ``payload`` on ``f_port``, confirmed or not."""

    f_port: int
    payload: bytes
    confirmed: bool = False

    def __post_init__(self) -> None:
        if not MIN_F_PORT <= self.f_port <= MAX_F_PORT:
            raise ValueError(f"fPort must be {MIN_F_PORT}..{MAX_F_PORT}, got {self.f_port}")


class Codec(Protocol):
    """One node type's payloads. Implementations are stateless and immutable."""

    @property
    def name(self) -> str:
        """The registry key (what a device profile or a tag names)."""
        ...

    @property
    def addresses(self) -> frozenset[Address]:
        """The luminaire addresses a node of this type has."""
        ...

    def decode_uplink(self, f_port: int, payload: bytes) -> Uplink:
        """Bytes from the node -> telemetry; ``ProtocolViolation`` when malformed."""
        ...

    def decode_object(self, obj: Mapping[str, Any]) -> Uplink:
        """The vendor decoder's output (ChirpStack ``object``, TTS ``decoded_payload``)."""
        ...

    def encode_downlink(self, levels: Mapping[Address, Level]) -> tuple[Frame, ...]:
        """Target levels -> the downlinks that set them (one or more frames)."""
        ...

    def encode_uplink(self, uplink: Uplink) -> Frame:
        """Node side (fakes, tests): telemetry -> the bytes the node would send."""
        ...

    def decode_downlink(self, f_port: int, payload: bytes) -> dict[Address, Level]:
        """Node side (fakes, tests): a downlink -> the levels it commands."""
        ...


def expected_report(codec: Codec, levels: Mapping[Address, Level]) -> dict[Address, Level]:
    """The levels a node reports after applying ``levels`` (a relay commanded to 70 reports 100).

    Computed by running the codec's own downlink through its node-side decoder, so
    it holds for any codec whose two ends agree (the round-trip property tests).
    """
    expected: dict[Address, Level] = {}
    for frame in codec.encode_downlink(levels):
        expected.update(codec.decode_downlink(frame.f_port, frame.payload))
    return expected
