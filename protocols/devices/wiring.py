"""What the channels of a cabinet's I/O module are wired to, as data.

A profile says a Moxa ioLogik E1214 has six relays (coils) and six digital inputs; it
cannot say that relay 0 drives the contactor of circuit A and input 3 is the door switch:
that is how one cabinet was built. :class:`IoWiring` holds that per installation, names
each channel's role, and is checked against the profile (a contactor must be a writable
coil, a sensed contact a readable bit). :func:`cabinet_signals` turns the decoded bits into
what they mean; :func:`contactor_writes` turns "circuit A on" into the coil writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from controller.core.errors import ConfigError
from protocols.devices.codec import PointKey, Reading, WriteRequest, plan_writes
from protocols.devices.profile import DeviceProfile, Format

__all__ = [
    "CabinetSignals",
    "Channel",
    "IoWiring",
    "Role",
    "cabinet_signals",
    "check_wiring",
    "contactor_writes",
    "parse_wiring",
]


class Role(StrEnum):
    """What a channel is wired to. Inputs read true when the named condition holds."""

    CONTACTOR = "contactor"  # output: energises the contactor of ``circuit``
    CONTACTOR_FEEDBACK = "contactor_feedback"  # input: auxiliary contact of ``circuit``'s contactor
    DOOR_OPEN = "door_open"  # input: cabinet door switch
    MANUAL_MODE = "manual_mode"  # input: the manual/auto selector is on manual
    BREAKER_TRIPPED = "breaker_tripped"  # input: auxiliary contact of the main breaker

    @property
    def is_output(self) -> bool:
        return self is Role.CONTACTOR

    @property
    def per_circuit(self) -> bool:
        return self in (Role.CONTACTOR, Role.CONTACTOR_FEEDBACK)


class Channel(BaseModel):
    """One wired channel: the profile point, its role, and its polarity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    point: str
    role: Role
    circuit: str | None = None
    inverted: bool = False
    """The contact is normally closed: the role holds when the bit reads false."""
    description: str = ""


class IoWiring(BaseModel):
    """The channels of one I/O module in one cabinet, keyed by the label on the drawing (K1, S3)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str
    channels: Mapping[str, Channel]


@dataclass(frozen=True, slots=True)
class CabinetSignals:
    """The cabinet's state as its I/O module sees it (None: no channel wired for it)."""

    contactors: Mapping[str, bool]
    """Circuit -> coil commanded on (read back from the relay output)."""
    feedback: Mapping[str, bool]
    """Circuit -> contactor reported closed by its auxiliary contact."""
    door_open: bool | None
    manual_mode: bool | None
    breaker_tripped: bool | None


def parse_wiring(text: str, profile: DeviceProfile, *, source: str = "<wiring>") -> IoWiring:
    """Parse a wiring from YAML and check it against ``profile``."""
    try:
        data: Any = yaml.safe_load(text)
        wiring = IoWiring.model_validate(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None
    check_wiring(wiring, profile, source=source)
    return wiring


def check_wiring(wiring: IoWiring, profile: DeviceProfile, *, source: str = "<wiring>") -> None:
    """Refuse a wiring that does not fit ``profile`` (ConfigError naming the channel)."""
    if wiring.profile != profile.name:
        raise ConfigError(
            f"{source}: profile: is {wiring.profile!r}, the device is {profile.name!r}"
        )
    used: dict[str, str] = {}
    contactor_of: dict[str, str] = {}
    for label, channel in wiring.channels.items():
        where = f"{source}: channels.{label}"
        point = profile.points.get(channel.point)
        if point is None:
            raise ConfigError(f"{where}.point: {profile.name} has no point {channel.point!r}")
        if point.format is not Format.BOOL or point.variables:
            raise ConfigError(f"{where}.point: {channel.point!r} is not a single bit")
        if channel.point in used:
            raise ConfigError(
                f"{where}.point: {channel.point!r} is already channel {used[channel.point]}"
            )
        used[channel.point] = label
        if channel.role.is_output and not point.writable:
            raise ConfigError(
                f"{where}.role: a contactor needs a writable coil, {channel.point!r} is not"
            )
        if channel.role.per_circuit != (channel.circuit is not None):
            need = "needs a circuit" if channel.role.per_circuit else "takes no circuit"
            raise ConfigError(f"{where}.circuit: role {channel.role} {need}")
        if channel.role is Role.CONTACTOR:
            assert channel.circuit is not None
            if channel.circuit in contactor_of:
                raise ConfigError(
                    f"{where}.circuit: circuit {channel.circuit!r} already has contactor "
                    f"{contactor_of[channel.circuit]}"
                )
            contactor_of[channel.circuit] = label
    for label, channel in wiring.channels.items():
        if channel.role is Role.CONTACTOR_FEEDBACK and channel.circuit not in contactor_of:
            raise ConfigError(
                f"{source}: channels.{label}.circuit: no contactor drives {channel.circuit!r}"
            )


def cabinet_signals(wiring: IoWiring, readings: Mapping[PointKey, Reading]) -> CabinetSignals:
    """What the decoded bits mean. Every wired point must be in ``readings``."""
    contactors: dict[str, bool] = {}
    feedback: dict[str, bool] = {}
    single: dict[Role, bool] = {}
    for label, channel in wiring.channels.items():
        reading = readings.get(PointKey(channel.point))
        if reading is None:
            raise ConfigError(f"channel {label} ({channel.point}) was not read")
        active = bool(reading.value) != channel.inverted
        if channel.role is Role.CONTACTOR:
            contactors[channel.circuit or ""] = active
        elif channel.role is Role.CONTACTOR_FEEDBACK:
            feedback[channel.circuit or ""] = active
        else:
            # Two door switches: the door is open when either says so.
            single[channel.role] = single.get(channel.role, False) or active
    return CabinetSignals(
        contactors=contactors,
        feedback=feedback,
        door_open=single.get(Role.DOOR_OPEN),
        manual_mode=single.get(Role.MANUAL_MODE),
        breaker_tripped=single.get(Role.BREAKER_TRIPPED),
    )


def contactor_writes(
    wiring: IoWiring, profile: DeviceProfile, on: Mapping[str, bool]
) -> tuple[WriteRequest, ...]:
    """The coil writes that switch the circuits in ``on`` (circuit -> energised)."""
    by_circuit = {
        channel.circuit: channel
        for channel in wiring.channels.values()
        if channel.role is Role.CONTACTOR
    }
    values: dict[PointKey, bool] = {}
    for circuit, state in on.items():
        channel = by_circuit.get(circuit)
        if channel is None:
            raise ConfigError(f"no contactor is wired for circuit {circuit!r}")
        values[PointKey(channel.point)] = state != channel.inverted
    return plan_writes(profile, values)
