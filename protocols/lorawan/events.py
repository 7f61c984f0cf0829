"""What a network server tells us, the same for ChirpStack v4 and The Things Stack v3.

:mod:`protocols.lorawan.chirpstack` and :mod:`protocols.lorawan.tts` parse their
own JSON into these; the bridge handles one set of events whichever server it
talks to. Pure data: no I/O.

Downlink correlation: the bridge gives each downlink an id
(:attr:`DownlinkEvent.correlation`): ChirpStack echoes it as ``queueItemId``, The
Things Stack as one of the ``correlation_ids``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from controller.core.errors import ProtocolViolation

DEV_EUI_RE: Final = re.compile(r"[0-9a-fA-F]{16}")


@dataclass(frozen=True, slots=True)
class Device:
    """Which end device an event is about.

    ``device_id`` is the network server's name for it: ChirpStack addresses devices
    by DevEUI, The Things Stack by its device id. ``profile`` names the codec
    (ChirpStack ``deviceProfileName``; The Things Stack has no profile name in its
    messages, so the bridge configures it per device or reads an attribute).
    ``tags`` are ChirpStack's device(-profile) tags or TTS's end-device attributes.
    """

    device_id: str
    application_id: str
    dev_eui: str | None = None
    profile: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UplinkReceived:
    """A data uplink: ``payload`` on ``f_port``; ``decoded`` when the server ran a codec."""

    device: Device
    at: datetime
    dedup_id: str | None
    f_cnt: int
    f_port: int
    payload: bytes
    decoded: Mapping[str, Any] | None = None
    confirmed: bool = False


class DownlinkStage(StrEnum):
    """How far a downlink got.

    ``QUEUED``: in the server's queue (TTS ``down/queued``). ``SENT``: a gateway
    accepted it for transmission (ChirpStack ``txack``, TTS ``down/sent``); for a
    class A node that is at its next receive window, and it still does not prove
    the node heard it. ``ACKED``: the node confirmed a *confirmed* downlink
    (ChirpStack ``ack`` with ``acknowledged``, TTS ``down/ack``). ``NOT_ACKED``:
    the confirmation timed out or was negative (ChirpStack ``ack`` without
    ``acknowledged``, TTS ``down/nack``). ``FAILED``: the server gave up (TTS
    ``down/failed``).
    """

    QUEUED = "queued"
    SENT = "sent"
    ACKED = "acked"
    NOT_ACKED = "not_acked"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DownlinkEvent:
    """A downlink moved to ``stage``. ``correlation`` is the id the bridge gave it, if known."""

    device: Device
    at: datetime | None
    stage: DownlinkStage
    correlation: str | None
    f_cnt_down: int | None = None
    gateway_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Joined:
    """The device (re)joined: its frame counters restart from 0."""

    device: Device
    at: datetime | None
    dev_addr: str | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A DevStatusAns (ChirpStack ``status``): link margin in dB, battery in percent or ``None``."""

    device: Device
    at: datetime | None
    margin_db: int
    battery_pct: float | None
    external_power: bool


@dataclass(frozen=True, slots=True)
class ServerLog:
    """A log line about the device from the server (ChirpStack ``log``: codec errors, ...)."""

    device: Device
    at: datetime | None
    level: str
    code: str
    description: str


NetworkEvent = UplinkReceived | DownlinkEvent | Joined | StatusReport | ServerLog


def load_json_object(payload: bytes, where: str) -> dict[str, Any]:
    """Parse an event body; refuse anything that is not a JSON object (protobuf, above all).

    ChirpStack's integration can marshal events as protobuf (``json = false``); the
    bridge reads JSON only and says so instead of failing somewhere deeper.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation(
            f"{where}: payload is not UTF-8 JSON (protobuf? set the integration to JSON)"
        ) from None
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise ProtocolViolation(
            f"{where}: payload is not JSON ({exc}); protobuf? set the integration to JSON"
        ) from None
    if not isinstance(doc, dict):
        raise ProtocolViolation(f"{where}: payload must be a JSON object, got {type(doc).__name__}")
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_time(value: Any, where: str) -> datetime:
    """An RFC 3339 instant with an offset (nanoseconds are cut to microseconds)."""
    if not isinstance(value, str):
        raise ProtocolViolation(f"{where} must be an RFC 3339 string, got {value!r}")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ProtocolViolation(f"{where} is not an RFC 3339 instant: {value!r}") from None
    if at.tzinfo is None:
        raise ProtocolViolation(f"{where} has no UTC offset: {value!r}")
    return at


def parse_dev_eui(value: Any, where: str) -> str:
    """A DevEUI as 16 hex digits, returned lower-case."""
    if not isinstance(value, str) or not DEV_EUI_RE.fullmatch(value):
        raise ProtocolViolation(f"{where} must be 16 hex digits, got {value!r}")
    return value.lower()


def parse_base64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ProtocolViolation(f"{where} must be a base64 string, got {value!r}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ProtocolViolation(f"{where} is not base64: {value!r}") from None
