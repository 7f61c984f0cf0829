"""Whatever arrives, decoding raises ProtocolViolation or succeeds: nothing else escapes."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.errors import ProtocolViolation
from protocols.lorawan.chirpstack import ChirpStackTopics
from protocols.lorawan.chirpstack import decode_downlink as decode_chirpstack_down
from protocols.lorawan.chirpstack import decode_event as decode_chirpstack
from protocols.lorawan.registry import builtin_registry
from protocols.lorawan.tts import TtsTopics
from protocols.lorawan.tts import decode_downlinks as decode_tts_down
from protocols.lorawan.tts import decode_event as decode_tts

CODECS = [builtin_registry().get(name) for name in builtin_registry().names()]
EUI = "0101010101010101"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400)])
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["²", "٣", "1e400"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)

CHIRPSTACK_KEYS = [
    "deduplicationId",
    "time",
    "deviceInfo",
    "fCnt",
    "fPort",
    "data",
    "object",
    "queueItemId",
    "acknowledged",
    "fCntDown",
    "margin",
    "batteryLevel",
    "devEui",
    "level",
    "code",
    "description",
    "confirmed",
    "id",
]
TTS_KEYS = [
    "end_device_ids",
    "received_at",
    "uplink_message",
    "correlation_ids",
    "join_accept",
    "downlink_ack",
    "downlink_sent",
    "downlink_failed",
    "downlinks",
]


def plausible(keys: list[str], fixed: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the real keys and arbitrary values, sometimes with valid parts kept."""
    return st.builds(
        lambda extra, keep: {**(fixed if keep else {}), **extra},
        st.dictionaries(st.sampled_from(keys), json_values, max_size=6),
        st.booleans(),
    )


def expect_violation_or_result(call: Any, *args: Any) -> None:
    with contextlib.suppress(ProtocolViolation):
        call(*args)


@given(st.integers(0, 255), st.binary(max_size=64))
def test_codecs_on_arbitrary_bytes(port: int, payload: bytes) -> None:
    for codec in CODECS:
        expect_violation_or_result(codec.decode_uplink, port, payload)
        expect_violation_or_result(codec.decode_downlink, port, payload)


@given(st.dictionaries(st.text(max_size=20), json_values, max_size=8))
def test_codecs_on_arbitrary_objects(obj: dict[str, Any]) -> None:
    for codec in CODECS:
        expect_violation_or_result(codec.decode_object, obj)


@settings(max_examples=300)
@given(
    st.sampled_from(["up", "txack", "ack", "join", "status", "log"]),
    plausible(
        CHIRPSTACK_KEYS,
        {"deviceInfo": {"devEui": EUI}, "time": "2022-07-18T09:34:15Z", "deduplicationId": "x"},
    ),
)
def test_chirpstack_events_on_arbitrary_json(event: str, doc: dict[str, Any]) -> None:
    topic = f"application/app/device/{EUI}/event/{event}"
    expect_violation_or_result(
        decode_chirpstack, topic, json.dumps(doc).encode(), ChirpStackTopics()
    )
    expect_violation_or_result(decode_chirpstack_down, json.dumps(doc).encode())


@settings(max_examples=300)
@given(
    st.sampled_from(
        ["up", "join", "down/queued", "down/sent", "down/ack", "down/nack", "down/failed"]
    ),
    plausible(
        TTS_KEYS, {"end_device_ids": {"device_id": "dev1"}, "received_at": "2020-02-12T15:15:46Z"}
    ),
)
def test_tts_events_on_arbitrary_json(kind: str, doc: dict[str, Any]) -> None:
    topic = f"v3/app1@t/devices/dev1/{kind}"
    expect_violation_or_result(decode_tts, topic, json.dumps(doc).encode(), TtsTopics("app1", "t"))
    expect_violation_or_result(decode_tts_down, json.dumps(doc).encode())


@given(st.binary(max_size=64))
def test_event_bodies_that_are_not_json(payload: bytes) -> None:
    expect_violation_or_result(
        decode_chirpstack, f"application/a/device/{EUI}/event/up", payload, ChirpStackTopics()
    )
    expect_violation_or_result(decode_tts, "v3/a/devices/d/up", payload, TtsTopics("a"))


def test_a_huge_integer_is_a_violation_not_an_overflow() -> None:
    for codec in CODECS:
        expect_violation_or_result(codec.decode_object, {"0": {"power_w": 10**400}})
        expect_violation_or_result(codec.decode_object, {"voltage": 10**400, "dim_value": 10**400})


def test_unicode_digits_are_not_addresses() -> None:
    for codec in CODECS:
        expect_violation_or_result(codec.decode_object, {"²": {}})
