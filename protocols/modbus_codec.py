"""Pure Modbus codec: registers <-> values for any :class:`RegisterProfile`.

No I/O and no clock: the driver (:mod:`protocols.modbus`) reads registers and
passes them in with the instant they were read; the fake gateway
(:mod:`fake_luminaires.modbus_front`) uses the same functions the other way
round, so both ends of the wire share one definition of the map.

Registers are passed as ``Mapping[int, int]`` (address -> 16-bit value) of one
unit id and the profile's read table. Implausible values raise
:class:`RegisterViolation` (a :class:`ProtocolViolation`) naming the register.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from controller.core.errors import ProtocolViolation
from controller.core.values import (
    MAX_LUMINAIRES_PER_UNIT,
    Address,
    DeviceFlag,
    Reading,
)
from protocols.register_map import FieldSpec, RegisterProfile, WordOrder

__all__ = [
    "COUNTER_FIELDS",
    "INTEGER_FIELDS",
    "GatewayBlock",
    "LevelWrite",
    "ReadRequest",
    "RegisterViolation",
    "RegisterWrite",
    "decode_field",
    "decode_gateway_block",
    "decode_luminaire",
    "decode_telemetry",
    "decode_write",
    "encode_field",
    "encode_gateway_block",
    "encode_levels",
    "encode_luminaire",
    "luminaire_registers",
    "plan_reads",
]

INTEGER_FIELDS = frozenset(
    {"flags", "level_pct", "current_ma", "energy_wh", "operating_hours", "switch_on_count"}
    | {"map_version", "luminaire_count", "mains_present", "uptime_s"}
)
"""Fields whose engineering value is an int (the others are floats)."""

COUNTER_FIELDS = frozenset({"energy_wh", "operating_hours", "switch_on_count", "uptime_s"})
"""Monotonic counters: a device's register wraps around instead of overflowing."""

_FLAG_TO_DEVICE = {
    "lamp_failure": DeviceFlag.LAMP_FAILURE,
    "driver_failure": DeviceFlag.DRIVER_FAILURE,
    "not_answering": DeviceFlag.NOT_ANSWERING,
    "over_temperature": DeviceFlag.OVER_TEMPERATURE,
    "supply_fault": DeviceFlag.SUPPLY_FAULT,
}
_IMPLICIT_LIMITS: dict[str, tuple[float, float]] = {
    "level_pct": (0.0, 100.0),
    "power_factor": (0.0, 1.0),
    "mains_present": (0.0, 1.0),
    "luminaire_count": (0.0, float(MAX_LUMINAIRES_PER_UNIT)),
}


class RegisterViolation(ProtocolViolation):
    """A register holds a value the map does not allow (e.g. a level above 100 %)."""

    def __init__(self, register: int, field: str, value: float, message: str) -> None:
        super().__init__(f"register {register} ({field}) = {value}: {message}")
        self.register = register
        self.field = field
        self.value = value


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One "read registers" request: ``count`` registers from ``address``."""

    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class RegisterWrite:
    """One "write multiple registers" request and the short addresses it commands."""

    address: int
    values: tuple[int, ...]
    shorts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LevelWrite:
    """What a write to the command registers asks for (inverse of :func:`encode_levels`)."""

    fade_s: float | None
    levels: dict[int, int]


@dataclass(frozen=True, slots=True)
class GatewayBlock:
    """The gateway's own registers, as seen on one unit id."""

    map_version: int
    luminaire_count: int
    mains_present: bool
    uptime_s: int


# -- single fields ---------------------------------------------------------------------


def _raw_words(spec: FieldSpec, regs: Mapping[int, int], address: int) -> int:
    if spec.width == 16:
        return (regs[address] >> spec.shift) & spec.mask
    first, second = regs[address], regs[address + 1]
    if spec.word_order is WordOrder.BIG:
        return (first << 16) | second
    return (second << 16) | first


def decode_field(spec: FieldSpec, regs: Mapping[int, int], address: int) -> float | int:
    """Engineering value of ``spec`` whose first word is at ``address`` (no limit check)."""
    raw = _raw_words(spec, regs, address)
    if spec.signed and raw & (1 << (spec.bits - 1)):
        raw -= 1 << spec.bits
    if spec.name in INTEGER_FIELDS:
        return raw if spec.scale == 1.0 else round(raw * spec.scale)
    return round(raw * spec.scale, spec.decimals)


def _checked(
    spec: FieldSpec, regs: Mapping[int, int], address: int, *, limits: bool = True
) -> float | int:
    value = decode_field(spec, regs, address)
    if not limits:
        return value
    low, high = _IMPLICIT_LIMITS.get(spec.name, (None, None))
    if spec.minimum is not None:
        low = spec.minimum if low is None else max(low, spec.minimum)
    if spec.maximum is not None:
        high = spec.maximum if high is None else min(high, spec.maximum)
    if (low is not None and value < low) or (high is not None and value > high):
        shown_low = "" if low is None else f"{low:g}"
        shown_high = "" if high is None else f"{high:g}"
        raise RegisterViolation(
            address, spec.name, value, f"outside the plausible range {shown_low}..{shown_high}"
        )
    return value


def encode_field(spec: FieldSpec, value: float, regs: dict[int, int], address: int) -> None:
    """Write ``value`` into ``regs`` at ``address`` (bit fields are merged into the register).

    Raises :class:`ValueError` when the value does not fit, except for counters,
    which wrap like the device's own register.
    """
    raw = round(value / spec.scale)
    if spec.name in COUNTER_FIELDS and not spec.signed:
        raw %= 1 << spec.bits
    if not spec.raw_min <= raw <= spec.raw_max:
        raise ValueError(
            f"{spec.name} = {value} does not fit in {spec.bits} bits at scale {spec.scale:g}"
        )
    raw &= (1 << spec.bits) - 1  # two's complement for negatives
    if spec.width == 16:
        mask = spec.mask << spec.shift
        regs[address] = (regs.get(address, 0) & ~mask & 0xFFFF) | (raw << spec.shift)
        return
    high, low = raw >> 16, raw & 0xFFFF
    if spec.word_order is WordOrder.BIG:
        regs[address], regs[address + 1] = high, low
    else:
        regs[address], regs[address + 1] = low, high


# -- gateway block ---------------------------------------------------------------------


def decode_gateway_block(profile: RegisterProfile, regs: Mapping[int, int]) -> GatewayBlock:
    """The gateway block; a map version other than the profile's is a violation."""
    fields = profile.gateway
    version = int(_checked(fields["map_version"], regs, fields["map_version"].offset))
    if version != profile.map_version:
        raise RegisterViolation(
            fields["map_version"].offset,
            "map_version",
            version,
            f"profile {profile.name!r} describes map version {profile.map_version}",
        )
    return GatewayBlock(
        map_version=version,
        luminaire_count=int(
            _checked(fields["luminaire_count"], regs, fields["luminaire_count"].offset)
        ),
        mains_present=bool(_checked(fields["mains_present"], regs, fields["mains_present"].offset)),
        uptime_s=int(_checked(fields["uptime_s"], regs, fields["uptime_s"].offset)),
    )


def encode_gateway_block(profile: RegisterProfile, block: GatewayBlock) -> dict[int, int]:
    regs: dict[int, int] = {}
    for name, spec in profile.gateway.items():
        value: float = getattr(block, name)
        encode_field(spec, float(value), regs, spec.offset)
    return regs


# -- luminaire telemetry ---------------------------------------------------------------


def luminaire_registers(
    profile: RegisterProfile, short: int, *, every_poll_only: bool = False
) -> list[int]:
    """Every register address of ``short``'s records (all blocks, or every-poll ones)."""
    out: list[int] = []
    for block in profile.blocks:
        if every_poll_only and not block.every_poll:
            continue
        start = block.record(short)
        out.extend(range(start, start + block.stride))
    return out


@dataclass(frozen=True, slots=True)
class _CompiledField:
    """A luminaire field with every per-call constant worked out once (hot path)."""

    name: str
    base: int
    stride: int
    width16: bool
    shift: int
    mask: int
    big_word_order: bool
    signed: bool
    sign_bit: int
    span: int
    scale: float
    is_int: bool
    decimals: int
    low: float | None
    high: float | None


_COMPILED: dict[int, tuple[RegisterProfile, tuple[_CompiledField, ...]]] = {}


def _compile(profile: RegisterProfile) -> tuple[_CompiledField, ...]:
    cached = _COMPILED.get(id(profile))
    if cached is not None and cached[0] is profile:
        return cached[1]
    fields = []
    for name, lf in profile.fields.items():
        spec = lf.spec
        base = lf.address(0)
        stride = lf.address(1) - base
        low, high = _IMPLICIT_LIMITS.get(spec.name, (None, None))
        if spec.minimum is not None:
            low = spec.minimum if low is None else max(low, spec.minimum)
        if spec.maximum is not None:
            high = spec.maximum if high is None else min(high, spec.maximum)
        fields.append(
            _CompiledField(
                name=name,
                base=base,
                stride=stride,
                width16=spec.width == 16,
                shift=spec.shift,
                mask=spec.mask,
                big_word_order=spec.word_order is WordOrder.BIG,
                signed=spec.signed,
                sign_bit=1 << (spec.bits - 1),
                span=1 << spec.bits,
                scale=spec.scale,
                is_int=spec.name in INTEGER_FIELDS,
                decimals=spec.decimals,
                low=low,
                high=high,
            )
        )
    compiled = tuple(fields)
    _COMPILED[id(profile)] = (profile, compiled)
    return compiled


def _value(f: _CompiledField, regs: Mapping[int, int], address: int) -> float | int:
    if f.width16:
        raw = (regs[address] >> f.shift) & f.mask
    elif f.big_word_order:
        raw = (regs[address] << 16) | regs[address + 1]
    else:
        raw = (regs[address + 1] << 16) | regs[address]
    if f.signed and raw & f.sign_bit:
        raw -= f.span
    if f.is_int:
        value: float | int = raw if f.scale == 1.0 else round(raw * f.scale)
    else:
        value = round(raw * f.scale, f.decimals)
    if (f.low is not None and value < f.low) or (f.high is not None and value > f.high):
        shown_low = "" if f.low is None else f"{f.low:g}"
        shown_high = "" if f.high is None else f"{f.high:g}"
        raise RegisterViolation(
            address, f.name, value, f"outside the plausible range {shown_low}..{shown_high}"
        )
    return value


def decode_luminaire(
    profile: RegisterProfile,
    regs: Mapping[int, int],
    short: int,
    *,
    address: Address,
    at: datetime,
) -> Reading:
    """The reading of DALI short address ``short`` (reported as ``address``).

    Raises :class:`RegisterViolation` on an implausible value and ``KeyError``
    when ``regs`` lacks a register of the record (a caller bug, not a device's).
    The field layout is compiled once per profile (this runs for every luminaire
    of every poll).
    """
    values = {f.name: _value(f, regs, f.base + f.stride * short) for f in _compile(profile)}
    flags_word = int(values["flags"])
    bits = profile.flag_bits
    device_flags = frozenset(
        flag for name, flag in _FLAG_TO_DEVICE.items() if flags_word >> bits[name] & 1
    )
    return Reading(
        address=address,
        at=at,
        lamp_on=bool(flags_word >> bits["lamp_on"] & 1),
        level_pct=int(values["level_pct"]),
        power_w=float(values["power_w"]),
        voltage_v=float(values["voltage_v"]),
        current_ma=int(values["current_ma"]),
        power_factor=float(values["power_factor"]),
        energy_wh=int(values["energy_wh"]),
        operating_hours=int(values["operating_hours"]),
        switch_on_count=int(values["switch_on_count"]),
        temperature_c=float(values["temperature_c"]),
        flags=device_flags,
    )


def encode_luminaire(profile: RegisterProfile, reading: Reading, short: int) -> dict[int, int]:
    """The registers a gateway would show for ``reading`` at DALI short address ``short``.

    Values are rounded to the map's resolution; flag bits the map does not know
    are dropped.
    """
    bits = profile.flag_bits
    flags_word = (1 << bits["lamp_on"]) if reading.lamp_on else 0
    for name, flag in _FLAG_TO_DEVICE.items():
        if flag in reading.flags:
            flags_word |= 1 << bits[name]
    regs: dict[int, int] = {}
    for name, lf in profile.fields.items():
        value = flags_word if name == "flags" else getattr(reading, name)
        encode_field(lf.spec, float(value), regs, lf.address(short))
    return regs


def decode_telemetry(
    profile: RegisterProfile,
    regs: Mapping[int, int],
    at: datetime,
    *,
    count: int,
    first_address: int = 0,
) -> dict[Address, Reading]:
    """Readings of short addresses ``0..count-1`` of one unit (strict: first violation raises).

    Short address ``s`` is reported as ``Address(first_address + s)``.
    """
    return {
        Address(first_address + short): decode_luminaire(
            profile, regs, short, address=Address(first_address + short), at=at
        )
        for short in range(count)
    }


# -- request plans ---------------------------------------------------------------------


def plan_reads(
    profile: RegisterProfile,
    count: int,
    *,
    every_poll_only: bool = False,
    gateway_block: bool = True,
) -> list[ReadRequest]:
    """The fewest reads covering the gateway block and ``count`` luminaires' records.

    A luminaire record (and the gateway block) is never split across two reads,
    so one record's values are always read at one instant; two spans merge into
    one read when the gap between them is at most ``profile.max_read_gap``.
    """
    if not 0 <= count <= MAX_LUMINAIRES_PER_UNIT:
        raise ValueError(f"count must be 0..{MAX_LUMINAIRES_PER_UNIT}, got {count}")
    items: list[tuple[int, int]] = []
    if gateway_block:
        starts = [spec.offset for spec in profile.gateway.values()]
        ends = [spec.offset + spec.registers for spec in profile.gateway.values()]
        items.append((min(starts), max(ends)))
    for block in profile.blocks:
        if every_poll_only and not block.every_poll:
            continue
        items.extend((block.record(s), block.record(s) + block.stride) for s in range(count))
    return _pack(items, profile.max_read_registers, profile.max_read_gap)


def _pack(items: Iterable[tuple[int, int]], max_count: int, max_gap: int) -> list[ReadRequest]:
    plan: list[ReadRequest] = []
    start = end = -1
    for item_start, item_end in sorted(items):
        if item_end - item_start > max_count:
            raise ValueError(f"span {item_start}..{item_end - 1} exceeds {max_count} registers")
        if start >= 0 and item_start - end <= max_gap and item_end - start <= max_count:
            end = max(end, item_end)
            continue
        if start >= 0:
            plan.append(ReadRequest(start, end - start))
        start, end = item_start, item_end
    if start >= 0:
        plan.append(ReadRequest(start, end - start))
    return plan


# -- commands --------------------------------------------------------------------------


def encode_levels(
    profile: RegisterProfile, levels: Mapping[int, int], fade_s: float | None = None
) -> list[RegisterWrite]:
    """The writes that set ``levels`` (short address -> %) on one unit, in order.

    Levels go out as the minimal contiguous spans of changed short addresses
    (a full line is one write). With a fade time and a fade register, the fade
    register is written first: in the same request when it sits just below the
    levels and the first span starts at short address 0, else in a request of
    its own. ``fade_s=None`` leaves the gateway's fade register as it is.
    """
    command = profile.command
    for short, value in levels.items():
        if not 0 <= short < MAX_LUMINAIRES_PER_UNIT:
            raise ValueError(f"short address must be 0..63, got {short}")
        if isinstance(value, bool) or not 0 <= value <= 100:
            raise ValueError(f"level must be 0..100 %, got {value!r} for short address {short}")
    spans: list[list[int]] = []
    for short in sorted(levels):
        if spans and spans[-1][-1] == short - 1 and len(spans[-1]) < profile.max_write_registers:
            spans[-1].append(short)
        else:
            spans.append([short])
    writes = [
        RegisterWrite(command.level_base + span[0], tuple(levels[s] for s in span), tuple(span))
        for span in spans
    ]
    if not writes or fade_s is None or command.fade_address is None:
        return writes
    fade_raw = round(fade_s / command.fade_scale_s)
    if not 0 <= fade_raw <= 0xFFFF:
        raise ValueError(
            f"fade_s must be 0..{0xFFFF * command.fade_scale_s:g} s "
            f"for {profile.name}, got {fade_s}"
        )
    first = writes[0] if writes else None
    if (
        first is not None
        and command.fade_adjacent
        and first.shorts[0] == 0
        and len(first.values) < profile.max_write_registers
    ):
        writes[0] = RegisterWrite(command.fade_address, (fade_raw, *first.values), first.shorts)
        return writes
    return [RegisterWrite(command.fade_address, (fade_raw,), ()), *writes]


def decode_write(profile: RegisterProfile, address: int, values: Iterable[int]) -> LevelWrite:
    """Interpret a write to the command registers (what a gateway does on receipt).

    Raises :class:`RegisterViolation` for a level above 100 % and
    :class:`ProtocolViolation` for a register that is not a command register.
    """
    command = profile.command
    fade_s: float | None = None
    levels: dict[int, int] = {}
    for register, value in enumerate(values, start=address):
        if register == command.fade_address:
            fade_s = round(value * command.fade_scale_s, 6)
            continue
        short = register - command.level_base
        if not 0 <= short < MAX_LUMINAIRES_PER_UNIT:
            raise ProtocolViolation(f"register {register} is not a command register")
        if value > 100:
            raise RegisterViolation(register, "level_pct", value, "level above 100 %")
        levels[short] = value
    return LevelWrite(fade_s, levels)
