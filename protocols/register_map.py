"""Modbus register-map profiles: a gateway's register layout as data, loaded from TOML.

Vendor differences (base addresses, scales, word order, flag bits, which table
holds the telemetry) live in a profile file, never in ``if vendor == ...``
branches; :mod:`protocols.modbus_codec` turns registers into values with any
profile. The file format is documented in ``docs/protocol/modbus.md``; the
built-in profiles are in ``protocols/profiles/``.

Loading validates everything it can (unknown keys, overlapping registers, packed
fields that collide, addresses beyond 65535) and raises
:class:`controller.core.errors.ConfigError` naming the offending key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

from controller.core.errors import ConfigError
from controller.core.values import MAX_LUMINAIRES_PER_UNIT

__all__ = [
    "FLAG_NAMES",
    "GATEWAY_FIELDS",
    "LUMINAIRE_FIELDS",
    "Block",
    "CommandMap",
    "FieldSpec",
    "LuminaireField",
    "RegisterProfile",
    "Table",
    "WordOrder",
    "builtin_profile_names",
    "load_builtin_profile",
    "load_profile",
    "parse_profile",
]

MODBUS_MAX_ADDRESS = 0xFFFF
MODBUS_MAX_READ = 125
MODBUS_MAX_WRITE = 123

GATEWAY_FIELDS = ("map_version", "luminaire_count", "mains_present", "uptime_s")
"""Fields of the gateway block, each at an absolute address."""

LUMINAIRE_FIELDS = (
    "flags",
    "level_pct",
    "power_w",
    "voltage_v",
    "current_ma",
    "power_factor",
    "energy_wh",
    "operating_hours",
    "switch_on_count",
    "temperature_c",
)
"""Per-luminaire telemetry fields, each at an offset inside a block record."""

FLAG_NAMES = (
    "lamp_on",
    "lamp_failure",
    "driver_failure",
    "not_answering",
    "over_temperature",
    "supply_fault",
)
"""Bits of the ``flags`` field a profile must assign."""


class Table(StrEnum):
    """Which Modbus table a block is read from."""

    HOLDING = "holding"  # function code 3
    INPUT = "input"  # function code 4


class WordOrder(StrEnum):
    """Order of the two 16-bit words of a 32-bit value (bytes in a word are always big-endian)."""

    BIG = "big"  # high word at the lower address
    LITTLE = "little"  # low word at the lower address


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one value sits in registers.

    ``offset`` is relative to the record (luminaire fields) or absolute (gateway
    fields). A field may use only some bits of a 16-bit register (``shift`` and
    ``bits``), so two values can share one register. Engineering value =
    raw x ``scale``; ``minimum``/``maximum`` bound plausible values (engineering
    units), beyond which a device is violating the contract.
    """

    name: str
    offset: int
    width: int = 16
    signed: bool = False
    scale: float = 1.0
    word_order: WordOrder = WordOrder.BIG
    shift: int = 0
    bits: int = 16
    minimum: float | None = None
    maximum: float | None = None

    @property
    def registers(self) -> int:
        return self.width // 16

    @property
    def mask(self) -> int:
        """Mask of the raw value (before the shift)."""
        return (1 << self.bits) - 1

    @property
    def decimals(self) -> int:
        """Decimal places the scale carries (0.1 -> 1, 0.001 -> 3, 60 -> 0)."""
        exponent = Decimal(repr(self.scale)).normalize().as_tuple().exponent
        return max(0, -int(exponent))

    @property
    def raw_min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def raw_max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


@dataclass(frozen=True, slots=True)
class Block:
    """Luminaire-major records: short address ``s`` occupies ``base + s*stride`` .. ``+stride-1``.

    ``every_poll`` blocks are read on every poll; the others (slow counters) only
    when the driver's copy is older than its ``counters_max_age_s``.
    """

    name: str
    base: int
    stride: int
    every_poll: bool = True

    def record(self, short: int) -> int:
        """First register of ``short``'s record."""
        return self.base + short * self.stride


@dataclass(frozen=True, slots=True)
class LuminaireField:
    spec: FieldSpec
    block: Block

    def address(self, short: int) -> int:
        """Register address of this field (its first word) for DALI short address ``short``."""
        return self.block.record(short) + self.spec.offset


@dataclass(frozen=True, slots=True)
class CommandMap:
    """Holding registers written to command luminaires.

    Levels: one register per luminaire, ``level_base + short``, contiguous, so a
    single "write multiple registers" sets a whole line. ``fade_address``: one
    register holding the fade time (``fade_scale_s`` seconds per count) applied
    to the level writes that follow it; when it sits just below ``level_base``
    the fade and the levels go in one request.
    """

    level_base: int
    fade_address: int | None = None
    fade_scale_s: float = 0.1

    @property
    def fade_adjacent(self) -> bool:
        return self.fade_address is not None and self.fade_address == self.level_base - 1


@dataclass(frozen=True, slots=True)
class RegisterProfile:
    """A complete register map for one kind of gateway."""

    name: str
    description: str
    map_version: int
    read_table: Table
    max_read_registers: int
    max_write_registers: int
    max_read_gap: int
    gateway: Mapping[str, FieldSpec]
    command: CommandMap
    blocks: tuple[Block, ...]
    fields: Mapping[str, LuminaireField]
    flag_bits: Mapping[str, int]

    def field(self, name: str) -> LuminaireField:
        return self.fields[name]


# -- loading ----------------------------------------------------------------------------


def builtin_profile_names() -> list[str]:
    """Names of the profiles shipped in ``protocols/profiles``."""
    folder = resources.files("protocols").joinpath("profiles")
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def load_builtin_profile(name: str = "reference") -> RegisterProfile:
    """Load a shipped profile by name (``reference``, ``acme_dali_gw``...)."""
    resource = resources.files("protocols").joinpath("profiles", f"{name}.toml")
    if not resource.is_file():
        known = ", ".join(builtin_profile_names())
        raise ConfigError(f"unknown Modbus profile {name!r} (built-in: {known})")
    return parse_profile(resource.read_text(encoding="utf-8"), source=f"{name}.toml")


def load_profile(path: Path) -> RegisterProfile:
    """Load a profile from a TOML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read Modbus profile {path}: {exc}") from exc
    return parse_profile(text, source=str(path))


def parse_profile(text: str, *, source: str = "<profile>") -> RegisterProfile:
    """Parse and validate a profile from TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    return _Parser(source).profile(data)


_FIELD_KEYS = {
    "offset",
    "address",
    "block",
    "width",
    "signed",
    "scale",
    "word_order",
    "shift",
    "bits",
    "min",
    "max",
}


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}")

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key.rsplit(".", 1)[-1])
        if not isinstance(value, dict):
            raise self.fail(key, "missing table")
        return value

    def only(self, data: Mapping[str, Any], key: str, allowed: set[str]) -> None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise self.fail(key, f"unknown key(s) {', '.join(unknown)}")

    def integer(
        self,
        data: Mapping[str, Any],
        key: str,
        name: str,
        *,
        low: int = 0,
        high: int = MODBUS_MAX_ADDRESS,
        default: int | None = None,
    ) -> int:
        value = data.get(name, default)
        if value is None:
            raise self.fail(f"{key}.{name}", "required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{key}.{name}", f"must be an integer, got {value!r}")
        if not low <= value <= high:
            raise self.fail(f"{key}.{name}", f"must be {low}..{high}, got {value}")
        return value

    def number(
        self, data: Mapping[str, Any], key: str, name: str, default: float | None
    ) -> float | None:
        value = data.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{key}.{name}", f"must be a number, got {value!r}")
        return float(value)

    def text(self, data: Mapping[str, Any], key: str, name: str, default: str) -> str:
        value = data.get(name, default)
        if not isinstance(value, str):
            raise self.fail(f"{key}.{name}", f"must be a string, got {value!r}")
        return value

    def boolean(self, data: Mapping[str, Any], key: str, name: str, default: bool) -> bool:
        value = data.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key}.{name}", f"must be true or false, got {value!r}")
        return value

    def profile(self, data: Mapping[str, Any]) -> RegisterProfile:
        self.only(
            data,
            "(top level)",
            {"profile", "gateway", "command", "block", "fields", "flag_bits"},
        )
        head = self.table(data, "profile")
        self.only(
            head,
            "profile",
            {
                "name",
                "description",
                "map_version",
                "read_table",
                "max_read_registers",
                "max_write_registers",
                "max_read_gap",
            },
        )
        name = self.text(head, "profile", "name", "")
        if not name:
            raise self.fail("profile.name", "required")
        read_table_name = self.text(head, "profile", "read_table", "input")
        try:
            read_table = Table(read_table_name)
        except ValueError:
            raise self.fail("profile.read_table", "must be 'input' or 'holding'") from None

        gateway = self.gateway(self.table(data, "gateway"))
        command = self.command(self.table(data, "command"))
        blocks = self.blocks(data.get("block"))
        fields = self.fields(self.table(data, "fields"), blocks)
        flag_bits = self.flag_bits(self.table(data, "flag_bits"), fields["flags"].spec)
        profile = RegisterProfile(
            name=name,
            description=self.text(head, "profile", "description", ""),
            map_version=self.integer(head, "profile", "map_version", high=0xFFFF),
            read_table=read_table,
            max_read_registers=self.integer(
                head, "profile", "max_read_registers", low=1, high=MODBUS_MAX_READ, default=125
            ),
            max_write_registers=self.integer(
                head, "profile", "max_write_registers", low=1, high=MODBUS_MAX_WRITE, default=123
            ),
            max_read_gap=self.integer(head, "profile", "max_read_gap", high=125, default=0),
            gateway=gateway,
            command=command,
            blocks=blocks,
            fields=fields,
            flag_bits=flag_bits,
        )
        self.check_layout(profile)
        return profile

    def spec(self, data: Any, key: str, *, absolute: bool) -> tuple[FieldSpec, str | None]:
        if not isinstance(data, dict):
            raise self.fail(key, "must be a table like { offset = 0 }")
        self.only(data, key, _FIELD_KEYS)
        where = "address" if absolute else "offset"
        if ("offset" if absolute else "address") in data:
            raise self.fail(key, f"use '{where}' here")
        width = self.integer(data, key, "width", default=16, high=32)
        if width not in (16, 32):
            raise self.fail(f"{key}.width", f"must be 16 or 32, got {width}")
        bits = self.integer(data, key, "bits", low=1, high=width, default=width)
        shift = self.integer(data, key, "shift", high=15, default=0)
        if (bits != width or shift) and width != 16:
            raise self.fail(key, "bit fields (shift/bits) are only allowed in 16-bit registers")
        if shift + bits > 16 and width == 16:
            raise self.fail(key, f"shift {shift} + bits {bits} do not fit in 16 bits")
        scale = self.number(data, key, "scale", 1.0)
        assert scale is not None
        if scale <= 0:
            raise self.fail(f"{key}.scale", f"must be positive, got {scale}")
        order_name = self.text(data, key, "word_order", "big")
        try:
            word_order = WordOrder(order_name)
        except ValueError:
            raise self.fail(f"{key}.word_order", "must be 'big' or 'little'") from None
        block = data.get("block")
        if block is not None and not isinstance(block, str):
            raise self.fail(f"{key}.block", "must be a block name")
        spec = FieldSpec(
            name=key.rsplit(".", 1)[-1],
            offset=self.integer(data, key, where),
            width=width,
            signed=self.boolean(data, key, "signed", False),
            scale=scale,
            word_order=word_order,
            shift=shift,
            bits=bits,
            minimum=self.number(data, key, "min", None),
            maximum=self.number(data, key, "max", None),
        )
        return spec, block

    def gateway(self, data: Mapping[str, Any]) -> dict[str, FieldSpec]:
        self.only(data, "gateway", set(GATEWAY_FIELDS))
        out: dict[str, FieldSpec] = {}
        for name in GATEWAY_FIELDS:
            if name not in data:
                raise self.fail(f"gateway.{name}", "required")
            spec, block = self.spec(data[name], f"gateway.{name}", absolute=True)
            if block is not None:
                raise self.fail(f"gateway.{name}.block", "gateway fields take an address")
            out[name] = spec
        return out

    def command(self, data: Mapping[str, Any]) -> CommandMap:
        self.only(data, "command", {"level_base", "fade_address", "fade_scale_s"})
        fade = data.get("fade_address")
        command = CommandMap(
            level_base=self.integer(
                data, "command", "level_base", high=MODBUS_MAX_ADDRESS - MAX_LUMINAIRES_PER_UNIT + 1
            ),
            fade_address=None if fade is None else self.integer(data, "command", "fade_address"),
            fade_scale_s=self.number(data, "command", "fade_scale_s", 0.1) or 0.0,
        )
        if command.fade_scale_s <= 0:
            raise self.fail("command.fade_scale_s", "must be positive")
        if (
            command.fade_address is not None
            and command.level_base
            <= command.fade_address
            < command.level_base + MAX_LUMINAIRES_PER_UNIT
        ):
            raise self.fail("command.fade_address", "overlaps the level registers")
        return command

    def blocks(self, data: Any) -> tuple[Block, ...]:
        if not isinstance(data, list) or not data:
            raise self.fail("block", "at least one [[block]] is required")
        out: list[Block] = []
        for i, entry in enumerate(data):
            key = f"block[{i}]"
            if not isinstance(entry, dict):
                raise self.fail(key, "must be a table")
            self.only(entry, key, {"name", "base", "stride", "every_poll"})
            name = self.text(entry, key, "name", "")
            if not name or any(b.name == name for b in out):
                raise self.fail(f"{key}.name", f"must be a unique non-empty name, got {name!r}")
            out.append(
                Block(
                    name=name,
                    base=self.integer(entry, key, "base"),
                    stride=self.integer(entry, key, "stride", low=1, high=MODBUS_MAX_READ),
                    every_poll=self.boolean(entry, key, "every_poll", True),
                )
            )
        if not any(b.every_poll for b in out):
            raise self.fail("block", "at least one block must have every_poll = true")
        return tuple(out)

    def fields(
        self, data: Mapping[str, Any], blocks: tuple[Block, ...]
    ) -> dict[str, LuminaireField]:
        self.only(data, "fields", set(LUMINAIRE_FIELDS))
        by_name = {b.name: b for b in blocks}
        out: dict[str, LuminaireField] = {}
        for name in LUMINAIRE_FIELDS:
            key = f"fields.{name}"
            if name not in data:
                raise self.fail(key, "required")
            spec, block_name = self.spec(data[name], key, absolute=False)
            if block_name is None:
                if len(blocks) != 1:
                    raise self.fail(f"{key}.block", "required when there are several blocks")
                block_name = blocks[0].name
            block = by_name.get(block_name)
            if block is None:
                raise self.fail(f"{key}.block", f"no block named {block_name!r}")
            if spec.offset + spec.registers > block.stride:
                raise self.fail(key, f"does not fit in the {block.stride}-register record")
            out[name] = LuminaireField(spec, block)
        # Bits used by two fields in the same register would corrupt both.
        used: dict[tuple[str, int], tuple[int, str]] = {}
        for name, lf in out.items():
            for word in range(lf.spec.registers):
                spot = (lf.block.name, lf.spec.offset + word)
                mask = (lf.spec.mask << lf.spec.shift) if lf.spec.width == 16 else 0xFFFF
                if spot in used and used[spot][0] & mask:
                    raise self.fail(
                        f"fields.{name}", f"overlaps fields.{used[spot][1]} in register {spot[1]}"
                    )
                prev = used.get(spot, (0, name))
                used[spot] = (prev[0] | mask, prev[1])
        return out

    def flag_bits(self, data: Mapping[str, Any], flags: FieldSpec) -> dict[str, int]:
        self.only(data, "flag_bits", set(FLAG_NAMES))
        out: dict[str, int] = {}
        for name in FLAG_NAMES:
            bit = self.integer(data, "flag_bits", name, high=flags.bits - 1)
            if bit in out.values():
                raise self.fail(f"flag_bits.{name}", f"bit {bit} is assigned twice")
            out[name] = bit
        return out

    def check_layout(self, profile: RegisterProfile) -> None:
        """Refuse maps whose register ranges overlap or run past 65535."""
        spans: list[tuple[int, int, str]] = []
        for name, spec in profile.gateway.items():
            spans.append((spec.offset, spec.offset + spec.registers, f"gateway.{name}"))
        for block in profile.blocks:
            end = block.base + MAX_LUMINAIRES_PER_UNIT * block.stride
            spans.append((block.base, end, f"block {block.name}"))
        command_spans: list[tuple[int, int, str]] = [
            (
                profile.command.level_base,
                profile.command.level_base + MAX_LUMINAIRES_PER_UNIT,
                "command.level_base",
            )
        ]
        if profile.command.fade_address is not None:
            fade = profile.command.fade_address
            command_spans.append((fade, fade + 1, "command.fade_address"))
        if profile.read_table is Table.HOLDING:
            spans.extend(command_spans)
        for _start, end, what in spans + command_spans:
            if end - 1 > MODBUS_MAX_ADDRESS:
                raise self.fail(what, f"runs past register {MODBUS_MAX_ADDRESS}")
        ordered = sorted(spans)
        for (a_start, a_end, a_what), (b_start, _b_end, b_what) in pairwise(ordered):
            if b_start < a_end:
                raise self.fail(b_what, f"overlaps {a_what} (registers {a_start}..{a_end - 1})")
