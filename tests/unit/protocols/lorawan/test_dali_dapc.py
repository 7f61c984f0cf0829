"""DALI DAPC node (Zenopix-style): the reference's published commands and telemetry, by hand."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.errors import ProtocolViolation
from controller.core.values import Address, DeviceFlag, Level
from protocols.lorawan.codec import Telemetry
from protocols.lorawan.dali_dapc import F_PORT, DaliDapcCodec

# Source of every expected value below: "Zenopix DALI LoRaWAN Controller Reference" (a public
# ThingsBoard integration document, repository not named; see /work/shared/notes/field.md 3.3),
# sections "Dim Level Quick Reference" and "Send Test Telemetry".
CODEC = DaliDapcCodec()
ZERO = Address(0)


@pytest.mark.parametrize(
    ("level", "hex_payload", "b64"),
    [
        (0, "840100", "hAEA"),
        (10, "84010a", "hAEK"),
        (50, "840132", "hAEy"),
        (70, "840146", "hAFG"),
        (100, "840164", "hAFk"),
    ],
)
def test_dapc_downlinks_match_the_quick_reference(level: int, hex_payload: str, b64: str) -> None:
    (frame,) = CODEC.encode_downlink({ZERO: Level(level)})
    assert frame.f_port == F_PORT == 8
    assert frame.payload.hex() == hex_payload
    assert base64.b64encode(frame.payload).decode() == b64


def test_the_references_test_telemetry() -> None:
    obj = {
        "supply_voltage": 230.5,
        "power_factor": 0.95,
        "internal_temp": 42,
        "light_src_voltage": 48.2,
        "light_src_current": 350,
        "dim_value": 75,
        "operating_time": 1500,
        "message_type": "sensor_data",
    }
    uplink = CODEC.decode_object(obj)
    # 48.2 V x 350 mA = 16.87 W (output power); no fault fields in the message -> flags unknown.
    assert uplink.luminaires == {
        ZERO: Telemetry(
            lamp_on=True,
            level_pct=75,
            voltage_v=230.5,
            power_factor=0.95,
            current_ma=350,
            power_w=16.87,
            temperature_c=42.0,
            operating_hours=1500,
        )
    }
    assert uplink.node.is_empty()


@pytest.mark.parametrize(
    ("faults", "flags"),
    [
        ({"fault_light_src_failure": True}, {DeviceFlag.LAMP_FAILURE}),
        ({"status_lamp_failure": True}, {DeviceFlag.LAMP_FAILURE}),
        ({"fault_over_voltage": True}, {DeviceFlag.SUPPLY_FAULT}),
        ({"fault_thermal_shutdown": True}, {DeviceFlag.OVER_TEMPERATURE}),
        ({"fault_overall_failure": True}, {DeviceFlag.DRIVER_FAILURE}),
        (
            {"fault_overall_failure": True, "fault_thermal_shutdown": True},
            {DeviceFlag.OVER_TEMPERATURE},
        ),
        ({"fault_overall_failure": False, "fault_over_voltage": False}, set()),
    ],
)
def test_fault_fields_become_flags(faults: dict[str, bool], flags: set[DeviceFlag]) -> None:
    assert CODEC.decode_object(faults).luminaires[ZERO].flags == frozenset(flags)


def test_a_status_lamp_on_wins_over_the_level() -> None:
    t = CODEC.decode_object({"dim_value": 40, "status_lamp_on": False}).luminaires[ZERO]
    assert (t.level_pct, t.lamp_on) == (40, False)


def test_binary_uplinks_are_refused_with_the_reason() -> None:
    with pytest.raises(ProtocolViolation, match="no public layout"):
        CODEC.decode_uplink(8, b"\x01\x02")


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"dim_value": 101}, "dim_value must be 0..100"),
        ({"dim_value": 50.5}, "dim_value must be a whole number"),
        ({"supply_voltage": "230"}, "supply_voltage must be a number"),
        ({"power_factor": 1.2}, "power_factor must be 0..1"),
        ({"fault_over_voltage": 1}, "fault_over_voltage must be true or false"),
        ({"status_lamp_on": "yes"}, "status_lamp_on must be true or false"),
    ],
)
def test_malformed_objects(obj: dict[str, object], message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        CODEC.decode_object(obj)


@pytest.mark.parametrize(
    ("port", "payload", "message"),
    [
        (9, bytes.fromhex("840132"), "fPort 8, got 9"),
        (8, bytes.fromhex("8401"), "3 bytes"),
        (8, bytes.fromhex("850132"), "opcode 0x85 is not DAPC"),
        (8, bytes.fromhex("840532"), "address 0x05 is not broadcast"),
        (8, bytes.fromhex("8401fe"), "got 254"),
    ],
)
def test_malformed_downlinks(port: int, payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        CODEC.decode_downlink(port, payload)


def test_one_luminaire_per_node() -> None:
    with pytest.raises(ValueError, match="one luminaire"):
        CODEC.encode_downlink({Address(1): Level(50)})


@given(st.integers(0, 100))
def test_downlink_round_trip(level: int) -> None:
    (frame,) = CODEC.encode_downlink({ZERO: Level(level)})
    assert CODEC.decode_downlink(frame.f_port, frame.payload) == {ZERO: level}


telemetry = st.builds(
    Telemetry,
    lamp_on=st.none() | st.booleans(),
    level_pct=st.none() | st.integers(0, 100),
    voltage_v=st.none() | st.integers(0, 3000).map(lambda d: d / 10),
    power_factor=st.none() | st.integers(0, 100).map(lambda p: p / 100),
    current_ma=st.none() | st.integers(0, 2000),
    temperature_c=st.none() | st.integers(-40, 125).map(float),
    operating_hours=st.none() | st.integers(0, 100_000),
    switch_on_count=st.none() | st.integers(0, 65_535),
    flags=st.none()
    | st.frozensets(
        st.sampled_from(
            [DeviceFlag.LAMP_FAILURE, DeviceFlag.SUPPLY_FAULT, DeviceFlag.OVER_TEMPERATURE]
        ),
        max_size=3,
    ),
)


@given(telemetry)
def test_object_round_trip(t: Telemetry) -> None:
    decoded = CODEC.decode_object(CODEC.encode_object(t)).luminaires[ZERO]
    expected_on = (
        t.lamp_on if t.lamp_on is not None else (None if t.level_pct is None else t.level_pct > 0)
    )
    assert decoded == Telemetry(
        lamp_on=expected_on,
        level_pct=t.level_pct,
        voltage_v=t.voltage_v,
        power_factor=t.power_factor,
        current_ma=t.current_ma,
        temperature_c=t.temperature_c,
        operating_hours=t.operating_hours,
        switch_on_count=t.switch_on_count,
        flags=t.flags,
    )
