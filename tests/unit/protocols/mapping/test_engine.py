"""The mapping engine over the shipped Tasmota profile, with Tasmota's documented payloads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.errors import ProtocolViolation
from controller.core.values import Address, DeviceFlag, Level
from protocols.lorawan.codec import Telemetry
from protocols.mapping.engine import MappedAvailability, MappedState, MappingEngine, Publication
from protocols.mapping.profile import load_builtin_profile, parse_profile

TASMOTA = MappingEngine(
    load_builtin_profile("tasmota-dimmer"), {"lamp1": Address(0), "lamp2": Address(1)}
)


def test_subscriptions_cover_every_device() -> None:
    assert TASMOTA.subscriptions() == (
        "stat/+/RESULT",
        "tele/+/STATE",
        "tele/+/SENSOR",
        "tele/+/LWT",
    )


def test_the_dimmer_result_documented_by_tasmota() -> None:
    # tasmota/docs docs/Berry.md: tasmota.cmd("Dimmer 50") ->
    # {"POWER":"ON","Dimmer":50,"Color":"80523A","HSBColor":"21,55,50","Channel":[50,32,23]}
    payload = (
        b'{"POWER":"ON","Dimmer":50,"Color":"80523A","HSBColor":"21,55,50","Channel":[50,32,23]}'
    )
    assert TASMOTA.decode("stat/lamp1/RESULT", payload) == MappedState(
        Address(0), Telemetry(lamp_on=True, level_pct=50)
    )


def test_a_result_of_another_command_carries_nothing() -> None:
    # docs/MQTT.md: every command answers on RESULT, e.g. {"POWER":"OFF"} for Power.
    assert TASMOTA.decode("stat/lamp2/RESULT", b'{"POWER":"OFF"}') == MappedState(
        Address(1), Telemetry(lamp_on=False)
    )


def test_the_energy_telemetry_documented_by_tasmota() -> None:
    # tasmota/docs docs/Teleinfo.md: compteur/tele/SENSOR = {"Time":"2021-03-13T09:20:26",
    # "ENERGY":{...,"Total":7970.903,...,"Power":860,"Current":4.000},...}: Total in kWh,
    # Current in A; no Voltage nor Factor in it (left unset, not refused).
    payload = (
        b'{"Time":"2021-03-13T09:20:26","ENERGY":{"TotalStartTime":"2021-03-13T09:20:26",'
        b'"Total":7970.903,"Yesterday":3.198,"Today":6.024,"Period":63,"Power":860,"Current":4.000},'
        b'"IP":"192.168.xx.xx","MAC":"50:02:91:xx:xx:xx"}'
    )
    assert TASMOTA.decode("tele/lamp1/SENSOR", payload) == MappedState(
        Address(0), Telemetry(power_w=860.0, current_ma=4000, energy_wh=7_970_903)
    )


def test_availability_from_the_last_will() -> None:
    assert TASMOTA.decode("tele/lamp2/LWT", b"Online") == MappedAvailability(Address(1), True)
    assert TASMOTA.decode("tele/lamp2/LWT", b"Offline") == MappedAvailability(Address(1), False)
    with pytest.raises(ProtocolViolation, match="availability must be 'Online' or 'Offline'"):
        TASMOTA.decode("tele/lamp2/LWT", b"online")


def test_commands() -> None:
    # docs/Commands.md: cmnd/%topic%/Dimmer 0..100; cmnd/%topic%/Power OFF.
    assert TASMOTA.encode(Address(0), Level(70)) == Publication(
        "cmnd/lamp1/Dimmer", b"70", 1, False
    )
    assert TASMOTA.encode(Address(1), Level(0)) == Publication("cmnd/lamp2/Power", b"OFF", 1, False)
    with pytest.raises(ValueError, match="no device at address 5"):
        TASMOTA.encode(Address(5), Level(10))


def test_unknown_topics_and_devices_are_not_ours() -> None:
    assert TASMOTA.decode("stat/other/RESULT", b"{}") is None
    assert TASMOTA.decode("tele/lamp1/INFO1", b"{}") is None
    assert TASMOTA.decode("cmnd/lamp1/Dimmer", b"50") is None


@pytest.mark.parametrize(
    ("topic", "payload", "message"),
    [
        ("tele/lamp1/STATE", b"not json", "tele/lamp1/STATE: payload is not JSON"),
        ("tele/lamp1/STATE", b'{"POWER":"ON"}', "tele/lamp1/STATE: level_pct: Dimmer: no 'Dimmer'"),
        ("tele/lamp1/STATE", b'{"POWER":"MAYBE","Dimmer":5}', "lamp_on: 'MAYBE' is not one of"),
        ("tele/lamp1/STATE", b'{"POWER":"ON","Dimmer":150}', "level must be 0..100"),
        ("tele/lamp1/STATE", b'{"POWER":"ON","Dimmer":true}', "must be a number"),
        ("tele/lamp1/SENSOR", b'{"ENERGY":{"Power":-5}}', "must not be negative"),
        ("tele/lamp1/SENSOR", b'{"ENERGY":{"Factor":1.5}}', "power factor must be 0..1"),
        ("tele/lamp1/SENSOR", b"\xff", "not UTF-8"),
    ],
)
def test_malformed_payloads(topic: str, payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        TASMOTA.decode(topic, payload)


def shelly_like(**command: Any) -> MappingEngine:
    """A JSON-commanded dimmer with flags, expressions and a text topic (a synthetic profile)."""
    profile = parse_profile(
        {
            "name": "json-dimmer",
            "source": "synthetic, for the engine's own tests",
            "states": [
                {
                    "topic": "lights/{device}/status",
                    "fields": {
                        "lamp_on": {"path": "ison"},
                        "level_pct": {"path": "brightness"},
                        "temperature_c": {"path": "temp_f", "unit": "F"},
                        "power_w": {"expr": "volts * amps * pf"},
                        "power_factor": {"path": "pf"},
                    },
                    "flags": {
                        "thermalDerating": {"path": "overtemperature"},
                        "lampFailure": {"path": "error", "equals": "open_load"},
                    },
                },
                {
                    "topic": "lights/{device}/energy",
                    "format": "text",
                    "fields": {"energy_wh": {"path": "$", "unit": "Wmin"}},
                },
            ],
            "command": command
            or {
                "topic": "lights/{device}/set",
                "payload": '{"turn":"{ON}","brightness":{level}}',
            },
        },
        "test",
    )
    return MappingEngine(profile, {"d1": Address(0)})


def test_expressions_units_and_flags() -> None:
    doc = {
        "ison": True,
        "brightness": 40,
        "temp_f": 212,
        "volts": 230,
        "amps": 0.2,
        "pf": 0.9,
        "overtemperature": 1,
        "error": "open_load",
    }
    state = shelly_like().decode("lights/d1/status", json.dumps(doc).encode())
    assert isinstance(state, MappedState)
    t = state.telemetry
    assert (t.lamp_on, t.level_pct, t.power_factor) == (True, 40, 0.9)
    assert t.temperature_c == pytest.approx(100.0)
    assert t.power_w == pytest.approx(41.4)
    assert t.flags == frozenset({DeviceFlag.OVER_TEMPERATURE, DeviceFlag.LAMP_FAILURE})
    doc.update(overtemperature=0, error="none")
    cleared = shelly_like().decode("lights/d1/status", json.dumps(doc).encode())
    assert isinstance(cleared, MappedState) and cleared.telemetry.flags == frozenset()


def test_a_text_topic_with_watt_minutes() -> None:
    assert shelly_like().decode("lights/d1/energy", b"6000\n") == MappedState(
        Address(0), Telemetry(energy_wh=100)
    )


def test_a_command_value_for_devices_that_count_to_255() -> None:
    engine = shelly_like(
        topic="lights/{device}/set", payload='{"dim":{value},"on":{on}}', value="level * 255 / 100"
    )
    assert engine.encode(Address(0), Level(100)).payload == b'{"dim":255,"on":true}'
    assert engine.encode(Address(0), Level(0)).payload == b'{"dim":0,"on":false}'


@given(st.integers(0, 100))
def test_a_commanded_level_reads_back(level: int) -> None:
    """What the Tasmota profile sends, a Tasmota device reports back as the same level."""
    publication = TASMOTA.encode(Address(0), Level(level))
    echoed = (
        {"POWER": "OFF"}
        if publication.topic.endswith("/Power")
        else {"POWER": "ON", "Dimmer": int(publication.payload)}
    )
    state = TASMOTA.decode("stat/lamp1/RESULT", json.dumps(echoed).encode())
    assert isinstance(state, MappedState)
    assert state.telemetry.lamp_on is (level > 0)
    if level:
        assert state.telemetry.level_pct == level


def test_devices_must_be_distinct_topic_levels() -> None:
    profile = load_builtin_profile("tasmota-dimmer")
    with pytest.raises(ValueError, match="share an address"):
        MappingEngine(profile, {"a": Address(0), "b": Address(0)})
    with pytest.raises(ValueError, match="device id"):
        MappingEngine(profile, {"a/b": Address(0)})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"ENERGY":{"Power":1' + b"0" * 400 + b"}}", "out of range"),
        (b'{"ENERGY":{"Power":"1e400"}}', "must be finite"),
        (b'{"ENERGY":{"Power":"\xc2\xb2"}}', "must be a number"),
    ],
)
def test_numbers_beyond_floats_are_violations(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        TASMOTA.decode("tele/lamp1/SENSOR", payload)
