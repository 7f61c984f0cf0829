"""Our reference LoRaWAN payload: a record decoded by hand, malformed payloads, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.errors import ProtocolViolation
from controller.core.values import Address, DeviceFlag, Level
from protocols.lorawan.codec import Telemetry, Uplink
from protocols.lorawan.reference import DOWNLINK_PORT, UPLINK_PORT, ReferenceCodec

CODEC = ReferenceCodec(luminaires=2)

# The MQTT contract's state example (docs/protocol/mqtt.md, luminaire "0"), encoded by hand
# per docs/protocol/chirpstack.md: version 01, address 00, flags 01 (lamp on), level 0x46 = 70,
# power 736 (0x02E0) x 0.1 W, voltage 2214 (0x08A6) x 0.1 V, current 393 (0x0189) mA,
# power factor 0x54 = 84 (0.84: one byte holds hundredths), energy 123456 (0x0001E240) Wh,
# hours 4321 (0x0010E1), switch-ons 2100 (0x000834), temperature 491 (0x01EB) x 0.1 °C.
MQTT_EXAMPLE = bytes.fromhex("01000146e002a60889015440e20100e11000340800eb01")


def test_the_mqtt_state_example_by_hand() -> None:
    uplink = CODEC.decode_uplink(UPLINK_PORT, MQTT_EXAMPLE)
    assert uplink.luminaires == {
        Address(0): Telemetry(
            lamp_on=True,
            level_pct=70,
            power_w=73.6,
            voltage_v=221.4,
            current_ma=393,
            power_factor=0.84,
            energy_wh=123456,
            operating_hours=4321,
            switch_on_count=2100,
            temperature_c=49.1,
            flags=frozenset(),
        )
    }


def test_flags_and_a_negative_temperature() -> None:
    record = bytearray(MQTT_EXAMPLE)
    record[1] = 1  # address 1
    record[2] = 0b0010_1010  # lampFailure, controlGearCommFailure, supplyFault; lamp off
    record[21:23] = (-52).to_bytes(2, "little", signed=True)  # -5.2 °C
    t = CODEC.decode_uplink(UPLINK_PORT, bytes(record)).luminaires[Address(1)]
    assert t.lamp_on is False
    assert t.flags == frozenset(
        {DeviceFlag.LAMP_FAILURE, DeviceFlag.NOT_ANSWERING, DeviceFlag.SUPPLY_FAULT}
    )
    assert t.temperature_c == -5.2


def test_downlink_by_hand() -> None:
    (frame,) = CODEC.encode_downlink({Address(1): Level(30), Address(0): Level(70)}, fade_s=2)
    assert (frame.f_port, frame.payload.hex()) == (DOWNLINK_PORT, "01020046011e")


@pytest.mark.parametrize(
    ("port", "payload", "message"),
    [
        (11, MQTT_EXAMPLE, "fPort 10, got 11"),
        (10, b"", "format version at byte 0 needs 1 bytes, 0 left"),
        (10, b"\x02" + MQTT_EXAMPLE[1:], "format version 2 is not 1"),
        (10, b"\x01", "no luminaire record"),
        (10, MQTT_EXAMPLE[:-1], "21 bytes of records is not a multiple of 22"),
        (10, MQTT_EXAMPLE + MQTT_EXAMPLE[1:], "address 0 appears twice"),
        (10, b"\x01\x05" + MQTT_EXAMPLE[2:], "address 5 is not on this node"),
        (10, b"\x01\x00\x40" + MQTT_EXAMPLE[3:], "unknown flag bits 0x40"),
        (10, b"\x01\x00\x01\x65" + MQTT_EXAMPLE[4:], "level 101 > 100"),
    ],
)
def test_malformed_uplinks(port: int, payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        CODEC.decode_uplink(port, payload)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (bytes.fromhex("02000046"), "unknown command 0x02"),
        (bytes.fromhex("0100"), "address/level pairs, got 0 bytes"),
        (bytes.fromhex("010000"), "address/level pairs, got 1 bytes"),
        (bytes.fromhex("010001460046"), "must ascend"),
        (bytes.fromhex("01000946"), "address 9 is not on this node"),
        (bytes.fromhex("01000065"), "level 101 > 100"),
    ],
)
def test_malformed_downlinks(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        CODEC.decode_downlink(DOWNLINK_PORT, payload)


def test_the_object_form_uses_reading_names() -> None:
    uplink = CODEC.decode_object(
        {"1": {"level_pct": 40, "lamp_on": True, "flags": ["lampFailure"]}}
    )
    assert uplink.luminaires == {
        Address(1): Telemetry(
            level_pct=40, lamp_on=True, flags=frozenset({DeviceFlag.LAMP_FAILURE})
        )
    }
    with pytest.raises(ProtocolViolation, match="'7' is not an address"):
        CODEC.decode_object({"7": {}})
    with pytest.raises(ProtocolViolation, match="flags must be a list"):
        CODEC.decode_object({"0": {"flags": ["broken"]}})


records = st.builds(
    Telemetry,
    lamp_on=st.booleans(),
    level_pct=st.integers(0, 100),
    power_w=st.integers(0, 0xFFFF).map(lambda d: d / 10),
    voltage_v=st.integers(0, 0xFFFF).map(lambda d: d / 10),
    current_ma=st.integers(0, 0xFFFF),
    power_factor=st.integers(0, 100).map(lambda p: p / 100),
    energy_wh=st.integers(0, 0xFFFF_FFFF),
    operating_hours=st.integers(0, 0xFF_FFFF),
    switch_on_count=st.integers(0, 0xFF_FFFF),
    temperature_c=st.integers(-32768, 32767).map(lambda d: d / 10),
    flags=st.frozensets(st.sampled_from(list(DeviceFlag))),
)


@given(st.dictionaries(st.sampled_from([Address(0), Address(1)]), records, min_size=1))
def test_uplink_round_trip(luminaires: dict[Address, Telemetry]) -> None:
    frame = CODEC.encode_uplink(Uplink(luminaires=luminaires))
    assert CODEC.decode_uplink(frame.f_port, frame.payload) == Uplink(luminaires=luminaires)


@given(
    st.dictionaries(
        st.sampled_from([Address(0), Address(1)]), st.integers(0, 100).map(Level), min_size=1
    ),
    st.integers(0, 255),
)
def test_downlink_round_trip(levels: dict[Address, Level], fade_s: int) -> None:
    (frame,) = CODEC.encode_downlink(levels, fade_s=fade_s)
    assert CODEC.decode_downlink(frame.f_port, frame.payload) == levels
