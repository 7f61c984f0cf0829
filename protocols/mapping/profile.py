"""Mapping profiles: how a vendor's MQTT lamp controller maps onto our readings and commands.

A profile is a YAML or TOML file an integrator writes instead of code; the format
is documented in ``docs/protocol/mqtt-mapping.md`` and the shipped profiles are in
``protocols/mapping/profiles/``. Loading validates everything (unknown keys, a
field given both a path and an expression, a unit that does not fit the field, an
expression that does not parse, a topic placeholder other than ``{device}``) and
raises :class:`controller.core.errors.ConfigError` with one line per problem,
each naming the field (``states[1].fields.energy_wh.unit: ...``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from controller.core.errors import ConfigError
from controller.core.values import DeviceFlag
from protocols.lorawan.topic_template import TopicTemplate
from protocols.mapping.expression import Expression
from protocols.mapping.json_path import JsonPath

TargetField = Literal[
    "lamp_on",
    "level_pct",
    "power_w",
    "voltage_v",
    "current_ma",
    "power_factor",
    "energy_wh",
    "operating_hours",
    "switch_on_count",
    "temperature_c",
]

UNITS: Final[Mapping[str, Mapping[str, tuple[float, float]]]] = {
    # field -> unit -> (factor, offset): value in our unit = raw x factor + offset
    "level_pct": {"%": (1, 0), "fraction": (100, 0), "byte": (100 / 255, 0)},
    "power_w": {"W": (1, 0), "kW": (1000, 0)},
    "voltage_v": {"V": (1, 0), "kV": (1000, 0)},
    "current_ma": {"mA": (1, 0), "A": (1000, 0)},
    "power_factor": {"ratio": (1, 0), "%": (0.01, 0)},
    "energy_wh": {"Wh": (1, 0), "kWh": (1000, 0), "Wmin": (1 / 60, 0)},
    "operating_hours": {"h": (1, 0), "min": (1 / 60, 0), "s": (1 / 3600, 0)},
    "switch_on_count": {"count": (1, 0)},
    "temperature_c": {"C": (1, 0), "F": (5 / 9, -32 * 5 / 9)},
}
"""Units each numeric field accepts; the first is ours (the default)."""

INTEGER_FIELDS: Final = frozenset(
    {"level_pct", "current_ma", "energy_wh", "operating_hours", "switch_on_count"}
)
TOPIC_PLACEHOLDERS: Final = frozenset({"device"})

Scalar = str | int | float | bool


class PayloadFormat(StrEnum):
    """How a state payload is read: a JSON document, or plain text taken as ``$``."""

    JSON = "json"
    TEXT = "text"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def _topic(value: str) -> str:
    template = TopicTemplate(value)
    unknown = set(template.names) - TOPIC_PLACEHOLDERS
    if unknown:
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)}: only {{device}} is allowed")
    if "device" not in template.names:
        raise ValueError("a topic must contain {device}")
    return value


Topic = Annotated[str, AfterValidator(_topic)]
"""A topic template whose only placeholder is ``{device}``."""


class FieldMap(_Strict):
    """One of our fields: a ``path`` or an ``expr``, then ``map``, ``unit``, ``scale``."""

    path: str | None = None
    expr: str | None = None
    map: dict[str, Scalar] | None = None
    """Lookup by the raw value as text (``"ON"``, ``"true"``, ``"1"``): for strings and booleans."""
    unit: str | None = None
    scale: float = 1.0
    optional: bool = False
    """A missing path is skipped instead of refused (devices that omit fields)."""

    @field_validator("path")
    @classmethod
    def _path_parses(cls, value: str | None) -> str | None:
        if value is not None:
            JsonPath(value)
        return value

    @field_validator("expr")
    @classmethod
    def _expr_parses(cls, value: str | None) -> str | None:
        if value is not None:
            Expression(value)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> FieldMap:
        if (self.path is None) == (self.expr is None):
            raise ValueError("give exactly one of path or expr")
        if self.expr is not None and self.map is not None:
            raise ValueError("map applies to a path, not to an expr")
        return self


class FlagMap(_Strict):
    """A flag raised when the value at ``path`` equals ``equals`` (default: is true / non-zero)."""

    path: str
    equals: Scalar | None = None

    @field_validator("path")
    @classmethod
    def _path_parses(cls, value: str) -> str:
        JsonPath(value)
        return value


class StateTopic(_Strict):
    """A topic the device publishes its state on, and what each of our fields is in it."""

    topic: Topic
    format: PayloadFormat = PayloadFormat.JSON
    fields: dict[TargetField, FieldMap] = Field(default_factory=dict)
    flags: dict[DeviceFlag, FlagMap] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _units_fit(self) -> StateTopic:
        if not self.fields and not self.flags:
            raise ValueError("a state topic must map at least one field or flag")
        for name, spec in self.fields.items():
            if name == "lamp_on":
                if spec.unit is not None or spec.scale != 1.0:
                    raise ValueError("fields.lamp_on: a boolean has no unit or scale")
                continue
            if spec.unit is not None and spec.unit not in UNITS[name]:
                raise ValueError(
                    f"fields.{name}.unit: {spec.unit!r} is not one of {sorted(UNITS[name])}"
                )
        return self


class Availability(_Strict):
    """The device's availability topic (often its MQTT Last Will) and its two payloads."""

    topic: Topic
    online: str = "online"
    offline: str = "offline"


class CommandTemplate(_Strict):
    """How a level is sent: a topic and a ``payload`` template.

    The payload's placeholders ``{level}``, ``{value}``, ``{on}`` (true/false), ``{ON}``
    (ON/OFF) and ``{device}`` are replaced as text, so JSON braces need no escaping.

    ``{value}`` is ``value`` (an expression of ``level``, rounded to an integer) for
    devices that do not take percent; ``off_command`` optionally replaces topic and payload
    for level 0 (devices that switch off with a separate command).
    """

    topic: Topic
    payload: str
    value: str | None = None
    off_command: OffCommand | None = None
    retain: bool = False
    qos: Annotated[int, Field(ge=0, le=2)] = 1

    @field_validator("value")
    @classmethod
    def _value_parses(cls, value: str | None) -> str | None:
        if value is not None:
            Expression(value)
        return value


class OffCommand(_Strict):
    topic: Topic
    payload: str


class MappingProfile(_Strict):
    """A whole profile: one device kind, one luminaire per device."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    source: Annotated[str, Field(min_length=1)]
    """Where the vendor documents these topics and payloads (cite it)."""
    states: Annotated[list[StateTopic], Field(min_length=1)]
    command: CommandTemplate
    availability: Availability | None = None

    @model_validator(mode="after")
    def _distinct_topics(self) -> MappingProfile:
        topics = [s.topic for s in self.states]
        if self.availability is not None:
            topics.append(self.availability.topic)
        duplicates = sorted({t for t in topics if topics.count(t) > 1})
        if duplicates:
            raise ValueError(f"a topic is mapped twice: {duplicates}")
        return self


CommandTemplate.model_rebuild()


def parse_profile(data: Mapping[str, Any], source: str) -> MappingProfile:
    """Validate a profile already read into a mapping; ``source`` names it in errors."""
    try:
        return MappingProfile.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(part) for part in error['loc']) or '(profile)'}: {error['msg']}"
            for error in exc.errors()
        ]
        raise ConfigError(f"mapping profile {source}:\n  " + "\n  ".join(lines)) from None


def load_profile(path: Path) -> MappingProfile:
    """Read and validate a ``.yaml``/``.yml`` or ``.toml`` profile."""
    text = path.read_text(encoding="utf-8")
    return parse_profile(_read(text, path.suffix, str(path)), str(path))


def _read(text: str, suffix: str, source: str) -> Mapping[str, Any]:
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"mapping profile {source}: use .yaml, .yml or .toml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"mapping profile {source}: not valid {suffix[1:].upper()}: {exc}"
        ) from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"mapping profile {source}: the top level must be a table/mapping")
    return data


def builtin_profile_names() -> tuple[str, ...]:
    folder = resources.files("protocols.mapping") / "profiles"
    return tuple(
        sorted(
            p.name.rsplit(".", 1)[0]
            for p in folder.iterdir()
            if p.name.endswith((".yaml", ".toml"))
        )
    )


def load_builtin_profile(name: str) -> MappingProfile:
    folder = resources.files("protocols.mapping") / "profiles"
    for suffix in (".yaml", ".toml"):
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return parse_profile(_read(candidate.read_text(encoding="utf-8"), suffix, name), name)
    raise ConfigError(
        f"no built-in mapping profile {name!r} (known: {', '.join(builtin_profile_names())})"
    )
