"""The pure codec over device profiles: plan reads, decode registers, encode writes.

Nothing here does I/O. A driver asks :func:`plan_reads` what to send, sends each
:class:`ReadRequest` with the unit id of the installed device, and hands the answers to
:func:`decode`; to change something it sends the :class:`WriteRequest` list from
:func:`plan_writes`. The same functions serve a fake device, so both ends share one
reading of the profile.

Points are addressed by :class:`PointKey`: the point's name plus the values of its address
variables (``PointKey("actual_level", (("ch", 0), ("sa", 5)))``, or :func:`key`
``("actual_level", ch=0, sa=5)``); a point without variables is just its name.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from controller.core.errors import CommandRejected, ConfigError, ProtocolViolation
from protocols.devices.profile import DeviceProfile, Format, Order, Point, Step

__all__ = [
    "PointKey",
    "ReadPlan",
    "ReadRequest",
    "Reading",
    "Value",
    "WriteRequest",
    "decode",
    "decode_point",
    "encode_point",
    "key",
    "plan_reads",
    "plan_writes",
    "polled_keys",
    "record_keys",
]

Value = float | int | bool


@dataclass(frozen=True, slots=True, order=True)
class PointKey:
    """A point of a profile, with its address variables bound."""

    name: str
    args: tuple[tuple[str, int], ...] = ()

    @property
    def values(self) -> dict[str, int]:
        return dict(self.args)

    def __str__(self) -> str:
        if not self.args:
            return self.name
        return f"{self.name}[{','.join(f'{k}={v}' for k, v in self.args)}]"


def key(name: str, **args: int) -> PointKey:
    """``key("actual_level", ch=0, sa=5)``: a :class:`PointKey` with its arguments sorted."""
    return PointKey(name, tuple(sorted(args.items())))


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded value: engineering ``value`` (raw x scale + offset) and what it means."""

    key: PointKey
    value: Value
    raw: Value
    unit: str
    semantic: str | None
    flags: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: ``count`` registers (or bits) from ``address`` with ``function``."""

    function: int
    address: int
    count: int
    keys: tuple[PointKey, ...]
    placed: tuple[tuple[Point, int], ...] = field(default=(), compare=False, repr=False)
    """Each key's point and its offset in the answer, worked out once by :func:`plan_reads`."""


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """One Modbus write. ``values`` are register words, or booleans for coils."""

    function: int
    address: int
    values: tuple[int, ...] | tuple[bool, ...]
    keys: tuple[PointKey, ...]


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """What a poll sends: trigger writes first (``before``), then the reads."""

    before: tuple[WriteRequest, ...]
    reads: tuple[ReadRequest, ...]


# -- raw values <-> registers ------------------------------------------------------------


def _words_to_int(point: Point, words: Sequence[int]) -> int:
    if point.byte_order is Order.LITTLE:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    ordered = list(words) if point.word_order is Order.BIG else list(reversed(words))
    value = 0
    for word in ordered:
        value = (value << 16) | (word & 0xFFFF)
    return value


def _int_to_words(point: Point, value: int) -> tuple[int, ...]:
    count = point.count
    words = [(value >> (16 * (count - 1 - i))) & 0xFFFF for i in range(count)]
    if point.word_order is Order.LITTLE:
        words.reverse()
    if point.byte_order is Order.LITTLE:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return tuple(words)


_F32 = struct.Struct(">f")
_TWO_WORDS = struct.Struct(">HH")


def _raw_from_words(point: Point, words: Sequence[int]) -> int | float:
    if point.format is Format.F32 and point.byte_order is Order.BIG:
        high, low = (words[0], words[1]) if point.word_order is Order.BIG else (words[1], words[0])
        return float(_F32.unpack(_TWO_WORDS.pack(high, low))[0])
    bits = _words_to_int(point, words)
    if point.format is Format.F32:
        return float(struct.unpack(">f", bits.to_bytes(4, "big"))[0])
    if point.format.signed and bits >= 1 << (point.format.bits - 1):
        bits -= 1 << point.format.bits
    return bits


def decode_point(point: Point, words: Sequence[int] | Sequence[bool], at: PointKey) -> Reading:
    """Decode one point from its own registers (``point.count`` words, or one bit)."""
    if point.format is Format.BOOL:
        bit = bool(words[0])
        return Reading(at, bit, bit, point.unit, point.semantic)
    raw = _raw_from_words(point, [int(w) for w in words])
    flags: dict[str, bool] = {}
    if isinstance(raw, int) and (point.shift or point.width is not None or point.flags):
        raw = (raw >> point.shift) & ((1 << point.value_bits) - 1)
        flags = {name: bool(raw >> bit & 1) for name, bit in point.flags.items()}
    value: Value
    if isinstance(raw, int) and point.scale == 1 and point.offset == 0:
        value = raw
    else:
        value = raw * point.scale + point.offset
    return Reading(at, value, raw, point.unit, point.semantic, flags)


def encode_point(point: Point, value: Value) -> tuple[int, ...] | tuple[bool, ...]:
    """The registers (or bit) that make ``point`` read back as ``value`` (engineering units).

    Raises :class:`CommandRejected` naming the point when the value is outside the point's
    ``min``/``max`` or does not fit its format.
    """
    if point.format is Format.BOOL:
        if not isinstance(value, bool | int) or value not in (0, 1):
            raise CommandRejected(f"{point.description or 'point'}: {value!r} is not a boolean")
        return (bool(value),)
    if isinstance(value, bool) or not math.isfinite(value):
        raise CommandRejected(f"{value!r} is not a finite number")
    if (point.min is not None and value < point.min) or (
        point.max is not None and value > point.max
    ):
        raise CommandRejected(f"{value} is outside {point.min}..{point.max} {point.unit}".rstrip())
    raw_value = (value - point.offset) / point.scale
    if point.format is Format.F32:
        try:
            packed = struct.pack(">f", raw_value)
        except OverflowError:
            raise CommandRejected(f"{value} does not fit a 32-bit float") from None
        return _int_to_words(point, int.from_bytes(packed, "big"))
    if isinstance(value, int) and point.scale == 1 and point.offset == 0:
        raw = value  # exact: a float would round 64-bit counters above 2**53
    else:
        raw = round(raw_value)
        if not math.isclose(raw, raw_value, rel_tol=0, abs_tol=1e-6):
            raise CommandRejected(f"{value} is not a multiple of the scale {point.scale}")
    bits = point.format.bits
    low, high = (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if point.format.signed else (0, (1 << bits) - 1)
    )
    if not low <= raw <= high:
        raise CommandRejected(f"{value} does not fit {point.format} ({low}..{high} raw)")
    return _int_to_words(point, raw & ((1 << bits) - 1))


# -- plans -------------------------------------------------------------------------------


def _resolve(profile: DeviceProfile, at: PointKey) -> tuple[Point, int]:
    point = profile.point(at.name)
    given = {name for name, _ in at.args}
    if given != point.variables:
        raise ConfigError(
            f"profile {profile.name}: {at} must bind exactly {sorted(point.variables) or 'nothing'}"
        )
    for name, value in at.args:
        variable = profile.variables[name]
        if not variable.min <= value <= variable.max:
            raise ConfigError(
                f"profile {profile.name}: {at}: {name} must be {variable.min}..{variable.max}"
            )
    return point, point.address_at(at.values)


def polled_keys(profile: DeviceProfile) -> tuple[PointKey, ...]:
    """Every ``poll: true`` point without address variables (those need explicit keys)."""
    return tuple(
        PointKey(name)
        for name, point in profile.points.items()
        if point.poll and not point.variables
    )


def record_keys(profile: DeviceProfile, **args: int) -> tuple[PointKey, ...]:
    """The ``poll: true`` points whose address variables are exactly ``args``, bound to them.

    ``record_keys(intesis, ch=0, sa=5)`` is what one poll reads of ballast 5 on channel 0.
    """
    bound = tuple(sorted(args.items()))
    return tuple(
        PointKey(name, bound)
        for name, point in profile.points.items()
        if point.poll and point.variables == args.keys()
    )


def plan_reads(profile: DeviceProfile, keys: Iterable[PointKey] | None = None) -> ReadPlan:
    """The fewest reads that cover ``keys`` (default: :func:`polled_keys`).

    Points read with the same function code are sorted by address and merged while a
    request stays within the profile's limits (125 registers / 2000 bits by default) and the
    hole between two points is at most ``max_read_gap``. A point is never split across
    requests, nor are the points of one record (same variable values, e.g. one ballast) that
    lie within ``max_read_gap`` of each other, so a record's values come from one instant.
    The ``before_read`` steps of the points come first, each target written once.
    """
    wanted = list(dict.fromkeys(polled_keys(profile) if keys is None else keys))
    records: dict[tuple[int, tuple[tuple[str, int], ...]], list[tuple[int, int, PointKey]]] = {}
    located: dict[PointKey, tuple[Point, int]] = {}
    for at in wanted:
        point, first = located[at] = _resolve(profile, at)
        records.setdefault((point.read, at.args), []).append((first, first + point.count, at))
    units: dict[int, list[tuple[int, int, tuple[PointKey, ...]]]] = {}
    for (function, _), spans in records.items():
        units.setdefault(function, []).extend(
            _merge(
                sorted(spans, key=_by_start), profile.max_read_gap, _read_limit(profile, function)
            )
        )
    reads = [
        ReadRequest(
            function,
            start,
            stop - start,
            members,
            tuple((point, first - start) for point, first in map(located.__getitem__, members)),
        )
        for function in sorted(units)
        for start, stop, members in _merge(
            sorted(units[function], key=_by_start),
            profile.max_read_gap,
            _read_limit(profile, function),
        )
    ]
    return ReadPlan(before=_trigger_writes(profile, wanted, "before_read"), reads=tuple(reads))


def _read_limit(profile: DeviceProfile, function: int) -> int:
    return profile.max_read_bits if function in (1, 2) else profile.max_read_registers


def _by_start(span: tuple[int, int, object]) -> tuple[int, int]:
    return span[0], span[1]


def _merge(
    spans: Sequence[tuple[int, int, PointKey | tuple[PointKey, ...]]], gap: int, limit: int
) -> list[tuple[int, int, tuple[PointKey, ...]]]:
    """Merge address-sorted spans while the hole is <= ``gap`` and the total <= ``limit``."""
    out: list[tuple[int, int, tuple[PointKey, ...]]] = []
    for first, stop, members in spans:
        group = members if isinstance(members, tuple) else (members,)
        if out:
            start, end, current = out[-1]
            if first - end <= gap and max(end, stop) - start <= limit:
                out[-1] = (start, max(end, stop), current + group)
                continue
        out.append((first, stop, group))
    return out


def decode(
    profile: DeviceProfile,
    reads: Sequence[ReadRequest],
    answers: Sequence[Sequence[int] | Sequence[bool]],
) -> dict[PointKey, Reading]:
    """Decode the answers to ``reads`` (in the same order) into readings keyed by point.

    Raises :class:`ProtocolViolation` when an answer is shorter than its request.
    """
    if len(reads) != len(answers):
        raise ProtocolViolation(f"{len(answers)} answers for {len(reads)} reads")
    out: dict[PointKey, Reading] = {}
    for request, answer in zip(reads, answers, strict=True):
        if len(answer) < request.count:
            raise ProtocolViolation(
                f"{profile.name}: function {request.function} at {request.address}: "
                f"{len(answer)} values for {request.count} requested"
            )
        if len(request.placed) == len(request.keys):
            placed = request.placed
        else:  # a request built by hand
            placed = tuple(
                (point, first - request.address)
                for point, first in (_resolve(profile, at) for at in request.keys)
            )
        for at, (point, offset) in zip(request.keys, placed, strict=True):
            out[at] = decode_point(point, answer[offset : offset + point.count], at)
    return out


def plan_writes(
    profile: DeviceProfile, values: Mapping[PointKey, Value]
) -> tuple[WriteRequest, ...]:
    """The writes that set ``values``, then the ``after_write`` steps of those points.

    Adjacent points written with the same multi-write function (FC15 / FC16) go in one
    request up to the profile's write limits, unless the device takes one parameter per
    message (``one_point_per_write``). Raises :class:`CommandRejected` for a point that is
    not writable or a value it cannot take, and when two values overlap.
    """
    pieces: dict[int, list[tuple[int, PointKey, tuple[int, ...] | tuple[bool, ...]]]] = {}
    for at, value in values.items():
        point, first = _resolve(profile, at)
        if point.write is None:
            raise CommandRejected(f"{profile.name}: {at} is read-only")
        try:
            encoded = encode_point(point, value)
        except CommandRejected as exc:
            raise CommandRejected(f"{profile.name}: {at}: {exc}") from None
        pieces.setdefault(point.write, []).append((first, at, encoded))
    out: list[WriteRequest] = []
    for function in sorted(pieces):
        bits = function in (5, 15)
        limit = profile.max_write_bits if bits else profile.max_write_registers
        merge = function in (15, 16) and not profile.one_point_per_write
        current: WriteRequest | None = None
        for first, at, encoded in sorted(pieces[function], key=lambda p: (p[0], p[1])):
            if current is not None and first < current.address + len(current.values):
                raise CommandRejected(f"{profile.name}: {at} overlaps {current.keys[-1]}")
            if (
                current is not None
                and merge
                and first == current.address + len(current.values)
                and len(current.values) + len(encoded) <= limit
            ):
                current = WriteRequest(
                    function,
                    current.address,
                    (*current.values, *encoded),
                    (*current.keys, at),
                )
                out[-1] = current
                continue
            current = WriteRequest(function, first, encoded, (at,))
            out.append(current)
    out.extend(_trigger_writes(profile, list(values), "after_write"))
    return tuple(out)


def _trigger_writes(
    profile: DeviceProfile, keys: Sequence[PointKey], which: str
) -> tuple[WriteRequest, ...]:
    """The ``before_read`` or ``after_write`` steps of ``keys``, each target written once."""
    triggers: dict[PointKey, Value] = {}
    for at in keys:
        steps: tuple[Step, ...] = getattr(profile.point(at.name), which)
        for step in steps:
            # The target's variables are a subset of the owner's (checked at load).
            needed = profile.point(step.point).variables
            target = PointKey(step.point, tuple((k, v) for k, v in at.args if k in needed))
            triggers.setdefault(target, step.value)
    out: list[WriteRequest] = []
    for target, value in triggers.items():
        point, first = _resolve(profile, target)
        assert point.write is not None  # checked at load
        out.append(WriteRequest(point.write, first, encode_point(point, value), (target,)))
    return tuple(out)
