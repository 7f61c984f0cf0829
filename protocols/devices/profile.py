"""Device profiles: what sits where in a Modbus device, as YAML data validated into frozen models.

A profile describes one kind of device (an Eastron SDM630, a Moxa ioLogik E1214, an Intesis
DALI gateway), never one installed unit: the unit id, host and port are part of where it is
installed (an RTU meter behind an RTU-to-TCP converter is reached by the converter's address
and the meter's unit id). The format is documented field by field in ``docs/devices.md``;
the shipped profiles are in ``protocols/devices/profiles/``.

Loading refuses anything it cannot prove sound, with a :class:`ConfigError` that names the
profile file and the field: unknown keys, a function code that does not fit the register
type, a format that does not fit the count, an address formula over an undeclared variable
or one that runs past 65535 for some value of its variables, a TALQ name that does not
exist or whose unit differs, a trigger step that names a point that cannot be written.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from controller.core.errors import ConfigError
from protocols.devices.expression import Formula, FormulaError, parse_formula
from protocols.devices.talq import TALQ_ATTRIBUTES

__all__ = [
    "Citation",
    "DeviceKind",
    "DeviceProfile",
    "Format",
    "Order",
    "Point",
    "RegisterType",
    "Step",
    "Variable",
    "builtin_profile_names",
    "load_builtin_profile",
    "load_profile",
    "parse_profile",
]

MODBUS_MAX_ADDRESS = 0xFFFF
MODBUS_MAX_READ_REGISTERS = 125  # FC03/FC04
MODBUS_MAX_READ_BITS = 2000  # FC01/FC02
MODBUS_MAX_WRITE_REGISTERS = 123  # FC16
MODBUS_MAX_WRITE_BITS = 1968  # FC15
MAX_VARIABLE_COMBINATIONS = 65536  # formulas are checked at every combination of their variables


class RegisterType(StrEnum):
    """The four Modbus tables."""

    COIL = "coil"  # 1 bit, read FC01, write FC05/FC15
    DISCRETE_INPUT = "discrete_input"  # 1 bit, read FC02, read-only
    INPUT = "input"  # 16 bits, read FC04, read-only
    HOLDING = "holding"  # 16 bits, read FC03, write FC06/FC16

    @property
    def is_bit(self) -> bool:
        return self in (RegisterType.COIL, RegisterType.DISCRETE_INPUT)


READ_CODES: Mapping[RegisterType, frozenset[int]] = {
    RegisterType.COIL: frozenset({1}),
    RegisterType.DISCRETE_INPUT: frozenset({2}),
    RegisterType.INPUT: frozenset({4}),
    # A few devices (the Intesis gateways) answer FC04 on the holding table too.
    RegisterType.HOLDING: frozenset({3, 4}),
}
DEFAULT_READ_CODE: Mapping[RegisterType, int] = {
    RegisterType.COIL: 1,
    RegisterType.DISCRETE_INPUT: 2,
    RegisterType.INPUT: 4,
    RegisterType.HOLDING: 3,
}
WRITE_CODES: Mapping[RegisterType, frozenset[int]] = {
    RegisterType.COIL: frozenset({5, 15}),
    RegisterType.DISCRETE_INPUT: frozenset(),
    RegisterType.INPUT: frozenset(),
    RegisterType.HOLDING: frozenset({6, 16}),
}
SINGLE_WRITE_CODES = frozenset({5, 6})  # one coil / one register per request


class Format(StrEnum):
    """How the raw value is coded in its registers (or bit)."""

    BOOL = "bool"  # one coil or discrete input
    U16 = "u16"
    S16 = "s16"
    U32 = "u32"
    S32 = "s32"
    U48 = "u48"
    U64 = "u64"
    S64 = "s64"
    F32 = "f32"  # IEEE-754 single precision

    @property
    def registers(self) -> int:
        """16-bit registers the value takes (1 for ``bool``: one bit)."""
        return {"bool": 1, "f32": 2}.get(self.value) or int(self.value[1:]) // 16

    @property
    def bits(self) -> int:
        return 1 if self is Format.BOOL else self.registers * 16

    @property
    def signed(self) -> bool:
        return self.value.startswith("s")

    @property
    def is_integer(self) -> bool:
        return self.value[0] in "us"


class Order(StrEnum):
    """Word order (which register holds the most significant word) or byte order in a register."""

    BIG = "big"  # most significant first (Modbus's own byte order)
    LITTLE = "little"  # least significant first


class DeviceKind(StrEnum):
    METER = "meter"
    IO_MODULE = "io_module"
    DALI_GATEWAY = "dali_gateway"
    LUMINAIRE_GATEWAY = "luminaire_gateway"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Citation(_Frozen):
    """Where the register map comes from: every profile cites its manual and page."""

    manual: str = Field(min_length=1)
    pages: str = Field(min_length=1)
    url: str | None = None
    checked_against: tuple[str, ...] = ()
    """Open implementations the addresses and orders were compared with (repo@commit path)."""


class Variable(_Frozen):
    """A named integer an address formula may use (channel, short address, group)."""

    min: int = 0
    max: int
    description: str = ""

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}")
        return self


class Step(_Frozen):
    """One write of a trigger sequence: ``point`` gets ``value`` (engineering units)."""

    point: str
    value: float | int | bool


def _address(value: Any) -> int | Formula:
    if isinstance(value, bool):
        raise ValueError("must be an integer or a formula")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return parse_formula(value)
        except FormulaError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(value, Formula):
        return value
    raise ValueError("must be an integer or a formula such as '7000*ch + 100*sa + 15'")


Address = Annotated[int | Formula, BeforeValidator(_address)]


class Point(_Frozen):
    """One named value of a device: where it is, how it is coded, what it means."""

    table: RegisterType
    address: Address
    """0-based protocol address (no 30001/40001 offsets), or a formula over profile variables."""
    format: Format
    count: int
    read: int
    write: int | None = None
    word_order: Order = Order.BIG
    byte_order: Order = Order.BIG
    scale: float = 1.0
    offset: float = 0.0
    """Engineering value = raw x scale + offset."""
    unit: str = ""
    semantic: str | None = None
    """TALQ attribute (``ElectricalMeter.totalActiveEnergy``) this value is, when one exists."""
    description: str = ""
    shift: int = Field(default=0, ge=0)
    width: int | None = Field(default=None, ge=1)
    """Bits of the raw integer this point uses, from ``shift`` up (default: all)."""
    flags: Mapping[str, int] = Field(default_factory=dict)
    """Named bits of the (shifted) value: ``{lamp_failure: 1}`` gives a boolean per name."""
    min: float | None = None
    max: float | None = None
    """Plausible and writable range, engineering units."""
    poll: bool = True
    """Read on every poll of the device (false: settings, read only when asked for)."""
    before_read: tuple[Step, ...] = ()
    """Writes to make before reading this point (e.g. Intesis "update all ECG status")."""
    after_write: tuple[Step, ...] = ()
    """Writes to make after writing this point (write-then-trigger devices)."""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        try:
            register = RegisterType(str(out.get("table")))
        except ValueError:
            return out  # the field validator names the problem
        out.setdefault("format", "bool" if register.is_bit else "u16")
        out.setdefault("read", DEFAULT_READ_CODE[register])
        with contextlib.suppress(ValueError):  # a bad format is named by its own validator
            out.setdefault("count", Format(out["format"]).registers)
        return out

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        register, fmt = self.table, self.format
        if isinstance(self.address, int) and not 0 <= self.address <= MODBUS_MAX_ADDRESS:
            raise ValueError(f"address {self.address} is outside 0..{MODBUS_MAX_ADDRESS}")
        if register.is_bit != (fmt is Format.BOOL):
            raise ValueError(
                f"format {fmt} does not fit table {register} "
                f"({'bool' if register.is_bit else 'a register format'} expected)"
            )
        if self.count != fmt.registers:
            raise ValueError(f"count {self.count} does not match format {fmt} ({fmt.registers})")
        if self.read not in READ_CODES[register]:
            allowed = sorted(READ_CODES[register])
            raise ValueError(f"read function {self.read} cannot read a {register} (use {allowed})")
        if self.write is not None:
            if self.write not in WRITE_CODES[register]:
                codes = str(sorted(WRITE_CODES[register]) or "none: read-only table")
                raise ValueError(f"write function {self.write} cannot write a {register} ({codes})")
            if self.write in SINGLE_WRITE_CODES and self.count != 1:
                raise ValueError(f"write function {self.write} writes one register; use 16")
            if self.shift or self.width is not None:
                raise ValueError("a bit field (shift/width) cannot be written")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if not fmt.is_integer and (self.shift or self.width is not None or self.flags):
            raise ValueError(f"shift, width and flags need an integer format, not {fmt}")
        if self.shift + self.value_bits > fmt.bits:
            raise ValueError(f"shift {self.shift} + width {self.value_bits} exceed {fmt.bits} bits")
        for name, bit in self.flags.items():
            if not 0 <= bit < self.value_bits:
                raise ValueError(f"flags.{name}: bit {bit} is outside 0..{self.value_bits - 1}")
        if self.semantic is not None:
            if self.semantic not in TALQ_ATTRIBUTES:
                raise ValueError(f"semantic {self.semantic!r} is not a TALQ 2.7.1 attribute")
            talq_unit = TALQ_ATTRIBUTES[self.semantic]
            if talq_unit != self.unit:
                raise ValueError(
                    f"unit {self.unit!r} differs from the unit of {self.semantic} "
                    f"({talq_unit!r}); scale the value into it"
                )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    @property
    def value_bits(self) -> int:
        """Bits of the value after the shift (``width``, or what is left of the format)."""
        return self.width if self.width is not None else self.format.bits - self.shift

    @property
    def variables(self) -> frozenset[str]:
        return self.address.names if isinstance(self.address, Formula) else frozenset()

    @property
    def writable(self) -> bool:
        return self.write is not None

    def address_at(self, values: Mapping[str, int]) -> int:
        """The protocol address with the point's variables bound to ``values``."""
        if isinstance(self.address, Formula):
            return self.address.evaluate(values)
        return self.address


class DeviceProfile(_Frozen):
    """A complete map of one kind of Modbus device."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$")
    kind: DeviceKind
    description: str = Field(min_length=1)
    source: Citation
    notes: str = ""
    word_order: Order = Order.BIG
    byte_order: Order = Order.BIG
    """Defaults for every point that does not set its own."""
    variables: Mapping[str, Variable] = Field(default_factory=dict)
    max_read_registers: int = Field(default=MODBUS_MAX_READ_REGISTERS, ge=1, le=125)
    max_read_bits: int = Field(default=MODBUS_MAX_READ_BITS, ge=1, le=2000)
    max_read_gap: int = Field(default=0, ge=0, le=124)
    """Unused registers (or bits) one read may span; they must be readable on the device."""
    max_write_registers: int = Field(default=MODBUS_MAX_WRITE_REGISTERS, ge=1, le=123)
    max_write_bits: int = Field(default=MODBUS_MAX_WRITE_BITS, ge=1, le=1968)
    one_point_per_write: bool = False
    """The device takes one parameter per write message (Eastron settings)."""
    points: Mapping[str, Point] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _inherit_orders(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("points"), dict):
            return data
        defaults = {k: data[k] for k in ("word_order", "byte_order") if k in data}
        points = {
            name: ({**defaults, **spec} if isinstance(spec, dict) else spec)
            for name, spec in data["points"].items()
        }
        return {**data, "points": points}

    @model_validator(mode="after")
    def _addresses_and_steps(self) -> Self:
        for name, point in self.points.items():
            where = f"points.{name}"
            undeclared = sorted(point.variables - self.variables.keys())
            if undeclared:
                raise ValueError(
                    f"{where}.address: variable(s) {', '.join(undeclared)} are not declared "
                    "under variables"
                )
            self._check_span(where, point)
            for field_name in ("before_read", "after_write"):
                for i, step in enumerate(getattr(point, field_name)):
                    self._check_step(f"{where}.{field_name}[{i}]", point, step)
        self._check_overlaps()
        return self

    def _check_overlaps(self) -> None:
        """Two fixed-address points of one table may share registers only as disjoint bit fields.

        Formula points are range-checked but not compared with each other here.
        """
        fixed = sorted(
            (point.table, point.address, name)
            for name, point in self.points.items()
            if isinstance(point.address, int)
        )
        for i, (table, first, name) in enumerate(fixed):
            point = self.points[name]
            for other_table, other_first, other_name in fixed[i + 1 :]:
                if other_table != table or other_first >= first + point.count:
                    break
                other = self.points[other_name]
                if point.count == other.count == 1 and not (_bit_mask(point) & _bit_mask(other)):
                    continue  # bit fields of one register, like level and flags
                raise ValueError(
                    f"points.{other_name}.address: overlaps points.{name} "
                    f"({table} {first}..{first + point.count - 1})"
                )

    def _check_span(self, where: str, point: Point) -> None:
        names = sorted(point.variables)
        ranges = [range(self.variables[n].min, self.variables[n].max + 1) for n in names]
        combinations = 1
        for r in ranges:
            combinations *= len(r)
        if combinations > MAX_VARIABLE_COMBINATIONS:
            raise ValueError(f"{where}.address: variables span more than 65536 combinations")
        for combo in itertools.product(*ranges):
            values = dict(zip(names, combo, strict=True))
            try:
                first = point.address_at(values)
            except FormulaError as exc:
                raise ValueError(f"{where}.address: {exc}") from None
            if first < 0 or first + point.count - 1 > MODBUS_MAX_ADDRESS:
                raise ValueError(
                    f"{where}.address: {point.address} is {first} at {values}, "
                    f"outside 0..{MODBUS_MAX_ADDRESS}"
                )

    def _check_step(self, where: str, owner: Point, step: Step) -> None:
        target = self.points.get(step.point)
        if target is None:
            raise ValueError(f"{where}.point: no point named {step.point!r}")
        if not target.writable:
            raise ValueError(f"{where}.point: {step.point!r} has no write function")
        extra = sorted(target.variables - owner.variables)
        if extra:
            raise ValueError(
                f"{where}.point: {step.point!r} needs {', '.join(extra)}, which the point "
                "that triggers it does not have"
            )
        if target.before_read or target.after_write:
            raise ValueError(f"{where}.point: a trigger point cannot have triggers of its own")
        value = float(step.value)
        if (target.min is not None and value < target.min) or (
            target.max is not None and value > target.max
        ):
            raise ValueError(
                f"{where}.value: {step.value} is outside {step.point}'s {target.min}..{target.max}"
            )

    def point(self, name: str) -> Point:
        try:
            return self.points[name]
        except KeyError:
            raise ConfigError(f"profile {self.name}: no point named {name!r}") from None


def _bit_mask(point: Point) -> int:
    """The bits of its register(s) a point uses (all of them unless it is a bit field)."""
    if point.format is Format.BOOL:
        return 1
    return ((1 << point.value_bits) - 1) << point.shift


# -- loading ----------------------------------------------------------------------------


def builtin_profile_names() -> list[str]:
    """Names of the profiles shipped in ``protocols/devices/profiles``."""
    folder = resources.files("protocols.devices").joinpath("profiles")
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def load_builtin_profile(name: str) -> DeviceProfile:
    """Load a shipped profile by name (``eastron_sdm630``, ``moxa_iologik_e1214``...)."""
    resource = resources.files("protocols.devices").joinpath("profiles", f"{name}.yaml")
    if not resource.is_file():
        known = ", ".join(builtin_profile_names())
        raise ConfigError(f"unknown device profile {name!r} (built-in: {known})")
    return parse_profile(resource.read_text(encoding="utf-8"), source=f"{name}.yaml")


def load_profile(path: Path) -> DeviceProfile:
    """Load a profile from a YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read device profile {path}: {exc}") from exc
    return parse_profile(text, source=str(path))


def parse_profile(text: str, *, source: str = "<profile>") -> DeviceProfile:
    """Parse and validate a profile from YAML text; ``source`` names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a profile is a mapping (name, kind, source, points...)")
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"] if not _is_union_tag(part))
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _is_union_tag(part: object) -> bool:
    # pydantic names the branch of a union in the location (``int``, ``function-before[...]``).
    return isinstance(part, str) and ("[" in part or part in {"int", "float", "bool", "str"})
