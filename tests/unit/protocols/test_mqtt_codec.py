"""The MQTT codec: round trips, strict refusals, and agreement with the JSON Schemas."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.errors import ProtocolViolation
from controller.core.values import (
    Address,
    CommandSource,
    DeviceFlag,
    GatewayReading,
    Level,
    Reading,
)
from protocols.mqtt_codec import (
    MAX_ADDRESS,
    Ack,
    Availability,
    Command,
    FlagChange,
    command_id_of,
    decode_ack,
    decode_availability,
    decode_command,
    decode_events,
    decode_state,
    encode_ack,
    encode_availability,
    encode_command,
    encode_events,
    encode_state,
)

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "protocol" / "schemas"
T0 = datetime(2026, 6, 21, 11, 27, 9, tzinfo=UTC)


def schema(name: str) -> jsonschema.protocols.Validator:
    loaded = json.loads((SCHEMAS / f"{name}.json").read_text())
    cls = jsonschema.validators.validator_for(loaded)
    cls.check_schema(loaded)
    return cls(loaded, format_checker=cls.FORMAT_CHECKER)


VALIDATORS = {name: schema(name) for name in ("command", "ack", "state", "events", "availability")}


def assert_valid(name: str, payload: bytes) -> None:
    doc: Any = payload.decode() if name == "availability" else json.loads(payload)
    VALIDATORS[name].validate(doc)


def _strict_json(payload: bytes) -> Any:
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(payload, parse_constant=no_constants)


def schema_accepts(name: str, payload: bytes) -> bool:
    """Whether a standard JSON parser plus the schema would take ``payload``."""
    try:
        doc = payload.decode() if name == "availability" else _strict_json(payload)
    except ValueError:
        return False
    return bool(VALIDATORS[name].is_valid(doc))


def reading(address: int, at: datetime = T0, **changes: Any) -> Reading:
    values: dict[str, Any] = {
        "address": Address(address),
        "at": at,
        "lamp_on": True,
        "level_pct": 70,
        "power_w": 68.5,
        "voltage_v": 221.3,
        "current_ma": 327,
        "power_factor": 0.845,
        "energy_wh": 123_456,
        "operating_hours": 4321,
        "switch_on_count": 2100,
        "temperature_c": 49.0,
        "flags": frozenset(),
    }
    values.update(changes)
    return Reading(**values)


# --------------------------------------------------------------------------- examples

COMMAND = Command(
    "c-1", CommandSource.OVERRIDE, 2.5, {Address(0): Level(70), Address(12): Level(0)}, T0
)
ACK = Ack("c-1", T0, accepted=frozenset({Address(0)}), rejected={Address(12): "not answering"})
STATE = GatewayReading(
    at=T0,
    mains_present=True,
    uptime_s=3600,
    luminaires={
        Address(0): reading(0),
        Address(1): reading(1, at=T0 - timedelta(seconds=3), flags=frozenset(DeviceFlag)),
    },
)
EVENTS = (
    FlagChange(Address(3), DeviceFlag.LAMP_FAILURE, True, T0),
    FlagChange(Address(4), DeviceFlag.SUPPLY_FAULT, False, T0 + timedelta(seconds=1)),
)


def test_command_wire_format() -> None:
    assert json.loads(encode_command(COMMAND)) == {
        "id": "c-1",
        "source": "override",
        "fade_s": 2.5,
        "levels": {"0": 70, "12": 0},
        "ts": "2026-06-21T11:27:09Z",
    }


def test_ack_wire_format() -> None:
    assert json.loads(encode_ack(ACK)) == {
        "id": "c-1",
        "results": {"0": {"ok": True}, "12": {"ok": False, "reason": "not answering"}},
        "ts": "2026-06-21T11:27:09Z",
    }
    refused = Ack("c-2", T0, error="bad levels")
    assert json.loads(encode_ack(refused)) == {
        "id": "c-2",
        "error": "bad levels",
        "ts": "2026-06-21T11:27:09Z",
    }


def test_state_wire_format_writes_a_luminaire_time_only_when_it_differs() -> None:
    doc = json.loads(encode_state(STATE))
    assert doc["gateway"] == {"mains_present": True, "uptime_s": 3600, "map_version": 1}
    assert "ts" not in doc["luminaires"]["0"]
    assert doc["luminaires"]["1"]["ts"] == "2026-06-21T11:27:06Z"
    assert doc["luminaires"]["1"]["flags"] == sorted(f.value for f in DeviceFlag)


def test_events_and_availability_wire_format() -> None:
    doc = json.loads(encode_events(EVENTS))
    assert doc["events"][0] == {
        "address": 3,
        "flag": "lampFailure",
        "change": "raised",
        "ts": "2026-06-21T11:27:09Z",
    }
    assert doc["events"][1]["change"] == "cleared"
    assert encode_availability(Availability.OFFLINE) == b"offline"


@pytest.mark.parametrize(
    ("name", "encode", "decode", "value"),
    [
        ("command", encode_command, decode_command, COMMAND),
        ("ack", encode_ack, decode_ack, ACK),
        ("ack", encode_ack, decode_ack, Ack("c-2", T0, error="bad levels")),
        ("state", encode_state, decode_state, STATE),
        ("events", encode_events, decode_events, EVENTS),
        ("availability", encode_availability, decode_availability, Availability.ONLINE),
    ],
)
def test_examples_round_trip_and_validate(
    name: str, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any], value: Any
) -> None:
    payload = encode(value)
    assert_valid(name, payload)
    assert decode(payload) == value


def test_time_with_offset_is_read_as_the_same_instant_in_utc() -> None:
    payload = encode_command(COMMAND).replace(b"2026-06-21T11:27:09Z", b"2026-06-21T18:27:09+07:00")
    decoded = decode_command(payload)
    assert decoded.at == T0
    assert decoded.at.tzinfo == UTC


def test_command_id_of_reads_the_id_of_an_otherwise_broken_command() -> None:
    assert command_id_of(b'{"id": "c-9", "levels": {"1": 150}}') == "c-9"
    assert command_id_of(b'{"levels": {}}') is None
    assert command_id_of(b"not json") is None


# --------------------------------------------------------------------------- refusals


def _edit(payload: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(payload)
    change(doc)
    return json.dumps(doc).encode()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    keys = path.split(".")

    def change(doc: dict[str, Any]) -> None:
        for key in keys[:-1]:
            doc = doc[key]
        doc[keys[-1]] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    keys = path.split(".")

    def change(doc: dict[str, Any]) -> None:
        for key in keys[:-1]:
            doc = doc[key]
        del doc[keys[-1]]

    return change


CMD = encode_command(COMMAND)
ACK_BYTES = encode_ack(ACK)
STATE_BYTES = encode_state(STATE)
EVENTS_BYTES = encode_events(EVENTS)

# (name, decoder, payload, words expected in the error, also refused by the JSON Schema).
# The schemas cannot refuse: 70.0 as an integer (JSON Schema counts it as one), a
# duplicate key (gone once parsed), month 13 (only the optional format checker could).
BAD: list[tuple[str, Callable[[bytes], Any], bytes, str, bool]] = [
    ("command", decode_command, b"{not json", "not JSON", True),
    ("command", decode_command, b"\xff\xfe", "not UTF-8", True),
    ("command", decode_command, b"[1, 2]", "must be a JSON object", True),
    ("command", decode_command, _edit(CMD, _set("levels.0", 150)), "levels['0']", True),
    ("command", decode_command, _edit(CMD, _set("levels.0", -1)), "0..100, got -1", True),
    ("command", decode_command, _edit(CMD, _set("levels.0", "70")), "got a string", True),
    ("command", decode_command, _edit(CMD, _set("levels.0", True)), "got a boolean", True),
    ("command", decode_command, _edit(CMD, _set("levels.0", 70.5)), "got a number", True),
    ("command", decode_command, CMD.replace(b'"0":70', b'"0":70.0'), "got a number", False),
    ("command", decode_command, _edit(CMD, _set("levels.-1", 5)), "address", True),
    ("command", decode_command, _edit(CMD, _set("levels.007", 5)), "address", True),
    ("command", decode_command, _edit(CMD, _set("levels.abc", 5)), "address", True),
    ("command", decode_command, _edit(CMD, _set("levels.65536", 5)), "address", True),
    ("command", decode_command, _edit(CMD, _set("levels", {})), "at least one", True),
    ("command", decode_command, _edit(CMD, _set("levels", [70])), "must be an object", True),
    ("command", decode_command, _edit(CMD, _set("source", "manual")), "command.source", True),
    ("command", decode_command, _edit(CMD, _set("fade_s", -1)), "command.fade_s", True),
    ("command", decode_command, _edit(CMD, _set("fade_s", 3601)), "command.fade_s", True),
    ("command", decode_command, CMD.replace(b'"fade_s":2.5', b'"fade_s":NaN'), "NaN", True),
    ("command", decode_command, _edit(CMD, _set("id", "")), "command.id", True),
    ("command", decode_command, _edit(CMD, _set("id", "a b")), "command.id", True),
    ("command", decode_command, _edit(CMD, _set("id", 7)), "command.id", True),
    ("command", decode_command, _edit(CMD, _set("ts", "2026-06-21T11:27:09")), "ts", True),
    ("command", decode_command, _edit(CMD, _set("ts", "2026-06-21")), "ts", True),
    (
        "command",
        decode_command,
        _edit(CMD, _set("ts", "2026-13-21T11:27:09Z")),
        "valid time",
        False,
    ),
    ("command", decode_command, _edit(CMD, _set("extra", 1)), "unknown key(s) extra", True),
    ("command", decode_command, _edit(CMD, _drop("ts")), "missing ts", True),
    (
        "command",
        decode_command,
        CMD.replace(b'"id":"c-1"', b'"id":"c-1","id":"c-2"'),
        "duplicate",
        False,
    ),
    ("ack", decode_ack, _edit(ACK_BYTES, _set("results.0", {"ok": "yes"})), ".ok", True),
    ("ack", decode_ack, _edit(ACK_BYTES, _set("results.0", {"ok": False})), "missing reason", True),
    ("ack", decode_ack, _edit(ACK_BYTES, _set("results.0", {})), "missing ok", True),
    ("ack", decode_ack, _edit(ACK_BYTES, _set("results.0", {"ok": True, "x": 1})), "unknown", True),
    ("ack", decode_ack, _edit(ACK_BYTES, _set("results.x1", {"ok": True})), "address", True),
    ("ack", decode_ack, _edit(ACK_BYTES, _set("results", {})), "at least one", True),
    ("ack", decode_ack, _edit(ACK_BYTES, _set("error", "no")), "unknown key(s) results", True),
    ("ack", decode_ack, _edit(ACK_BYTES, _drop("results")), "missing results", True),
    ("ack", decode_ack, _edit(ACK_BYTES, _drop("id")), "ack.id", True),
    (
        "state",
        decode_state,
        _edit(STATE_BYTES, _set("luminaires.0.level_pct", 150)),
        "level_pct",
        True,
    ),
    ("state", decode_state, _edit(STATE_BYTES, _set("luminaires.0.power_w", -3)), "power_w", True),
    (
        "state",
        decode_state,
        _edit(STATE_BYTES, _set("luminaires.0.power_w", "68")),
        "power_w",
        True,
    ),
    ("state", decode_state, _edit(STATE_BYTES, _set("luminaires.0.lamp_on", 1)), "lamp_on", True),
    (
        "state",
        decode_state,
        _edit(STATE_BYTES, _set("luminaires.0.power_factor", 1.2)),
        "power_factor",
        True,
    ),
    (
        "state",
        decode_state,
        _edit(STATE_BYTES, _set("luminaires.0.energy_wh", 1.5)),
        "energy_wh",
        True,
    ),
    (
        "state",
        decode_state,
        _edit(STATE_BYTES, _set("luminaires.0.energy_wh", 2**60)),
        "energy_wh",
        True,
    ),
    (
        "state",
        decode_state,
        _edit(STATE_BYTES, _set("luminaires.0.flags", ["broken"])),
        "unknown flag",
        True,
    ),
    (
        "state",
        decode_state,
        _edit(STATE_BYTES, _set("luminaires.0.flags", "lampFailure")),
        "array",
        True,
    ),
    (
        "state",
        decode_state,
        _edit(STATE_BYTES, _set("luminaires.0.flags", ["lampFailure", "lampFailure"])),
        "repeated",
        True,
    ),
    (
        "state",
        decode_state,
        _edit(STATE_BYTES, _drop("luminaires.0.voltage_v")),
        "missing voltage_v",
        True,
    ),
    ("state", decode_state, _edit(STATE_BYTES, _set("luminaires.-5", {})), "address", True),
    ("state", decode_state, _edit(STATE_BYTES, _set("gateway.uptime_s", -1)), "uptime_s", True),
    ("state", decode_state, _edit(STATE_BYTES, _set("gateway.mains_present", None)), "null", True),
    (
        "state",
        decode_state,
        _edit(STATE_BYTES, _set("gateway.map_version", 0)),
        "map_version",
        True,
    ),
    ("state", decode_state, _edit(STATE_BYTES, _set("luminaires", [])), "must be an object", True),
    ("events", decode_events, _edit(EVENTS_BYTES, _set("events", [])), "non-empty", True),
    ("events", decode_events, _edit(EVENTS_BYTES, _set("events", {})), "non-empty", True),
    ("events", decode_events, EVENTS_BYTES.replace(b'"raised"', b'"up"'), "raised|cleared", True),
    (
        "events",
        decode_events,
        EVENTS_BYTES.replace(b'"address":3', b'"address":"3"'),
        "address",
        True,
    ),
    (
        "events",
        decode_events,
        EVENTS_BYTES.replace(b'"address":3', b'"address":-3'),
        "address",
        True,
    ),
    ("events", decode_events, EVENTS_BYTES.replace(b"lampFailure", b"lampfailure"), "flag", True),
    ("availability", decode_availability, b"Online", "online or offline", True),
    ("availability", decode_availability, b'"online"', "online or offline", True),
    ("availability", decode_availability, b"online\n", "online or offline", True),
    ("availability", decode_availability, b"", "online or offline", True),
]


@pytest.mark.parametrize(
    ("name", "decode", "payload", "words", "schema_refuses"),
    BAD,
    ids=[f"{row[0]}-{i}" for i, row in enumerate(BAD)],
)
def test_contract_breaches_are_refused_with_a_reason(
    name: str, decode: Callable[[bytes], Any], payload: bytes, words: str, schema_refuses: bool
) -> None:
    with pytest.raises(ProtocolViolation) as caught:
        decode(payload)
    assert words in str(caught.value)
    assert str(caught.value).startswith(name)
    if schema_refuses:
        assert not schema_accepts(name, payload), "the JSON Schema should refuse it too"


@pytest.mark.parametrize(
    ("encode", "value", "words"),
    [
        (
            encode_command,
            Command("c", CommandSource.PROGRAM, 0.0, {Address(0): Level(150)}, T0),
            "0..100",
        ),
        (encode_command, Command("c", CommandSource.PROGRAM, 0.0, {}, T0), "at least one"),
        (
            encode_command,
            Command("c", CommandSource.PROGRAM, -1.0, {Address(0): Level(1)}, T0),
            "fade_s",
        ),
        (
            encode_command,
            Command("c d", CommandSource.PROGRAM, 0, {Address(0): Level(1)}, T0),
            "id",
        ),
        (
            encode_command,
            Command(
                "c", CommandSource.PROGRAM, 0.0, {Address(0): Level(1)}, T0.replace(tzinfo=None)
            ),
            "timezone",
        ),
        (
            encode_command,
            Command("c", CommandSource.PROGRAM, 0.0, {Address(-1): Level(1)}, T0),
            "address",
        ),
        (encode_ack, Ack("c", T0), "at least one"),
        (encode_ack, Ack("c", T0, accepted=frozenset({Address(1)}), error="x"), "not both"),
        (
            encode_ack,
            Ack("c", T0, accepted=frozenset({Address(1)}), rejected={Address(1): "x"}),
            "both accepted and rejected",
        ),
        (encode_events, (), "at least one"),
    ],
)
def test_encoding_a_value_outside_the_contract_is_a_bug(
    encode: Callable[[Any], bytes], value: Any, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        encode(value)


# --------------------------------------------------------------------------- properties

aware = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-3))]),
)
addresses = st.integers(0, MAX_ADDRESS).map(Address)
levels = st.integers(0, 100).map(Level)
command_ids = st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)
reasons = st.text(min_size=1, max_size=200)
flags = st.frozensets(st.sampled_from(list(DeviceFlag)))


def finite(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


commands = st.builds(
    Command,
    command_id=command_ids,
    source=st.sampled_from(list(CommandSource)),
    fade_s=finite(0, 3600),
    levels=st.dictionaries(addresses, levels, min_size=1, max_size=120),
    at=aware,
)


@st.composite
def acks(draw: st.DrawFn) -> Ack:
    at = draw(aware)
    command_id = draw(command_ids)
    if draw(st.booleans()):
        return Ack(command_id, at, error=draw(reasons))
    outcome = draw(st.dictionaries(addresses, st.none() | reasons, min_size=1, max_size=120))
    return Ack(
        command_id,
        at,
        accepted=frozenset(a for a, r in outcome.items() if r is None),
        rejected={a: r for a, r in outcome.items() if r is not None},
    )


@st.composite
def states(draw: st.DrawFn) -> GatewayReading:
    at = draw(aware)
    luminaires = {}
    for address in draw(st.lists(addresses, max_size=40, unique=True)):
        luminaires[address] = Reading(
            address=address,
            at=draw(st.just(at) | aware),
            lamp_on=draw(st.booleans()),
            level_pct=draw(st.integers(0, 100)),
            power_w=draw(finite(0, 100_000)),
            voltage_v=draw(finite(0, 1_000)),
            current_ma=draw(st.integers(0, 1_000_000)),
            power_factor=draw(finite(0, 1)),
            energy_wh=draw(st.integers(0, 2**53 - 1)),
            operating_hours=draw(st.integers(0, 2**53 - 1)),
            switch_on_count=draw(st.integers(0, 2**53 - 1)),
            temperature_c=draw(finite(-100, 300)),
            flags=draw(flags),
        )
    return GatewayReading(
        at=at,
        mains_present=draw(st.booleans()),
        uptime_s=draw(st.integers(0, 2**53 - 1)),
        luminaires=luminaires,
        map_version=draw(st.integers(1, 65_535)),
    )


events = st.lists(
    st.builds(
        FlagChange,
        address=addresses,
        flag=st.sampled_from(list(DeviceFlag)),
        raised=st.booleans(),
        at=aware,
    ),
    min_size=1,
    max_size=20,
).map(tuple)


@given(commands)
def test_any_command_round_trips_and_validates(command: Command) -> None:
    payload = encode_command(command)
    assert_valid("command", payload)
    assert decode_command(payload) == command


@given(acks())
def test_any_ack_round_trips_and_validates(ack: Ack) -> None:
    payload = encode_ack(ack)
    assert_valid("ack", payload)
    decoded = decode_ack(payload)
    assert decoded == ack
    assert decoded.result().rejected == ack.rejected


@given(states())
def test_any_state_round_trips_and_validates(state: GatewayReading) -> None:
    payload = encode_state(state)
    assert_valid("state", payload)
    assert decode_state(payload) == state


@given(events)
def test_any_events_round_trip_and_validate(changes: tuple[FlagChange, ...]) -> None:
    payload = encode_events(changes)
    assert_valid("events", payload)
    assert decode_events(payload) == changes


@given(st.binary(max_size=200))
def test_no_bytes_crash_a_decoder(payload: bytes) -> None:
    for decode in (decode_command, decode_ack, decode_state, decode_events, decode_availability):
        with contextlib.suppress(ProtocolViolation):
            decode(payload)
