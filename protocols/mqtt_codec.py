"""Pure codec of the MQTT contract: payload bytes <-> the value types of ``controller.core.values``.

No I/O, no clock. The contract and one JSON Schema per payload are in
``docs/protocol/mqtt.md`` and ``docs/protocol/schemas/``; the unit tests check that
what this module encodes validates against those schemas and that what it refuses
the schemas refuse too.

Decoding is strict: UTF-8 JSON, no duplicate keys, no NaN/Infinity, no unknown
keys, ``true``/``false`` never accepted as numbers, integers never given as
``1.0``, every range checked. Any problem raises
:class:`controller.core.errors.ProtocolViolation` naming the field and what is wrong.
Encoding a value outside the contract (a level of 150, a naive datetime) is a
programming error and raises ``ValueError``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from controller.core.errors import ProtocolViolation
from controller.core.values import (
    Address,
    CommandResult,
    CommandSource,
    DeviceFlag,
    GatewayReading,
    Level,
    Reading,
)

MAX_ADDRESS: Final = 65_535
MAX_FADE_S: Final = 3_600.0
MAX_COUNTER: Final = 2**53 - 1
"""Largest counter (Wh, hours, switch-ons, uptime) that survives a JavaScript consumer."""
MAX_ID_LEN: Final = 64
MAX_REASON_LEN: Final = 200

_ID_RE: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_ADDRESS_RE: Final = re.compile(r"0|[1-9][0-9]{0,4}")
_TS_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)

JsonObject = dict[str, Any]

_COMMAND_KEYS: Final = frozenset({"id", "source", "fade_s", "levels", "ts"})
_ACK_KEYS: Final = frozenset({"id", "results", "ts"})
_ACK_ERROR_KEYS: Final = frozenset({"id", "error", "ts"})
_OK_KEYS: Final = frozenset({"ok"})
_NOT_OK_KEYS: Final = frozenset({"ok", "reason"})
_STATE_KEYS: Final = frozenset({"ts", "gateway", "luminaires"})
_GATEWAY_KEYS: Final = frozenset({"mains_present", "uptime_s"})
_GATEWAY_OPTIONAL: Final = frozenset({"map_version"})
_TS_KEY: Final = frozenset({"ts"})
_EVENTS_KEYS: Final = frozenset({"events"})
_EVENT_KEYS: Final = frozenset({"address", "flag", "change", "ts"})


class Availability(StrEnum):
    """The retained payload of ``.../availability``: plain UTF-8 text, not JSON."""

    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Command:
    """One batched dimming command: ``.../cmd``."""

    command_id: str
    source: CommandSource
    fade_s: float
    levels: Mapping[Address, Level]
    at: datetime


@dataclass(frozen=True, slots=True)
class Ack:
    """The gateway's answer to one command: ``.../ack``.

    Either per-address outcomes (``accepted`` + ``rejected`` cover exactly the
    commanded addresses) or ``error``: the gateway refused the whole command
    (typically because it could not decode it).
    """

    command_id: str
    at: datetime
    accepted: frozenset[Address] = frozenset()
    rejected: Mapping[Address, str] = field(default_factory=dict)
    error: str | None = None

    def result(self) -> CommandResult:
        return CommandResult(
            command_id=self.command_id, accepted=self.accepted, rejected=dict(self.rejected)
        )


@dataclass(frozen=True, slots=True)
class FlagChange:
    """A luminaire flag raised or cleared at ``at``: one entry of ``.../events``."""

    address: Address
    flag: DeviceFlag
    raised: bool
    at: datetime


# --------------------------------------------------------------------------- encoding


def _ts(at: datetime) -> str:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"timestamps must be timezone-aware, got {at!r}")
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _address_key(address: int) -> str:
    if isinstance(address, bool) or not isinstance(address, int):
        raise ValueError(f"address must be an int, got {address!r}")
    if not 0 <= address <= MAX_ADDRESS:
        raise ValueError(f"address must be 0..{MAX_ADDRESS}, got {address}")
    return str(address)


def _check_id(command_id: str) -> str:
    if not _ID_RE.fullmatch(command_id):
        raise ValueError(f"command id must match {_ID_RE.pattern}, got {command_id!r}")
    return command_id


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()


def encode_command(command: Command) -> bytes:
    if not command.levels:
        raise ValueError("a command needs at least one level")
    if not 0.0 <= command.fade_s <= MAX_FADE_S:
        raise ValueError(f"fade_s must be 0..{MAX_FADE_S:g}, got {command.fade_s}")
    levels: JsonObject = {}
    for address, value in command.levels.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise ValueError(f"level of address {address} must be an int 0..100, got {value!r}")
        levels[_address_key(address)] = value
    return _dumps(
        {
            "id": _check_id(command.command_id),
            "source": CommandSource(command.source).value,
            "fade_s": command.fade_s,
            "levels": levels,
            "ts": _ts(command.at),
        }
    )


def encode_ack(ack: Ack) -> bytes:
    out: JsonObject = {"id": _check_id(ack.command_id)}
    if ack.error is not None:
        if ack.accepted or ack.rejected:
            raise ValueError("an ack carries either results or an error, not both")
        out["error"] = ack.error[:MAX_REASON_LEN] or "refused"
    else:
        if not ack.accepted and not ack.rejected:
            raise ValueError("an ack needs at least one result")
        overlap = ack.accepted & set(ack.rejected)
        if overlap:
            raise ValueError(f"addresses both accepted and rejected: {sorted(overlap)}")
        results: JsonObject = {}
        for address in sorted(ack.accepted):
            results[_address_key(address)] = {"ok": True}
        for address, reason in sorted(ack.rejected.items()):
            results[_address_key(address)] = {
                "ok": False,
                "reason": reason[:MAX_REASON_LEN] or "rejected",
            }
        out["results"] = results
    out["ts"] = _ts(ack.at)
    return _dumps(out)


def _reading_object(reading: Reading, gateway_at: datetime) -> JsonObject:
    out: JsonObject = {
        "lamp_on": reading.lamp_on,
        "level_pct": reading.level_pct,
        "power_w": reading.power_w,
        "voltage_v": reading.voltage_v,
        "current_ma": reading.current_ma,
        "power_factor": reading.power_factor,
        "energy_wh": reading.energy_wh,
        "operating_hours": reading.operating_hours,
        "switch_on_count": reading.switch_on_count,
        "temperature_c": reading.temperature_c,
        "flags": sorted(DeviceFlag(flag).value for flag in reading.flags),
    }
    if reading.at != gateway_at:
        out["ts"] = _ts(reading.at)
    return out


def encode_state(reading: GatewayReading) -> bytes:
    """Encode one gateway's state; a luminaire's ``ts`` is written only if it differs."""
    luminaires: JsonObject = {}
    for address, lum in sorted(reading.luminaires.items()):
        if lum.address != address:
            raise ValueError(f"reading keyed {address} is for address {lum.address}")
        luminaires[_address_key(address)] = _reading_object(lum, reading.at)
    return _dumps(
        {
            "ts": _ts(reading.at),
            "gateway": {
                "mains_present": reading.mains_present,
                "uptime_s": reading.uptime_s,
                "map_version": reading.map_version,
            },
            "luminaires": luminaires,
        }
    )


def encode_events(changes: Sequence[FlagChange]) -> bytes:
    if not changes:
        raise ValueError("an events message needs at least one change")
    return _dumps(
        {
            "events": [
                {
                    "address": int(_address_key(change.address)),
                    "flag": DeviceFlag(change.flag).value,
                    "change": "raised" if change.raised else "cleared",
                    "ts": _ts(change.at),
                }
                for change in changes
            ]
        }
    )


def encode_availability(availability: Availability) -> bytes:
    return Availability(availability).value.encode()


# --------------------------------------------------------------------------- decoding


def _reject_constant(name: str) -> Any:
    raise ProtocolViolation(f"{name} is not a valid JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> JsonObject:
    out: JsonObject = {}
    for key, value in pairs:
        if key in out:
            raise ProtocolViolation(f"duplicate key {key!r}")
        out[key] = value
    return out


def _loads(payload: bytes, what: str) -> JsonObject:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolViolation(f"{what}: payload is not UTF-8 ({exc.reason})") from exc
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
    except ProtocolViolation as exc:
        raise ProtocolViolation(f"{what}: {exc}") from exc
    except ValueError as exc:  # json.JSONDecodeError
        raise ProtocolViolation(f"{what}: payload is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ProtocolViolation(f"{what}: payload must be a JSON object, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _check_keys(
    obj: JsonObject, where: str, required: frozenset[str], optional: frozenset[str] = frozenset()
) -> None:
    keys = obj.keys()
    if keys == required:  # the common case, one comparison
        return
    missing = sorted(required - keys)
    if missing:
        raise ProtocolViolation(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(keys - required - optional)
    if unknown:
        raise ProtocolViolation(f"{where}: unknown key(s) {', '.join(unknown)}")


def _object(value: object, where: str) -> JsonObject:
    if not isinstance(value, dict):
        raise ProtocolViolation(f"{where}: must be an object, got {_kind(value)}")
    return value


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolViolation(f"{where}: must be an integer {low}..{high}, got {_kind(value)}")
    if not low <= value <= high:
        raise ProtocolViolation(f"{where}: must be {low}..{high}, got {value}")
    return value


def _number(value: object, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolViolation(f"{where}: must be a number {low:g}..{high:g}, got {_kind(value)}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ProtocolViolation(f"{where}: must be {low:g}..{high:g}, got {value}")
    return number


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolViolation(f"{where}: must be true or false, got {_kind(value)}")
    return value


def _text(value: object, where: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise ProtocolViolation(f"{where}: must be a string, got {_kind(value)}")
    if not 1 <= len(value) <= max_len:
        raise ProtocolViolation(f"{where}: must be 1..{max_len} characters, got {len(value)}")
    return value


def _command_id(value: object, where: str) -> str:
    text = _text(value, where, MAX_ID_LEN)
    if not _ID_RE.fullmatch(text):
        raise ProtocolViolation(f"{where}: must match {_ID_RE.pattern}, got {text!r}")
    return text


def _timestamp(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise ProtocolViolation(f"{where}: must be an ISO 8601 time, got {_kind(value)}")
    if not _TS_RE.fullmatch(value):
        raise ProtocolViolation(
            f"{where}: must be YYYY-MM-DDTHH:MM:SS[.ffffff] with Z or +HH:MM, got {value[:40]!r}"
        )
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError as exc:
        raise ProtocolViolation(f"{where}: not a valid time: {value!r} ({exc})") from exc


def _address(key: object, where: str) -> Address:
    if isinstance(key, str):
        if not _ADDRESS_RE.fullmatch(key) or int(key) > MAX_ADDRESS:
            raise ProtocolViolation(f"{where}: address must be a decimal 0..{MAX_ADDRESS}: {key!r}")
        return Address(int(key))
    return Address(_int(key, where, 0, MAX_ADDRESS))


def _flag(value: object, where: str) -> DeviceFlag:
    if isinstance(value, str) and value in _FLAGS:
        return DeviceFlag(value)
    known = ", ".join(sorted(_FLAGS))
    raise ProtocolViolation(f"{where}: unknown flag {value!r} (known: {known})")


_FLAGS: Final = frozenset(flag.value for flag in DeviceFlag)


def decode_command(payload: bytes) -> Command:
    obj = _loads(payload, "command")
    _check_keys(obj, "command", _COMMAND_KEYS)
    try:
        source = CommandSource(obj["source"])
    except ValueError:
        known = "|".join(s.value for s in CommandSource)
        raise ProtocolViolation(f"command.source: must be {known}, got {obj['source']!r}") from None
    levels_obj = _object(obj["levels"], "command.levels")
    if not levels_obj:
        raise ProtocolViolation("command.levels: must name at least one address")
    levels: dict[Address, Level] = {}
    for key, value in levels_obj.items():
        where = f"command.levels[{key!r}]"
        levels[_address(key, where)] = Level(_int(value, where, 0, 100))
    return Command(
        command_id=_command_id(obj["id"], "command.id"),
        source=source,
        fade_s=_number(obj["fade_s"], "command.fade_s", 0.0, MAX_FADE_S),
        levels=levels,
        at=_timestamp(obj["ts"], "command.ts"),
    )


def command_id_of(payload: bytes) -> str | None:
    """The ``id`` of a command that otherwise failed to decode, so it can be refused by id."""
    try:
        obj = _loads(payload, "command")
        return _command_id(obj.get("id"), "command.id")
    except ProtocolViolation:
        return None


def decode_ack(payload: bytes) -> Ack:
    obj = _loads(payload, "ack")
    command_id = _command_id(obj.get("id"), "ack.id")
    if "error" in obj:
        _check_keys(obj, "ack", _ACK_ERROR_KEYS)
        return Ack(
            command_id=command_id,
            at=_timestamp(obj["ts"], "ack.ts"),
            error=_text(obj["error"], "ack.error", MAX_REASON_LEN),
        )
    _check_keys(obj, "ack", _ACK_KEYS)
    results = _object(obj["results"], "ack.results")
    if not results:
        raise ProtocolViolation("ack.results: must name at least one address")
    accepted: set[Address] = set()
    rejected: dict[Address, str] = {}
    for key, value in results.items():
        where = f"ack.results[{key!r}]"
        address = _address(key, where)
        outcome = _object(value, where)
        if "ok" not in outcome:
            raise ProtocolViolation(f"{where}: missing ok")
        if _bool(outcome["ok"], f"{where}.ok"):
            _check_keys(outcome, where, _OK_KEYS)
            accepted.add(address)
        else:
            _check_keys(outcome, where, _NOT_OK_KEYS)
            rejected[address] = _text(outcome["reason"], f"{where}.reason", MAX_REASON_LEN)
    return Ack(
        command_id=command_id,
        at=_timestamp(obj["ts"], "ack.ts"),
        accepted=frozenset(accepted),
        rejected=rejected,
    )


_READING_KEYS: Final = frozenset(
    {
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
        "flags",
    }
)


def _reading(address: Address, obj: JsonObject, where: str, gateway_at: datetime) -> Reading:
    _check_keys(obj, where, _READING_KEYS, _TS_KEY)
    flags_value = obj["flags"]
    if not isinstance(flags_value, list):
        raise ProtocolViolation(f"{where}.flags: must be an array, got {_kind(flags_value)}")
    flags = [_flag(value, f"{where}.flags[{i}]") for i, value in enumerate(flags_value)]
    if len(set(flags)) != len(flags):
        raise ProtocolViolation(f"{where}.flags: repeated flag")
    return Reading(
        address=address,
        at=_timestamp(obj["ts"], f"{where}.ts") if "ts" in obj else gateway_at,
        lamp_on=_bool(obj["lamp_on"], f"{where}.lamp_on"),
        level_pct=_int(obj["level_pct"], f"{where}.level_pct", 0, 100),
        power_w=_number(obj["power_w"], f"{where}.power_w", 0.0, 100_000.0),
        voltage_v=_number(obj["voltage_v"], f"{where}.voltage_v", 0.0, 1_000.0),
        current_ma=_int(obj["current_ma"], f"{where}.current_ma", 0, 1_000_000),
        power_factor=_number(obj["power_factor"], f"{where}.power_factor", 0.0, 1.0),
        energy_wh=_int(obj["energy_wh"], f"{where}.energy_wh", 0, MAX_COUNTER),
        operating_hours=_int(obj["operating_hours"], f"{where}.operating_hours", 0, MAX_COUNTER),
        switch_on_count=_int(obj["switch_on_count"], f"{where}.switch_on_count", 0, MAX_COUNTER),
        temperature_c=_number(obj["temperature_c"], f"{where}.temperature_c", -100.0, 300.0),
        flags=frozenset(flags),
    )


def decode_state(payload: bytes) -> GatewayReading:
    obj = _loads(payload, "state")
    _check_keys(obj, "state", _STATE_KEYS)
    at = _timestamp(obj["ts"], "state.ts")
    gateway = _object(obj["gateway"], "state.gateway")
    _check_keys(gateway, "state.gateway", _GATEWAY_KEYS, _GATEWAY_OPTIONAL)
    luminaires: dict[Address, Reading] = {}
    for key, value in _object(obj["luminaires"], "state.luminaires").items():
        where = f"state.luminaires[{key!r}]"
        address = _address(key, where)
        luminaires[address] = _reading(address, _object(value, where), where, at)
    return GatewayReading(
        at=at,
        mains_present=_bool(gateway["mains_present"], "state.gateway.mains_present"),
        uptime_s=_int(gateway["uptime_s"], "state.gateway.uptime_s", 0, MAX_COUNTER),
        luminaires=luminaires,
        map_version=_int(gateway.get("map_version", 1), "state.gateway.map_version", 1, 65_535),
    )


def decode_events(payload: bytes) -> tuple[FlagChange, ...]:
    obj = _loads(payload, "events")
    _check_keys(obj, "events", _EVENTS_KEYS)
    items = obj["events"]
    if not isinstance(items, list) or not items:
        raise ProtocolViolation(f"events.events: must be a non-empty array, got {_kind(items)}")
    changes: list[FlagChange] = []
    for i, item in enumerate(items):
        where = f"events.events[{i}]"
        entry = _object(item, where)
        _check_keys(entry, where, _EVENT_KEYS)
        change = entry["change"]
        if change not in ("raised", "cleared"):
            raise ProtocolViolation(f"{where}.change: must be raised|cleared, got {change!r}")
        changes.append(
            FlagChange(
                address=Address(_int(entry["address"], f"{where}.address", 0, MAX_ADDRESS)),
                flag=_flag(entry["flag"], f"{where}.flag"),
                raised=change == "raised",
                at=_timestamp(entry["ts"], f"{where}.ts"),
            )
        )
    return tuple(changes)


def decode_availability(payload: bytes) -> Availability:
    """Exactly ``online`` or ``offline`` (plain text; no quotes, no whitespace)."""
    try:
        return Availability(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolViolation(
            f"availability: must be online or offline, got {payload[:40]!r}"
        ) from None
