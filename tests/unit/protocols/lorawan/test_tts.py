"""The Things Stack v3 messages and downlinks against its documented JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.errors import ProtocolViolation
from protocols.lorawan.codec import Frame
from protocols.lorawan.events import DownlinkEvent, DownlinkStage, Joined, UplinkReceived
from protocols.lorawan.tts import (
    Priority,
    TtsTopics,
    decode_downlinks,
    decode_event,
    encode_downlink,
)

TOPICS = TtsTopics("app1", "tenant1")
IDS = {
    "device_id": "dev1",
    "application_ids": {"application_id": "app1"},
    "dev_eui": "0004A30B001C0530",
    "join_eui": "800000000000000C",
    "dev_addr": "00BCB929",
}

# TheThingsIndustries/lorawan-stack-docs doc/content/integrations/data-formats/_index.md,
# "Uplink message example" (rx_metadata, settings, locations, version_ids shortened; the
# page's example lacks a comma before the inner received_at, restored here).
UPLINK_EXAMPLE: dict[str, Any] = {
    "end_device_ids": IDS,
    "correlation_ids": [
        "as:up:01E0WZGT6Y7657CPFPE5WEYDSQ",
        "gs:conn:01E0WDEC6T5T4XXBAX7S1VMFKE",
        "gs:uplink:01E0WZGSZWT07NE5TS2APTV1Z9",
        "ns:uplink:01E0WZGSZXZXZS8RFAWZX0F2FY",
        "rpc:/ttn.lorawan.v3.GsNs/HandleUplink:01E0WZGSZXGE1KS577PFBWRJEE",
    ],
    "received_at": "2020-02-12T15:15:46.014773143Z",
    "uplink_message": {
        "session_key_id": "AXA50tHUGUucuzS/bCGMNw==",
        "f_cnt": 1,
        "frm_payload": "gkHe",
        "decoded_payload": {"temperature": 1.0, "luminosity": 0.64},
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": "gtw1", "eui": "9C5C8E00001A05C4"},
                "rssi": -35,
                "snr": 5,
            }
        ],
        "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}}},
        "consumed_airtime": "0.056576s",
        "network_ids": {"net_id": "000013", "tenant_id": "tenant1", "cluster_id": "nam1"},
        "attributes": {"key1": "value1", "key2": "value2"},
        "received_at": "2020-02-12T15:15:45.789585559Z",
    },
}


def body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_the_documented_uplink() -> None:
    event = decode_event("v3/app1@tenant1/devices/dev1/up", body(UPLINK_EXAMPLE), TOPICS)
    assert isinstance(event, UplinkReceived)
    assert event.at == datetime(2020, 2, 12, 15, 15, 46, 14773, tzinfo=UTC)
    assert event.dedup_id == "as:up:01E0WZGT6Y7657CPFPE5WEYDSQ"
    # The example has no f_port: "empty fields are omitted", so it is 0 here.
    assert (event.f_cnt, event.f_port, event.payload) == (1, 0, bytes([0x82, 0x41, 0xDE]))
    assert event.decoded == {"temperature": 1.0, "luminosity": 0.64}
    assert event.device.device_id == "dev1"
    assert event.device.dev_eui == "0004a30b001c0530"
    assert event.device.tags == {"key1": "value1", "key2": "value2"}


def test_the_mqtt_page_uplink_example() -> None:
    # doc/content/integrations/other-integrations/mqtt/_index.md, "Show uplink message example":
    # no received_at at the top, no f_cnt; frm_payload is "Temperature = 0.0" in base64.
    doc = {
        "end_device_ids": {
            "device_id": "dev1",
            "application_ids": {"application_id": "app1"},
            "dev_eui": "4200000000000000",
        },
        "correlation_ids": ["as:up:01D2CV8HNGJ57G25BW0FCZNY07"],
        "uplink_message": {"f_port": 15, "frm_payload": "VGVtcGVyYXR1cmUgPSAwLjA="},
    }
    with pytest.raises(ProtocolViolation, match="received_at is missing"):
        decode_event("v3/app1@tenant1/devices/dev1/up", body(doc), TOPICS)
    doc["received_at"] = "2019-01-29T13:02:34.981Z"
    event = decode_event("v3/app1@tenant1/devices/dev1/up", body(doc), TOPICS)
    assert isinstance(event, UplinkReceived)
    assert (event.f_port, event.f_cnt, event.payload) == (15, 0, b"Temperature = 0.0")


def test_the_documented_join() -> None:
    doc = {
        "end_device_ids": {**IDS, "dev_addr": "01497ECC"},
        "correlation_ids": ["as:up:01E191YN5F2HMBQCBCVRF731VY"],
        "received_at": "2020-02-17T07:49:09.935284891Z",
        "join_accept": {
            "session_key_id": "AXBSH1Pk6Z0G166RlH16CQ==",
            "received_at": "2020-02-17T07:49:09.736532315Z",
        },
    }
    event = decode_event("v3/app1@tenant1/devices/dev1/join", body(doc), TOPICS)
    assert isinstance(event, Joined) and event.dev_addr == "01497ECC"


def test_the_documented_downlink_ack_with_our_correlation() -> None:
    # mqtt/_index.md "Show downlink event message example", with our correlation id in place
    # of "my-correlation-id".
    doc = {
        "end_device_ids": IDS,
        "correlation_ids": ["streetlight:cmd-7", "..."],
        "downlink_ack": {
            "session_key_id": "AWnj0318qrtJ7kbudd8Vmw==",
            "f_port": 15,
            "f_cnt": 11,
            "frm_payload": "vu8=",
            "confirmed": True,
            "priority": "NORMAL",
            "correlation_ids": ["streetlight:cmd-7", "..."],
        },
    }
    event = decode_event("v3/app1@tenant1/devices/dev1/down/ack", body(doc), TOPICS)
    assert isinstance(event, DownlinkEvent)
    assert (event.stage, event.correlation, event.f_cnt_down) == (DownlinkStage.ACKED, "cmd-7", 11)


@pytest.mark.parametrize(
    ("kind", "key", "stage"),
    [
        ("queued", "downlink_queued", DownlinkStage.QUEUED),
        ("sent", "downlink_sent", DownlinkStage.SENT),
        ("nack", "downlink_nack", DownlinkStage.NOT_ACKED),
    ],
)
def test_downlink_stages(kind: str, key: str, stage: DownlinkStage) -> None:
    doc = {
        "end_device_ids": IDS,
        key: {"f_port": 8, "frm_payload": "hAEy", "correlation_ids": ["streetlight:c2"]},
    }
    event = decode_event(f"v3/app1@tenant1/devices/dev1/down/{kind}", body(doc), TOPICS)
    assert isinstance(event, DownlinkEvent) and (event.stage, event.correlation) == (stage, "c2")


def test_the_documented_downlink_failure() -> None:
    # data-formats/_index.md "Downlink failed event message example".
    doc = {
        "end_device_ids": {"device_id": "dev1", "application_ids": {"application_id": "app1"}},
        "correlation_ids": ["as:downlink:01E19Z5W3BZBG7CXSJE9C0A3CE"],
        "downlink_failed": {
            "downlink": {
                "f_port": 15,
                "frm_payload": "vu8=",
                "confirmed": True,
                "priority": "NORMAL",
                "correlation_ids": ["as:downlink:01E19Z5W3BZBG7CXSJE9C0A3CE"],
            },
            "error": {
                "namespace": "pkg/networkserver",
                "name": "application_downlink_too_long",
                "message_format": "application downlink payload is too long",
                "correlation_id": "2e7f786912e946e597894e381d0ad7b0",
                "code": 3,
            },
        },
    }
    event = decode_event("v3/app1@tenant1/devices/dev1/down/failed", body(doc), TOPICS)
    assert isinstance(event, DownlinkEvent)
    assert event.stage is DownlinkStage.FAILED
    assert event.error == "application downlink payload is too long"
    assert event.correlation is None


def test_downlink_push_as_documented() -> None:
    # mqtt/_index.md "Publishing Downlink Traffic": BE EF on FPort 15 with normal priority.
    t, payload = encode_downlink(
        TOPICS, device_id="dev1", frame=Frame(15, b"\xbe\xef"), correlation="cmd-9"
    )
    assert t == "v3/app1@tenant1/devices/dev1/down/push"
    assert json.loads(payload) == {
        "downlinks": [
            {
                "f_port": 15,
                "frm_payload": "vu8=",
                "priority": "NORMAL",
                "correlation_ids": ["streetlight:cmd-9"],
            }
        ]
    }


def test_the_zenopix_envelope() -> None:
    _, payload = encode_downlink(
        TOPICS, device_id="dev1", frame=Frame(8, bytes([0x84, 1, 50])), correlation="c"
    )
    (item,) = json.loads(payload)["downlinks"]
    assert (item["f_port"], item["frm_payload"], item["priority"]) == (8, "hAEy", "NORMAL")


@given(st.integers(1, 223), st.binary(max_size=51), st.booleans(), st.sampled_from(list(Priority)))
def test_downlink_round_trip(port: int, data: bytes, confirmed: bool, priority: Priority) -> None:
    _, payload = encode_downlink(
        TOPICS,
        device_id="d",
        frame=Frame(port, data, confirmed),
        correlation="c",
        priority=priority,
    )
    assert decode_downlinks(payload) == [(Frame(port, data, confirmed), "c")]


def test_topics_with_and_without_tenant() -> None:
    assert TOPICS.subscriptions() == (
        "v3/app1@tenant1/devices/+/up",
        "v3/app1@tenant1/devices/+/join",
        "v3/app1@tenant1/devices/+/down/+",
    )
    assert TtsTopics("app1").push("dev1") == "v3/app1/devices/dev1/down/push"
    assert TOPICS.replace("dev1") == "v3/app1@tenant1/devices/dev1/down/replace"
    assert TOPICS.parse("v3/app1@tenant1/devices/dev1/down/ack") == ("dev1", "down/ack")
    assert TOPICS.parse("v3/app1@tenant1/devices/dev1/down/push") is None
    assert TOPICS.parse("v3/app2@tenant1/devices/dev1/up") is None
    assert TOPICS.parse("v3/app1@tenant1/devices/dev1/service/data") is None
    with pytest.raises(ValueError, match="application id"):
        TtsTopics("a/b")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"end_device_ids": {**IDS, "device_id": "dev2"}},
            "device_id dev2 is not the topic's dev1",
        ),
        (
            {"end_device_ids": {**IDS, "application_ids": {"application_id": "x"}}},
            "application_id x",
        ),
        ({"uplink_message": None}, "uplink_message is missing"),
        ({"uplink_message": {"f_cnt": 1.5}}, "f_cnt must be a whole number"),
        ({"uplink_message": {"frm_payload": 12}}, "frm_payload must be a base64 string"),
        ({"correlation_ids": "as:up:1"}, "correlation_ids must be a list"),
    ],
)
def test_malformed_uplinks(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        decode_event("v3/app1@tenant1/devices/dev1/up", body({**UPLINK_EXAMPLE, **change}), TOPICS)


def test_non_json_is_refused() -> None:
    with pytest.raises(ProtocolViolation, match="not JSON"):
        decode_event("v3/app1@tenant1/devices/dev1/up", b"{", TOPICS)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "downlinks must be a non-empty list"),
        ({"downlinks": [{"frm_payload": "vu8="}]}, "f_port is missing"),
        ({"downlinks": [{"f_port": 300}]}, "f_port must be 1"),
        ({"downlinks": [{"f_port": 1, "priority": "URGENT"}]}, "priority 'URGENT'"),
    ],
)
def test_malformed_pushes(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        decode_downlinks(json.dumps(doc).encode())
