"""Topic names of the MQTT contract (docs/protocol/mqtt.md). Pure: no I/O.

Every topic is ``{prefix}/gw/{gateway_id}/{kind}``. A gateway id is one topic
level: non-empty, at most 128 characters, no ``/``, ``+``, ``#`` nor control
characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

MAX_GATEWAY_ID_LEN = 128

QOS: Final = 1
"""Every topic of the contract is QoS 1 (see docs/protocol/mqtt.md for why)."""


class TopicKind(StrEnum):
    """The last topic level: what the message is."""

    CMD = "cmd"
    """controller -> gateway, QoS 1: a batched dimming command."""
    ACK = "ack"
    """gateway -> controller, QoS 1: the per-address outcome of one command."""
    STATE = "state"
    """gateway -> controller, QoS 1: periodic telemetry of the gateway and its luminaires."""
    EVENTS = "events"
    """gateway -> controller, QoS 1: luminaire flags raised or cleared."""
    AVAILABILITY = "availability"
    """gateway -> controller, QoS 1, retained: ``online`` / ``offline`` (the Last Will)."""


CONTROLLER_SUBSCRIPTIONS = (
    TopicKind.ACK,
    TopicKind.STATE,
    TopicKind.EVENTS,
    TopicKind.AVAILABILITY,
)
"""What the controller subscribes to, one wildcard ``{prefix}/gw/+/{kind}`` each."""


def check_gateway_id(gateway_id: str) -> str:
    """Return ``gateway_id`` if it can be one topic level, else raise ``ValueError``."""
    if not gateway_id or len(gateway_id) > MAX_GATEWAY_ID_LEN:
        raise ValueError(f"gateway id must be 1..{MAX_GATEWAY_ID_LEN} characters: {gateway_id!r}")
    if any(ch in "/+#" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in gateway_id):
        raise ValueError(f"gateway id must not contain / + # or control characters: {gateway_id!r}")
    return gateway_id


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics under one prefix (``MqttSettings.prefix``, default ``streetlight``)."""

    prefix: str

    def __post_init__(self) -> None:
        if not self.prefix or any(ch in "+#" for ch in self.prefix):
            raise ValueError(f"topic prefix must be non-empty without + or #: {self.prefix!r}")
        if self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError(f"topic prefix must not start or end with /: {self.prefix!r}")

    def topic(self, gateway_id: str, kind: TopicKind) -> str:
        return f"{self.prefix}/gw/{check_gateway_id(gateway_id)}/{kind}"

    def wildcard(self, kind: TopicKind) -> str:
        """``{prefix}/gw/+/{kind}``: one subscription covering every gateway."""
        return f"{self.prefix}/gw/+/{kind}"

    def parse(self, topic: str) -> tuple[str, TopicKind] | None:
        """Split a topic into ``(gateway_id, kind)``; ``None`` if it is not one of ours."""
        head = f"{self.prefix}/gw/"
        if not topic.startswith(head):
            return None
        gateway_id, sep, kind = topic[len(head) :].partition("/")
        if not sep or not gateway_id or "/" in kind:
            return None
        try:
            return check_gateway_id(gateway_id), TopicKind(kind)
        except ValueError:
            return None
