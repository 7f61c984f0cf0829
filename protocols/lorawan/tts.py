"""The Things Stack v3 MQTT server: topics, message JSON -> network events, downlinks.

Sources: ``TheThingsIndustries/lorawan-stack-docs``
``doc/content/integrations/other-integrations/mqtt/_index.md`` (topics, QoS 0 only,
username ``{application id}@{tenant id}`` and an API key, the ``down/push`` example)
and ``doc/content/integrations/data-formats/_index.md`` (join, uplink, downlink
event and downlink message formats). "Empty fields are omitted from payloads":
a missing ``f_cnt`` is 0, a missing ``frm_payload`` is empty.

The Things Stack Open Source has no tenant: topics are ``v3/{application id}/...``.
Pure: no I/O. See docs/protocol/tts.md.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from controller.core.errors import ProtocolViolation
from protocols.lorawan import object_fields as f
from protocols.lorawan.codec import MAX_F_PORT, MIN_F_PORT, Frame
from protocols.lorawan.events import (
    Device,
    DownlinkEvent,
    DownlinkStage,
    Joined,
    NetworkEvent,
    UplinkReceived,
    load_json_object,
    parse_base64,
    parse_dev_eui,
    parse_time,
)
from protocols.lorawan.topic_template import TopicTemplate, check_level

QOS: Final = 0
"""The Things Stack's MQTT server supports QoS 0 only."""

CORRELATION_PREFIX: Final = "streetlight:"
"""Our correlation ids among a downlink's ``correlation_ids`` (TTS adds its own)."""

TOPIC: Final = TopicTemplate("v3/{app}/devices/{device_id}/{kind...}")


class Priority(StrEnum):
    """Downlink queue priorities (LOWEST is The Things Stack's default)."""

    LOWEST = "LOWEST"
    LOW = "LOW"
    BELOW_NORMAL = "BELOW_NORMAL"
    NORMAL = "NORMAL"
    ABOVE_NORMAL = "ABOVE_NORMAL"
    HIGH = "HIGH"
    HIGHEST = "HIGHEST"


_DOWN_STAGES: Final = {
    "down/queued": ("downlink_queued", DownlinkStage.QUEUED),
    "down/sent": ("downlink_sent", DownlinkStage.SENT),
    "down/ack": ("downlink_ack", DownlinkStage.ACKED),
    "down/nack": ("downlink_nack", DownlinkStage.NOT_ACKED),
    "down/failed": ("downlink_failed", DownlinkStage.FAILED),
}
UPSTREAM_KINDS: Final = ("up", "join", *_DOWN_STAGES)


@dataclass(frozen=True, slots=True)
class TtsTopics:
    """Topics of one application: ``v3/{application_id}@{tenant_id}/devices/{device_id}/...``."""

    application_id: str
    tenant_id: str | None = None
    """``None`` on The Things Stack Open Source (no tenant in topics or username)."""

    def __post_init__(self) -> None:
        check_level(self.application_id, "application id")
        if self.tenant_id is not None:
            check_level(self.tenant_id, "tenant id")

    @property
    def app(self) -> str:
        """The topic's (and the MQTT username's) ``{application id}@{tenant id}``."""
        return (
            self.application_id
            if self.tenant_id is None
            else f"{self.application_id}@{self.tenant_id}"
        )

    def subscriptions(self) -> tuple[str, ...]:
        base = f"v3/{self.app}/devices/+"
        return (f"{base}/up", f"{base}/join", f"{base}/down/+")

    def push(self, device_id: str) -> str:
        return TOPIC.fill(app=self.app, device_id=device_id, kind="down/push")

    def replace(self, device_id: str) -> str:
        """Publishing here replaces the device's downlink queue (``[]`` clears it)."""
        return TOPIC.fill(app=self.app, device_id=device_id, kind="down/replace")

    def parse(self, topic: str) -> tuple[str, str] | None:
        """``(device_id, kind)`` of an upstream topic of this application, else ``None``."""
        values = TOPIC.parse(topic)
        if values is None or values["app"] != self.app or values["kind"] not in UPSTREAM_KINDS:
            return None
        return values["device_id"], values["kind"]


def encode_downlink(
    topics: TtsTopics,
    *,
    device_id: str,
    frame: Frame,
    correlation: str,
    priority: Priority = Priority.NORMAL,
) -> tuple[str, bytes]:
    """``(topic, payload)`` pushing ``frame`` onto the device's queue."""
    item: dict[str, Any] = {
        "f_port": frame.f_port,
        "frm_payload": base64.b64encode(frame.payload).decode("ascii"),
        "priority": priority.value,
        "correlation_ids": [CORRELATION_PREFIX + correlation],
    }
    if frame.confirmed:
        item["confirmed"] = True
    body = {"downlinks": [item]}
    return topics.push(device_id), json.dumps(body, separators=(",", ":")).encode()


def decode_downlinks(payload: bytes) -> list[tuple[Frame, str | None]]:
    """Fake network server side: a ``down/push`` body -> ``[(frame, our correlation)]``."""
    where = "tts down/push"
    doc = load_json_object(payload, where)
    items = doc.get("downlinks")
    if not isinstance(items, list) or not items:
        raise ProtocolViolation(f"{where}: downlinks must be a non-empty list")
    out: list[tuple[Frame, str | None]] = []
    for i, item in enumerate(items):
        here = f"{where}: downlinks[{i}]"
        if not isinstance(item, Mapping):
            raise ProtocolViolation(f"{here} must be an object")
        f_port = f.integer(item, "f_port", here, minimum=MIN_F_PORT, maximum=MAX_F_PORT)
        if f_port is None:
            raise ProtocolViolation(f"{here}: f_port is missing")
        priority = f.text(item, "priority", here)
        if priority is not None and priority not in Priority.__members__:
            raise ProtocolViolation(f"{here}: priority {priority!r} is not one of {list(Priority)}")
        payload_bytes = parse_base64(item.get("frm_payload", ""), f"{here}: frm_payload")
        confirmed = f.boolean(item, "confirmed", here) or False
        out.append((Frame(f_port, payload_bytes, confirmed), _ours(item, here)))
    return out


def decode_event(topic: str, payload: bytes, topics: TtsTopics) -> NetworkEvent | None:
    """One MQTT message -> an event; ``None`` for a topic the bridge does not use."""
    parsed = topics.parse(topic)
    if parsed is None:
        return None
    device_id, kind = parsed
    where = f"tts {kind} ({topic})"
    doc = load_json_object(payload, where)
    device = _device(doc, where, device_id, topics.application_id)
    received = doc.get("received_at")
    at = None if received is None else parse_time(received, f"{where}: received_at")
    if kind == "up":
        message = f.mapping(doc, "uplink_message", where, required=True)
        assert message is not None  # required=True raised otherwise
        here = f"{where}: uplink_message"
        if at is None and "received_at" in message:
            at = parse_time(message["received_at"], f"{here}.received_at")
        if at is None:
            raise ProtocolViolation(f"{where}: received_at is missing")
        attributes = f.mapping(message, "attributes", here) or {}
        if attributes:
            device = Device(
                device_id=device.device_id,
                application_id=device.application_id,
                dev_eui=device.dev_eui,
                profile=device.profile,
                tags={str(k): str(v) for k, v in attributes.items()},
            )
        return UplinkReceived(
            device=device,
            at=at,
            dedup_id=_as_up_id(doc),
            f_cnt=f.integer(message, "f_cnt", here, minimum=0, maximum=2**32 - 1) or 0,
            f_port=f.integer(message, "f_port", here, minimum=0, maximum=255) or 0,
            payload=parse_base64(message.get("frm_payload", ""), f"{here}.frm_payload"),
            decoded=f.mapping(message, "decoded_payload", here),
            confirmed=f.boolean(message, "confirmed", here) or False,
        )
    if kind == "join":
        f.mapping(doc, "join_accept", where, required=True)
        ids = f.mapping(doc, "end_device_ids", where) or {}
        return Joined(device=device, at=at, dev_addr=f.text(ids, "dev_addr", where))
    key, stage = _DOWN_STAGES[kind]
    body = f.mapping(doc, key, where, required=True)
    assert body is not None  # required=True raised otherwise
    here = f"{where}: {key}"
    error = None
    if stage is DownlinkStage.FAILED:
        failure = f.mapping(body, "error", here) or {}
        error = f.text(failure, "message_format", here) or f.text(failure, "name", here) or "failed"
        body = f.mapping(body, "downlink", here) or {}
    return DownlinkEvent(
        device=device,
        at=at,
        stage=stage,
        correlation=_ours(body, here) or _ours(doc, where),
        f_cnt_down=f.integer(body, "f_cnt", here, minimum=0),
        error=error,
    )


def _device(doc: Mapping[str, Any], where: str, device_id: str, application_id: str) -> Device:
    ids = f.mapping(doc, "end_device_ids", where, required=True)
    assert ids is not None  # required=True raised otherwise
    body_id = f.required_text(ids, "device_id", f"{where}: end_device_ids")
    if body_id != device_id:
        raise ProtocolViolation(
            f"{where}: end_device_ids.device_id {body_id} is not the topic's {device_id}"
        )
    app_ids = f.mapping(ids, "application_ids", f"{where}: end_device_ids") or {}
    body_app = f.text(app_ids, "application_id", f"{where}: end_device_ids.application_ids")
    if body_app is not None and body_app != application_id:
        raise ProtocolViolation(
            f"{where}: application_id {body_app} is not the topic's {application_id}"
        )
    eui = ids.get("dev_eui")
    return Device(
        device_id=device_id,
        application_id=application_id,
        dev_eui=None if eui is None else parse_dev_eui(eui, f"{where}: end_device_ids.dev_eui"),
    )


def _correlation_ids(obj: Mapping[str, Any], where: str) -> list[str]:
    ids = obj.get("correlation_ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ProtocolViolation(f"{where}: correlation_ids must be a list of strings")
    return ids


def _ours(obj: Mapping[str, Any], where: str) -> str | None:
    for cid in _correlation_ids(obj, where):
        if cid.startswith(CORRELATION_PREFIX):
            return cid[len(CORRELATION_PREFIX) :]
    return None


def _as_up_id(doc: Mapping[str, Any]) -> str | None:
    """The Application Server's id of this uplink (``as:up:...``): TTS's deduplication key."""
    for cid in _correlation_ids(doc, "tts up"):
        if cid.startswith("as:up:"):
            return cid
    return None
