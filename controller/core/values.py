"""Value types shared by the controller, the protocol adapters and the fakes.

These are plain, immutable data: no I/O, no clock. ``protocols`` imports only
these and :mod:`controller.core.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NewType

Address = NewType("Address", int)
"""A luminaire's index on its gateway, 0-based.

For a Modbus gateway, index ``i`` lives on unit id ``unit_ids[i // 64]`` at DALI
short address ``i % 64``; for an MQTT gateway it is the address in the payloads.
"""

Level = NewType("Level", int)
"""A dimming level in percent, 0 (off) to 100 (full)."""

MAX_LUMINAIRES_PER_UNIT = 64


def level(value: int) -> Level:
    """Return ``value`` as a :data:`Level`, refusing anything outside 0..100."""
    if not 0 <= value <= 100:
        raise ValueError(f"level must be 0..100 %, got {value}")
    return Level(value)


class ProtocolKind(StrEnum):
    """How the controller talks to a gateway."""

    MODBUS = "modbus"
    MQTT = "mqtt"


class CommandSource(StrEnum):
    """Why a luminaire has the level it has (precedence: override > program > default)."""

    DEFAULT = "default"
    PROGRAM = "program"
    OVERRIDE = "override"
    FAILSAFE = "failsafe"


class DeviceFlag(StrEnum):
    """Status/failure flags a luminaire reports (names follow TALQ where one exists)."""

    LAMP_FAILURE = "lampFailure"
    DRIVER_FAILURE = "controlGearFailure"
    NOT_ANSWERING = "controlGearCommFailure"
    OVER_TEMPERATURE = "thermalDerating"
    SUPPLY_FAULT = "supplyFault"


@dataclass(frozen=True, slots=True)
class Reading:
    """One luminaire's telemetry at one instant (units in the field names)."""

    address: Address
    at: datetime
    lamp_on: bool
    level_pct: int
    power_w: float
    voltage_v: float
    current_ma: int
    power_factor: float
    energy_wh: int
    operating_hours: int
    switch_on_count: int
    temperature_c: float
    flags: frozenset[DeviceFlag] = frozenset()


@dataclass(frozen=True, slots=True)
class GatewayReading:
    """What one poll of a gateway returns: its own block plus every luminaire behind it."""

    at: datetime
    mains_present: bool
    uptime_s: int
    luminaires: Mapping[Address, Reading] = field(default_factory=dict)
    map_version: int = 1


@dataclass(frozen=True, slots=True)
class CommandResult:
    """Outcome of one batched command: which addresses took it, which refused and why."""

    command_id: str
    accepted: frozenset[Address]
    rejected: Mapping[Address, str] = field(default_factory=dict)
