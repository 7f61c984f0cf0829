"""ChirpStack v4 events and downlinks against its documented JSON."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.errors import ProtocolViolation
from protocols.lorawan.chirpstack import (
    ChirpStackTopics,
    decode_downlink,
    decode_event,
    encode_downlink,
)
from protocols.lorawan.codec import Frame
from protocols.lorawan.events import (
    DownlinkEvent,
    DownlinkStage,
    Joined,
    ServerLog,
    StatusReport,
    UplinkReceived,
)

TOPICS = ChirpStackTopics()
CORRELATION = "9f5c6d2e-0e45-4c51-93c3-0c3a76d2b7a5"
APP = "17c82e96-be03-4f38-aef3-f83d48582d97"
EUI = "0101010101010101"
INFO = {
    "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
    "tenantName": "ChirpStack",
    "applicationId": APP,
    "applicationName": "Test application",
    "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
    "deviceProfileName": "Test device-profile",
    "deviceName": "Test device",
    "devEui": EUI,
    "tags": {"key": "value"},
}

# The "up" example of ChirpStack v4's integration events page (chirpstack.io/docs, "Event
# types"; rxInfo/txInfo shortened). Protobuf's JSON mapping leaves out fCnt = 0.
UP_EXAMPLE: dict[str, Any] = {
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
    "time": "2022-07-18T09:34:15.775023242+00:00",
    "deviceInfo": INFO,
    "devAddr": "00189440",
    "dr": 1,
    "fPort": 1,
    "data": "qg==",
    "rxInfo": [{"gatewayId": "0016c001f153a14c", "uplinkId": 4217106255, "rssi": -36, "snr": 10.5}],
    "txInfo": {"frequency": 867100000},
}


def topic(event: str) -> str:
    return f"application/{APP}/device/{EUI}/event/{event}"


def body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_the_documented_uplink() -> None:
    event = decode_event(topic("up"), body(UP_EXAMPLE), TOPICS)
    assert isinstance(event, UplinkReceived)
    assert event.dedup_id == "3ac7e3c4-4401-4b8d-9386-a5c902f9202d"
    assert event.at == datetime(2022, 7, 18, 9, 34, 15, 775023, tzinfo=UTC)
    assert (event.f_port, event.f_cnt, event.payload) == (1, 0, b"\xaa")
    assert event.decoded is None
    assert event.device.device_id == EUI
    assert event.device.profile == "Test device-profile"
    assert event.device.tags == {"key": "value"}


def test_an_uplink_with_a_codec_carries_the_object() -> None:
    doc = {**UP_EXAMPLE, "fCnt": 7, "object": {"voltage": 222.6}}
    event = decode_event(topic("up"), body(doc), TOPICS)
    assert isinstance(event, UplinkReceived)
    assert (event.f_cnt, event.decoded) == (7, {"voltage": 222.6})


def test_txack_means_a_gateway_took_it() -> None:
    # TxAckEvent (integration.proto): downlinkId, time, deviceInfo, queueItemId, fCntDown,
    # gatewayId, txInfo.
    doc = {
        "downlinkId": 1268484045,
        "time": "2022-07-18T09:34:16.000000000+00:00",
        "deviceInfo": INFO,
        "queueItemId": "9f5c6d2e-0e45-4c51-93c3-0c3a76d2b7a5",
        "fCntDown": 4,
        "gatewayId": "0016c001f153a14c",
        "txInfo": {"frequency": 869525000, "power": 14},
    }
    event = decode_event(topic("txack"), body(doc), TOPICS)
    assert isinstance(event, DownlinkEvent)
    assert event.at == datetime(2022, 7, 18, 9, 34, 16, tzinfo=UTC)
    assert (event.stage, event.correlation, event.f_cnt_down, event.gateway_id) == (
        DownlinkStage.SENT,
        "9f5c6d2e-0e45-4c51-93c3-0c3a76d2b7a5",
        4,
        "0016c001f153a14c",
    )
    assert event.device.dev_eui == EUI


@pytest.mark.parametrize(
    ("extra", "stage"),
    [({"acknowledged": True}, DownlinkStage.ACKED), ({}, DownlinkStage.NOT_ACKED)],
)
def test_ack_or_its_timeout(extra: dict[str, Any], stage: DownlinkStage) -> None:
    # AckEvent: acknowledged is left out when false (the confirmation timed out).
    doc = {
        "deduplicationId": "c9dbe358-2578-4fb7-b295-66b44edc45a6",
        "time": "2022-07-18T09:40:00+00:00",
        "deviceInfo": INFO,
        "queueItemId": "9f5c6d2e-0e45-4c51-93c3-0c3a76d2b7a5",
        "fCntDown": 4,
        **extra,
    }
    event = decode_event(topic("ack"), body(doc), TOPICS)
    assert isinstance(event, DownlinkEvent)
    assert (event.stage, event.correlation, event.f_cnt_down) == (
        stage,
        "9f5c6d2e-0e45-4c51-93c3-0c3a76d2b7a5",
        4,
    )


def test_join_and_status() -> None:
    join = decode_event(
        topic("join"),
        body(
            {
                "deduplicationId": "x",
                "time": "2022-07-18T09:00:00Z",
                "deviceInfo": INFO,
                "devAddr": "00189440",
            }
        ),
        TOPICS,
    )
    assert isinstance(join, Joined) and join.dev_addr == "00189440"
    status = decode_event(
        topic("status"),
        body(
            {
                "deduplicationId": "y",
                "time": "2022-07-18T09:00:00Z",
                "deviceInfo": INFO,
                "margin": 7,
                "batteryLevel": 87.5,
            }
        ),
        TOPICS,
    )
    assert isinstance(status, StatusReport)
    assert (status.margin_db, status.battery_pct, status.external_power) == (7, 87.5, False)
    mains = decode_event(
        topic("status"),
        body({"time": "2022-07-18T09:00:00Z", "deviceInfo": INFO, "externalPowerSource": True}),
        TOPICS,
    )
    assert isinstance(mains, StatusReport)
    assert (mains.margin_db, mains.battery_pct, mains.external_power) == (0, None, True)


def test_the_legacy_retained_state_topic_is_read_too() -> None:
    event = decode_event(
        f"application/{APP}/device/{EUI}/state/status",
        body(
            {
                "time": "2022-07-18T09:00:00Z",
                "deviceInfo": INFO,
                "margin": -3,
                "batteryLevelUnavailable": True,
            }
        ),
        TOPICS,
    )
    assert isinstance(event, StatusReport) and (event.margin_db, event.battery_pct) == (-3, None)


def test_log_events() -> None:
    event = decode_event(
        topic("log"),
        body(
            {
                "time": "2022-07-18T09:00:00Z",
                "deviceInfo": INFO,
                "level": "ERROR",
                "code": "UPLINK_CODEC",
                "description": "boom",
            }
        ),
        TOPICS,
    )
    assert isinstance(event, ServerLog) and (event.level, event.code) == ("ERROR", "UPLINK_CODEC")


def test_protobuf_is_refused_with_a_hint() -> None:
    protobuf = bytes.fromhex("0a24336163376533633422") + b"\xff\xfe"
    with pytest.raises(ProtocolViolation, match="protobuf"):
        decode_event(topic("up"), protobuf, TOPICS)
    with pytest.raises(ProtocolViolation, match="not JSON"):
        decode_event(topic("up"), b"\x0a\x02hi", TOPICS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"deviceInfo": {**INFO, "devEui": "0202020202020202"}}, "is not the topic's"),
        (
            {"deviceInfo": {**INFO, "applicationId": "other"}},
            "applicationId other is not the topic's",
        ),
        ({"deviceInfo": None}, "deviceInfo is missing"),
        ({"deviceInfo": {**INFO, "devEui": "xyz"}}, "devEui must be 16 hex digits"),
        ({"data": "not base64!"}, "data is not base64"),
        ({"fCnt": -1}, "fCnt must be 0"),
        ({"fCnt": "7"}, "fCnt must be a number"),
        ({"time": "yesterday"}, "time is not an RFC 3339 instant"),
        ({"time": "2022-07-18T09:34:15"}, "no UTC offset"),
        ({"deduplicationId": None}, "deduplicationId is missing"),
        ({"object": [1, 2]}, "object must be an object"),
    ],
)
def test_malformed_uplinks(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        decode_event(topic("up"), body({**UP_EXAMPLE, **change}), TOPICS)


def test_topics() -> None:
    assert TOPICS.subscriptions(APP) == (
        f"application/{APP}/device/+/event/+",
        f"application/{APP}/device/+/state/+",
    )
    assert TOPICS.parse(topic("up")) == (APP, EUI, "up")
    assert TOPICS.parse(topic("unknown")) is None
    assert TOPICS.parse(f"application/{APP}/device/{EUI}/command/down") is None
    assert decode_event(f"application/{APP}/device/{EUI}/event/location", b"\xff", TOPICS) is None


def test_downlink_as_documented() -> None:
    # chirpstack-docs src/chirpstack/integrations/mqtt.md "Scheduling a downlink":
    # topic application/APPLICATION_ID/device/DEV_EUI/command/down, {confirmed, fPort, data}.
    frame = Frame(8, bytes([0x84, 0x01, 0x32]), confirmed=True)
    t, payload = encode_downlink(
        TOPICS,
        application_id=APP,
        dev_eui="0101010101010101",
        frame=frame,
        correlation="9f5c6d2e-0e45-4c51-93c3-0c3a76d2b7a5",
    )
    assert t == f"application/{APP}/device/{EUI}/command/down"
    assert json.loads(payload) == {
        "id": "9f5c6d2e-0e45-4c51-93c3-0c3a76d2b7a5",
        "devEui": EUI,
        "confirmed": True,
        "fPort": 8,
        "data": "hAEy",
    }


@given(
    st.integers(1, 223),
    st.binary(max_size=51),
    st.booleans(),
    st.text("0123456789abcdefABCDEF", min_size=16, max_size=16),
)
def test_downlink_round_trip(port: int, data: bytes, confirmed: bool, eui: str) -> None:
    _, payload = encode_downlink(
        TOPICS,
        application_id=APP,
        dev_eui=eui,
        frame=Frame(port, data, confirmed),
        correlation=CORRELATION,
    )
    assert decode_downlink(payload) == (eui.lower(), CORRELATION, Frame(port, data, confirmed))


def test_the_downlink_id_must_be_a_uuid() -> None:
    with pytest.raises(ValueError, match="UUID"):
        encode_downlink(
            TOPICS, application_id=APP, dev_eui=EUI, frame=Frame(1, b""), correlation="c1"
        )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"devEui": EUI, "data": "qg=="}, "fPort is missing"),
        ({"devEui": EUI, "fPort": 0, "data": "qg=="}, "fPort must be 1"),
        ({"devEui": "01", "fPort": 1, "data": "qg=="}, "devEui must be 16 hex digits"),
    ],
)
def test_malformed_downlinks(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        decode_downlink(json.dumps(doc).encode())


def test_base64_of_the_example_payload() -> None:
    assert base64.b64decode("qg==") == b"\xaa"
