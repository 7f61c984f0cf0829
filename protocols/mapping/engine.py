"""The mapping engine: (topic, payload) -> readings and availability; level -> (topic, payload).

Pure and stateless apart from the compiled profile: the thin async owner (a
gateway over a mapped MQTT device, wired by the controller) subscribes to
:meth:`MappingEngine.subscriptions`, feeds every message to
:meth:`MappingEngine.decode`, and publishes what :meth:`MappingEngine.encode`
returns. One device is one luminaire; ``devices`` maps each device's topic id
(the ``{device}`` of the profile's topics) to its address.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.core.errors import ProtocolViolation
from controller.core.values import Address, DeviceFlag, Level
from protocols.lorawan.codec import Telemetry
from protocols.lorawan.topic_template import TopicTemplate, check_level
from protocols.mapping.expression import Expression
from protocols.mapping.json_path import JsonPath
from protocols.mapping.profile import (
    INTEGER_FIELDS,
    UNITS,
    FieldMap,
    MappingProfile,
    PayloadFormat,
    StateTopic,
)


@dataclass(frozen=True, slots=True)
class MappedState:
    """What one state message says about the luminaire at ``address`` (a partial reading)."""

    address: Address
    telemetry: Telemetry


@dataclass(frozen=True, slots=True)
class MappedAvailability:
    address: Address
    online: bool


@dataclass(frozen=True, slots=True)
class Publication:
    """A message to publish: a command for one device."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class _CompiledField:
    name: str
    path: JsonPath | None
    expr: Expression | None
    lookup: Mapping[str, Any] | None
    factor: float
    offset: float
    optional: bool


@dataclass(frozen=True, slots=True)
class _CompiledState:
    template: TopicTemplate
    format: PayloadFormat
    fields: tuple[_CompiledField, ...]
    flags: tuple[tuple[DeviceFlag, JsonPath, Any], ...]


class MappingEngine:
    """A compiled :class:`MappingProfile` over a set of devices."""

    def __init__(self, profile: MappingProfile, devices: Mapping[str, Address]) -> None:
        if not devices:
            raise ValueError("a mapped gateway needs at least one device")
        for device in devices:
            check_level(device, "device id")
        if len(set(devices.values())) != len(devices):
            raise ValueError("two devices share an address")
        self.profile = profile
        self.devices = dict(devices)
        self._by_address = {address: device for device, address in devices.items()}
        self._states = tuple(_compile_state(state) for state in profile.states)
        availability = profile.availability
        self._availability = None if availability is None else TopicTemplate(availability.topic)
        self._command = TopicTemplate(profile.command.topic)
        self._value = None if profile.command.value is None else Expression(profile.command.value)
        off = profile.command.off_command
        self._off_topic = None if off is None else TopicTemplate(off.topic)

    def subscriptions(self) -> tuple[str, ...]:
        """One wildcard per state topic (and availability), covering every device."""
        subs = [state.template.wildcard() for state in self._states]
        if self._availability is not None:
            subs.append(self._availability.wildcard())
        return tuple(subs)

    def decode(self, topic: str, payload: bytes) -> MappedState | MappedAvailability | None:
        """The message's meaning; ``None`` for a topic or device not in this profile.

        A payload that breaks the profile (not JSON, a missing field, a string where
        a number belongs, a value outside its field's range) raises ``ProtocolViolation``.
        """
        if self._availability is not None:
            values = self._availability.parse(topic)
            if values is not None:
                address = self.devices.get(values["device"])
                return (
                    None if address is None else self._decode_availability(address, topic, payload)
                )
        for state in self._states:
            values = state.template.parse(topic)
            if values is None:
                continue
            address = self.devices.get(values["device"])
            if address is None:
                return None
            return MappedState(address, _decode_state(state, topic, payload))
        return None

    def encode(self, address: Address, level: Level) -> Publication:
        """The command that sets the luminaire at ``address`` to ``level``."""
        device = self._by_address.get(address)
        if device is None:
            raise ValueError(f"no device at address {address}")
        if not 0 <= level <= 100:
            raise ValueError(f"level must be 0..100 %, got {level}")
        command = self.profile.command
        if level == 0 and command.off_command is not None and self._off_topic is not None:
            topic = self._off_topic.fill(device=device)
            template = command.off_command.payload
        else:
            topic, template = self._command.fill(device=device), command.payload
        value = level if self._value is None else self._value.evaluate({}, {"level": float(level)})
        text = (
            template.replace("{level}", str(int(level)))
            .replace("{value}", str(round(value)))
            .replace("{on}", "true" if level > 0 else "false")
            .replace("{ON}", "ON" if level > 0 else "OFF")
            .replace("{device}", device)
        )
        return Publication(topic, text.encode("utf-8"), command.qos, command.retain)

    def _decode_availability(
        self, address: Address, topic: str, payload: bytes
    ) -> MappedAvailability:
        availability = self.profile.availability
        assert availability is not None  # only called when the profile has one
        text = payload.decode("utf-8", errors="replace")
        if text == availability.online:
            return MappedAvailability(address, True)
        if text == availability.offline:
            return MappedAvailability(address, False)
        raise ProtocolViolation(
            f"{topic}: availability must be {availability.online!r} or {availability.offline!r}, "
            f"got {text[:40]!r}"
        )


def _compile_state(state: StateTopic) -> _CompiledState:
    fields = []
    for name, spec in state.fields.items():
        factor, offset = (1.0, 0.0) if name == "lamp_on" else _unit(name, spec)
        fields.append(
            _CompiledField(
                name=name,
                path=None if spec.path is None else JsonPath(spec.path),
                expr=None if spec.expr is None else Expression(spec.expr),
                lookup=spec.map,
                factor=factor * spec.scale,
                offset=offset,
                optional=spec.optional,
            )
        )
    flags = tuple((flag, JsonPath(spec.path), spec.equals) for flag, spec in state.flags.items())
    return _CompiledState(TopicTemplate(state.topic), state.format, tuple(fields), flags)


def _unit(name: str, spec: FieldMap) -> tuple[float, float]:
    units = UNITS[name]
    unit = spec.unit if spec.unit is not None else next(iter(units))
    factor, offset = units[unit]
    return float(factor), float(offset)


def _decode_state(state: _CompiledState, topic: str, payload: bytes) -> Telemetry:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation(f"{topic}: payload is not UTF-8") from None
    if state.format is PayloadFormat.TEXT:
        doc: Any = text.strip()
    else:
        try:
            doc = json.loads(text, parse_constant=_no_constant)
        except ValueError as exc:
            raise ProtocolViolation(f"{topic}: payload is not JSON ({exc})") from None
    values: dict[str, Any] = {}
    for spec in state.fields:
        if spec.optional and spec.path is not None and not spec.path.has(doc):
            continue
        try:
            values[spec.name] = _field_value(spec, doc)
        except ProtocolViolation as exc:
            raise ProtocolViolation(f"{topic}: {spec.name}: {exc}") from None
    if state.flags:
        values["flags"] = frozenset(
            flag for flag, path, equals in state.flags if _flag_raised(topic, doc, path, equals)
        )
    return Telemetry(**values)


def _field_value(spec: _CompiledField, doc: Any) -> Any:
    if spec.expr is not None:
        raw: Any = spec.expr.evaluate(doc)
    else:
        assert spec.path is not None  # a field has a path or an expression
        raw = spec.path.get(doc)
    if spec.lookup is not None:
        key = _as_key(raw)
        if key not in spec.lookup:
            raise ProtocolViolation(f"{raw!r} is not one of {sorted(spec.lookup)}")
        raw = spec.lookup[key]
    if spec.name == "lamp_on":
        if not isinstance(raw, bool):
            raise ProtocolViolation(f"must be true or false (add a map), got {raw!r}")
        return raw
    number = _number(raw)
    value = number * spec.factor + spec.offset
    if spec.name in INTEGER_FIELDS:
        value = round(value)
    if value < 0 and spec.name != "temperature_c":
        raise ProtocolViolation(f"must not be negative, got {value!r}")
    if spec.name == "level_pct" and value > 100:
        raise ProtocolViolation(f"level must be 0..100 %, got {value!r}")
    if spec.name == "power_factor" and value > 1:
        raise ProtocolViolation(f"power factor must be 0..1, got {value!r}")
    return value


def _number(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ProtocolViolation(f"must be a number, got {raw!r}")
    if not isinstance(raw, int | float | str):
        raise ProtocolViolation(f"must be a number, got {raw!r}")
    try:
        value = float(raw)
    except OverflowError:  # an integer beyond any float: JSON allows it
        raise ProtocolViolation(f"is out of range ({len(str(raw))} digits)") from None
    except ValueError:
        raise ProtocolViolation(f"must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ProtocolViolation(f"must be finite, got {raw!r}")
    return value


def _as_key(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def _flag_raised(topic: str, doc: Any, path: JsonPath, equals: Any) -> bool:
    try:
        value = path.get(doc)
    except ProtocolViolation as exc:
        raise ProtocolViolation(f"{topic}: flag {exc}") from None
    if equals is None:
        return bool(value) and value not in ("0", "false", "off", "OFF")
    return _as_key(value) == _as_key(equals)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
