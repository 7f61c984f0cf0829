"""Milesight WS558: vendor examples decoded by hand, malformed input, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.errors import ProtocolViolation
from controller.core.values import Address, Level
from protocols.lorawan.codec import Telemetry, Uplink
from protocols.lorawan.ws558 import F_PORT, Ws558Codec

CODEC = Ws558Codec()
OFF = Telemetry(lamp_on=False, level_pct=0)
ON = Telemetry(lamp_on=True, level_pct=100)


def test_voltage_example() -> None:
    # TheThingsNetwork/lorawan-devices vendor/milesight-iot/ws558-codec.yaml, example 1:
    # fPort 85, bytes 03 74 B2 08 -> voltage 222.6 (0x08B2 = 2226, / 10).
    uplink = CODEC.decode_uplink(85, bytes([0x03, 0x74, 0xB2, 0x08]))
    assert uplink.node == Telemetry(voltage_v=222.6)
    assert uplink.luminaires == {}


def test_power_consumption_example() -> None:
    # ws558-codec.yaml at commit 62c8acdd, example 2: 06 83 56 04 00 00 -> power_consumption 1110
    # (0x0456 = 1110 Wh, u32 little-endian).
    uplink = CODEC.decode_uplink(85, bytes([0x06, 0x83, 0x56, 0x04, 0x00, 0x00]))
    assert uplink.node == Telemetry(energy_wh=1110)


def test_active_power_example() -> None:
    # ws558-codec.yaml (newer), example 3: 04 80 01 00 00 00 -> 1 W. The YAML names the output
    # "power", but ws558.js itself writes "active_power": the example and its decoder disagree.
    uplink = CODEC.decode_uplink(85, bytes([0x04, 0x80, 0x01, 0x00, 0x00, 0x00]))
    assert uplink.node == Telemetry(power_w=1.0)


def test_full_readme_example() -> None:
    # Milesight-IoT/SensorDecoders WS_Series/WS558/README.md, "Example":
    # 08310001 058164 07C90200 0374B208 068301000000 048001000000 ->
    # voltage 222.6, active_power 1, power_factor 100 (%), total_current 2 (mA),
    # power_consumption 1 (Wh), switch_1 on, switch_2..8 off (state byte 0x01).
    payload = bytes.fromhex("0831000105816407C902000374B208068301000000048001000000")
    uplink = CODEC.decode_uplink(85, payload)
    assert uplink.node == Telemetry(
        voltage_v=222.6, power_w=1.0, power_factor=1.0, current_ma=2, energy_wh=1
    )
    assert uplink.luminaires == {Address(0): ON, **{Address(i): OFF for i in range(1, 8)}}


def test_the_vendor_decoders_object_reads_the_same() -> None:
    # The README's decoded JSON, as ChirpStack's "object" would carry it.
    obj = {
        "voltage": 222.6,
        "active_power": 1,
        "power_factor": 100,
        "total_current": 2,
        "power_consumption": 1,
        "switch_1": "on",
        **{f"switch_{i}": "off" for i in range(2, 9)},
    }
    payload = bytes.fromhex("0831000105816407C902000374B208068301000000048001000000")
    assert CODEC.decode_object(obj) == CODEC.decode_uplink(85, payload)


def test_switch_downlink_matches_the_vendor_encoder() -> None:
    # ws558-encoder.js controlSwitch: {switch_1: on, switch_3: off} -> 08, mask 0b101, state 0b001.
    (frame,) = CODEC.encode_downlink({Address(0): Level(100), Address(2): Level(0)})
    assert (frame.f_port, frame.payload) == (F_PORT, bytes([0x08, 0x05, 0x01]))


def test_any_level_above_zero_switches_on() -> None:
    (frame,) = CODEC.encode_downlink({Address(7): Level(1)})
    assert frame.payload == bytes([0x08, 0x80, 0x80])


@pytest.mark.parametrize(
    ("port", "payload", "message"),
    [
        (85, b"", "empty payload"),
        (86, bytes.fromhex("0374B208"), "fPort 85, got 86"),
        (85, bytes.fromhex("0374B2"), r"voltage at byte 2 needs 2 bytes, 1 left"),
        (85, bytes.fromhex("03"), "channel type at byte 1"),
        (85, bytes.fromhex("0374B2080480"), "active power at byte 6 needs 4 bytes, 0 left"),
        (85, bytes.fromhex("ff0b ff".replace(" ", "")), "unknown channel 0xff 0x0b at byte 0"),
        (85, bytes.fromhex("0374B2080374B208"), "voltage appears twice"),
        (85, bytes.fromhex("058165"), "power factor must be 0..100 %, got 101"),
        (85, bytes.fromhex("083100"), "switch state at byte 3"),
    ],
)
def test_malformed_uplinks(port: int, payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        CODEC.decode_uplink(port, payload)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"voltage": "222.6"}, "voltage must be a number"),
        ({"voltage": True}, "voltage must be a number"),
        ({"power_factor": 50.5}, "power_factor must be a whole number"),
        ({"switch_3": "maybe"}, "switch_3 must be 'on' or 'off'"),
        ({"total_current": -1}, "total_current must be 0"),
    ],
)
def test_malformed_objects(obj: dict[str, object], message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        CODEC.decode_object(obj)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (bytes([0x08, 0x01]), "08 <mask> <state>"),
        (bytes([0xFF, 0x10, 0xFF]), "08 <mask> <state>"),
        (bytes([0x08, 0x00, 0x00]), "empty mask"),
        (bytes([0x08, 0x01, 0x03]), "outside mask"),
    ],
)
def test_malformed_downlinks(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        CODEC.decode_downlink(85, payload)


def test_encoding_refuses_what_the_node_cannot_do() -> None:
    with pytest.raises(ValueError, match=r"relays 0\.\.7"):
        CODEC.encode_downlink({Address(8): Level(100)})
    with pytest.raises(ValueError, match="no levels"):
        CODEC.encode_downlink({})


levels = st.dictionaries(
    st.integers(0, 7).map(Address), st.integers(0, 100).map(Level), min_size=1, max_size=8
)


@given(levels)
def test_downlink_round_trip(wanted: dict[Address, Level]) -> None:
    (frame,) = CODEC.encode_downlink(wanted)
    decoded = CODEC.decode_downlink(frame.f_port, frame.payload)
    assert decoded == {a: Level(100 if lv else 0) for a, lv in wanted.items()}


meters = st.builds(
    Telemetry,
    voltage_v=st.none() | st.integers(0, 0xFFFF).map(lambda d: d / 10),
    power_w=st.none() | st.integers(0, 0xFFFF_FFFF).map(float),
    power_factor=st.none() | st.integers(0, 100).map(lambda p: p / 100),
    energy_wh=st.none() | st.integers(0, 0xFFFF_FFFF),
    current_ma=st.none() | st.integers(0, 0xFFFF),
)
switches = st.none() | st.lists(st.booleans(), min_size=8, max_size=8)


@given(meters, switches)
def test_uplink_round_trip(node: Telemetry, states: list[bool] | None) -> None:
    relays = (
        {} if states is None else {Address(i): ON if on else OFF for i, on in enumerate(states)}
    )
    uplink = Uplink(luminaires=relays, node=node)
    if node.is_empty() and not relays:
        return
    frame = CODEC.encode_uplink(uplink)
    assert CODEC.decode_uplink(frame.f_port, frame.payload) == uplink
