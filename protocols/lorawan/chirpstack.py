"""ChirpStack v4 MQTT integration: topics, event JSON -> network events, downlinks.

Sources (read for this module): ``chirpstack/chirpstack``
``api/proto/integration/integration.proto`` (``UplinkEvent``, ``JoinEvent``,
``AckEvent``, ``TxAckEvent``, ``StatusEvent``, ``LogEvent``, ``DownlinkCommand``),
``chirpstack/chirpstack-docs``
``src/chirpstack/integrations/mqtt.md`` (topics, the downlink example) and
``events.md`` (event types). The JSON is the protobuf JSON mapping: camelCase names,
bytes in base64, and **fields at their default value (0, false, "") omitted**,
so a missing ``fCnt`` is 0 and an ``ack`` without ``acknowledged`` is a timeout.

Pure: no I/O. See docs/protocol/chirpstack.md.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    ServerLog,
    StatusReport,
    UplinkReceived,
    load_json_object,
    parse_base64,
    parse_dev_eui,
    parse_time,
)
from protocols.lorawan.topic_template import TopicTemplate, check_level

EVENT_TOPIC: Final = "application/{application_id}/device/{dev_eui}/event/{event}"
COMMAND_TOPIC: Final = "application/{application_id}/device/{dev_eui}/command/{command}"
STATE_TOPIC: Final = "application/{application_id}/device/{dev_eui}/state/{event}"
"""Older v4 releases published join/status/location as retained messages on a state topic
(chirpstack ``mqtt.rs`` at 0d4003a); the template is our reading of it, configurable."""

QOS: Final = 0
"""ChirpStack's integration default (``qos = 0``); a bridge may configure 1."""

EVENTS: Final = frozenset(
    {"up", "join", "ack", "txack", "status", "log", "location", "integration"}
)
HANDLED: Final = frozenset({"up", "join", "ack", "txack", "status", "log"})
"""The events the bridge reads; the others are not even parsed."""


@dataclass(frozen=True, slots=True)
class ChirpStackTopics:
    """The integration's topic templates (its ``event_topic`` / ``command_topic`` settings)."""

    event: TopicTemplate = field(default_factory=lambda: TopicTemplate(EVENT_TOPIC))
    command: TopicTemplate = field(default_factory=lambda: TopicTemplate(COMMAND_TOPIC))
    state: TopicTemplate | None = field(default_factory=lambda: TopicTemplate(STATE_TOPIC))

    def subscriptions(self, application_id: str) -> tuple[str, ...]:
        """Every device and event of one application."""
        check_level(application_id, "application id")
        subs = [self.event.wildcard(application_id=application_id)]
        if self.state is not None:
            subs.append(self.state.wildcard(application_id=application_id))
        return tuple(subs)

    def down(self, application_id: str, dev_eui: str) -> str:
        return self.command.fill(application_id=application_id, dev_eui=dev_eui, command="down")

    def parse(self, topic: str) -> tuple[str, str, str] | None:
        """``(application_id, dev_eui, event)`` of an event or state topic, else ``None``."""
        for template in (self.event, self.state):
            if template is None:
                continue
            values = template.parse(topic)
            if values is not None and values.get("event") in EVENTS:
                return values["application_id"], values["dev_eui"], values["event"]
        return None


def encode_downlink(
    topics: ChirpStackTopics,
    *,
    application_id: str,
    dev_eui: str,
    frame: Frame,
    correlation: str,
) -> tuple[str, bytes]:
    """``(topic, payload)`` enqueueing ``frame``; ``correlation`` comes back as ``queueItemId``.

    ChirpStack requires ``id`` to be a UUID and the ``devEui`` to match the topic's.
    """
    dev_eui = parse_dev_eui(dev_eui, "dev_eui").lower()
    try:
        uuid.UUID(correlation)
    except ValueError:
        raise ValueError(
            f"ChirpStack wants a UUID as the downlink id, got {correlation!r}"
        ) from None
    body = {
        "id": correlation,
        "devEui": dev_eui,
        "confirmed": frame.confirmed,
        "fPort": frame.f_port,
        "data": base64.b64encode(frame.payload).decode("ascii"),
    }
    return topics.down(application_id, dev_eui), json.dumps(body, separators=(",", ":")).encode()


def decode_downlink(payload: bytes) -> tuple[str, str | None, Frame]:
    """Fake network server side: a ``command/down`` body -> ``(devEui, id, frame)``."""
    where = "chirpstack down"
    doc = load_json_object(payload, where)
    dev_eui = parse_dev_eui(doc.get("devEui"), f"{where}: devEui")
    f_port = f.integer(doc, "fPort", where, minimum=MIN_F_PORT, maximum=MAX_F_PORT)
    if f_port is None:
        raise ProtocolViolation(f"{where}: fPort is missing (it must be > 0)")
    confirmed = f.boolean(doc, "confirmed", where) or False
    return (
        dev_eui,
        f.text(doc, "id", where),
        Frame(f_port, parse_base64(doc.get("data", ""), f"{where}: data"), confirmed),
    )


def decode_event(topic: str, payload: bytes, topics: ChirpStackTopics) -> NetworkEvent | None:
    """One MQTT message -> an event; ``None`` for a topic or event type the bridge does not use.

    Raises ``ProtocolViolation`` for a body that is not JSON (protobuf) or breaks the
    schema, and for a ``devEui`` that differs from the topic's.
    """
    parsed = topics.parse(topic)
    if parsed is None:
        return None
    application_id, topic_eui, event = parsed
    if event not in HANDLED:
        return None  # location, integration: nothing for the lighting controller
    where = f"chirpstack {event} ({topic})"
    doc = load_json_object(payload, where)
    device = _device(doc, where, application_id, topic_eui)
    at = parse_time(doc["time"], f"{where}: time") if "time" in doc else None
    if event == "up":
        if at is None:
            raise ProtocolViolation(f"{where}: time is missing")
        f_port = f.integer(doc, "fPort", where, minimum=0, maximum=255) or 0
        decoded = f.mapping(doc, "object", where)
        return UplinkReceived(
            device=device,
            at=at,
            dedup_id=f.required_text(doc, "deduplicationId", where),
            f_cnt=f.integer(doc, "fCnt", where, minimum=0, maximum=2**32 - 1) or 0,
            f_port=f_port,
            payload=parse_base64(doc.get("data", ""), f"{where}: data"),
            decoded=decoded,
            confirmed=f.boolean(doc, "confirmed", where) or False,
        )
    if event == "txack":
        return DownlinkEvent(
            device=device,
            at=at,
            stage=DownlinkStage.SENT,
            correlation=f.text(doc, "queueItemId", where),
            f_cnt_down=f.integer(doc, "fCntDown", where, minimum=0) or 0,
            gateway_id=f.text(doc, "gatewayId", where),
        )
    if event == "ack":
        acknowledged = f.boolean(doc, "acknowledged", where) or False
        return DownlinkEvent(
            device=device,
            at=at,
            stage=DownlinkStage.ACKED if acknowledged else DownlinkStage.NOT_ACKED,
            correlation=f.text(doc, "queueItemId", where),
            f_cnt_down=f.integer(doc, "fCntDown", where, minimum=0) or 0,
        )
    if event == "join":
        return Joined(device=device, at=at, dev_addr=f.text(doc, "devAddr", where))
    if event == "status":
        unavailable = f.boolean(doc, "batteryLevelUnavailable", where) or False
        external = f.boolean(doc, "externalPowerSource", where) or False
        battery = f.number(doc, "batteryLevel", where, minimum=0, maximum=100) or 0.0
        return StatusReport(
            device=device,
            at=at,
            margin_db=f.integer(doc, "margin", where, minimum=-128, maximum=127) or 0,
            battery_pct=None if unavailable or external else battery,
            external_power=external,
        )
    if event == "log":
        return ServerLog(
            device=device,
            at=at,
            level=f.text(doc, "level", where) or "INFO",
            code=f.text(doc, "code", where) or "UNKNOWN",
            description=f.text(doc, "description", where) or "",
        )
    raise AssertionError(f"unhandled event {event}")  # HANDLED lists exactly the cases above


def _device(doc: Mapping[str, Any], where: str, application_id: str, topic_eui: str) -> Device:
    info = f.mapping(doc, "deviceInfo", where, required=True)
    assert info is not None  # required=True raised otherwise
    dev_eui = parse_dev_eui(info.get("devEui"), f"{where}: deviceInfo.devEui")
    if dev_eui != topic_eui.lower():
        raise ProtocolViolation(
            f"{where}: deviceInfo.devEui {dev_eui} is not the topic's {topic_eui}"
        )
    body_app = f.text(info, "applicationId", f"{where}: deviceInfo")
    if body_app is not None and body_app != application_id:
        raise ProtocolViolation(
            f"{where}: deviceInfo.applicationId {body_app} is not the topic's {application_id}"
        )
    tags = f.mapping(info, "tags", f"{where}: deviceInfo") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise ProtocolViolation(f"{where}: deviceInfo.tags must map strings to strings")
    return Device(
        device_id=dev_eui,
        application_id=application_id,
        dev_eui=dev_eui,
        profile=f.text(info, "deviceProfileName", f"{where}: deviceInfo"),
        tags=dict(tags),
    )
