"""Alert payloads and crew messages, pure: a fault transition in, JSON and text out.

The payload follows docs/schemas/alert.schema.json (``schema: "streetlight.alert/1"``).
Messages exist in Vietnamese (the default, with diacritics) and English. Instants in
messages are local to the site's zone (``Asia/Ho_Chi_Minh`` for Đông Hà) as
``HH:MM dd/mm/yyyy``; instants in the payload are ISO 8601 with the site's offset.
Vietnamese numbers use a decimal comma and a dot between thousands (``1.234,5 W``).

MQTT routing: alerts go to ``{prefix}/alerts/{ward_slug}/{severity}``, the ward slug being
the ward name without diacritics, lower case, words joined by ``-`` (``Phường 1`` ->
``phuong-1``, ``Đông Lễ`` -> ``dong-le``); a subject without a ward goes to
``unassigned``.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Any

from controller.faults.rules import FAULTS, Evidence, FaultType, Quantity, Severity, SubjectKind
from controller.faults.tracker import Transition, TransitionKind

__all__ = [
    "SCHEMA_VERSION",
    "UNASSIGNED_WARD",
    "AlertState",
    "Lang",
    "SubjectInfo",
    "alert_body",
    "alert_state",
    "alert_topic",
    "build_alert",
    "format_number",
    "format_time",
    "idempotency_key",
    "message",
    "ward_slug",
]

SCHEMA_VERSION = "streetlight.alert/1"
UNASSIGNED_WARD = "unassigned"
"""Ward slug of a subject whose ward is not known."""

JsonObject = dict[str, Any]


class Lang(StrEnum):
    """Message language."""

    VI = "vi"
    EN = "en"


class AlertState(StrEnum):
    """The fault's state after the transition (what the crew's app shows)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class SubjectInfo:
    """How the crews find the subject (from the inventory).

    For a luminaire: its name (often the pole number), pole label if different, street,
    ward, position, and the gateway it sits behind. For a gateway: its name, ward and
    position; ``gateway_*`` stay None.
    """

    name: str
    pole: str | None = None
    street: str | None = None
    ward: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    gateway_id: int | None = None
    gateway_name: str | None = None


# --- formatting ---------------------------------------------------------------------------


def format_number(value: float, decimals: int, lang: Lang = Lang.VI) -> str:
    """``value`` rounded to ``decimals`` places in the language's convention.

    Vietnamese: ``1.234,5``; English: ``1,234.5``.
    """
    text = f"{value:,.{decimals}f}"
    if lang is Lang.VI:
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


def format_time(at: datetime, zone: tzinfo, lang: Lang = Lang.VI) -> str:
    """``at`` in the site's zone: ``18:32 21/06/2026`` (vi) or ``18:32 21 Jun 2026`` (en)."""
    if at.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    local = at.astimezone(zone)
    if lang is Lang.VI:
        return local.strftime("%H:%M %d/%m/%Y")
    return f"{local:%H:%M} {local.day} {_MONTHS_EN[local.month - 1]} {local.year}"


_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def ward_slug(ward: str | None) -> str:
    """ASCII topic level for a ward: ``Phường 1`` -> ``phuong-1``, ``Đông Lễ`` -> ``dong-le``.

    Diacritics are dropped (``đ`` becomes ``d``: Unicode does not decompose it), runs of
    anything but letters and digits become one ``-``. Empty or None: ``unassigned``.
    """
    if not ward:
        return UNASSIGNED_WARD
    text = ward.replace("Đ", "D").replace("đ", "d")
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return text or UNASSIGNED_WARD


def alert_topic(prefix: str, ward: str | None, severity: Severity) -> str:
    """``{prefix}/alerts/{ward_slug}/{severity}``: crews subscribe per ward and severity."""
    if not prefix or any(ch in "+#" for ch in prefix) or prefix.strip("/") != prefix:
        raise ValueError(f"topic prefix must be non-empty, without + # or edge /: {prefix!r}")
    return f"{prefix}/alerts/{ward_slug(ward)}/{severity}"


def idempotency_key(fault_id: str, kind: TransitionKind, at: datetime) -> str:
    """Stable key of one transition of one fault: 32 hex digits of SHA-256.

    The same fault, transition and instant (in any zone) always give the same key, so a
    receiver can drop a redelivered alert.
    """
    if at.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    material = f"{fault_id}\n{kind}\n{at.astimezone(UTC).isoformat()}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def alert_state(kind: TransitionKind) -> AlertState:
    """The fault's state once this transition happened."""
    if kind is TransitionKind.RESOLVED:
        return AlertState.RESOLVED
    if kind is TransitionKind.ACKNOWLEDGED:
        return AlertState.ACKNOWLEDGED
    return AlertState.OPEN


# --- messages -----------------------------------------------------------------------------

_TITLES: Mapping[FaultType, tuple[str, str]] = {
    FaultType.LAMP_FAILURE: ("hỏng đèn", "lamp failure"),
    FaultType.CONTROL_GEAR_FAILURE: ("hỏng bộ nguồn (driver)", "driver failure"),
    FaultType.CONTROL_GEAR_COMM_FAILURE: ("mất liên lạc", "not answering"),
    FaultType.LAMP_UNEXPECTED_ON: ("sáng ban ngày", "burning by day"),
    FaultType.LAMP_UNEXPECTED_OFF: ("không sáng", "out at night"),
    FaultType.LAMP_POWER_TOO_HIGH: ("công suất quá cao", "power too high"),
    FaultType.LAMP_POWER_TOO_LOW: ("công suất quá thấp", "power too low"),
    FaultType.SUPPLY_VOLTAGE_TOO_HIGH: ("điện áp nguồn quá cao", "supply voltage too high"),
    FaultType.SUPPLY_VOLTAGE_TOO_LOW: ("điện áp nguồn quá thấp", "supply voltage too low"),
    FaultType.POWER_FACTOR_TOO_LOW: ("hệ số công suất thấp", "power factor too low"),
    FaultType.CYCLING_FAILURE: ("chập chờn", "cycling on and off"),
    FaultType.CONTROL_GEAR_THERMAL_DERATING: ("bộ nguồn quá nhiệt", "driver overheating"),
    FaultType.SUPPLY_LOSS: ("mất điện nguồn", "supply lost"),
    FaultType.GATEWAY_OFFLINE: ("mất kết nối", "offline"),
}
"""Short title of each fault (vi, en), used in resolved/acknowledged messages."""

_PREDICATES: Mapping[FaultType, tuple[str, str]] = {
    FaultType.LAMP_FAILURE: (
        "bị hỏng, không sáng dù đang được bật",
        "has failed: dark although switched on",
    ),
    FaultType.CONTROL_GEAR_FAILURE: ("bị hỏng bộ nguồn (driver)", "reports a driver failure"),
    FaultType.CONTROL_GEAR_COMM_FAILURE: ("mất liên lạc", "is not answering"),
    FaultType.LAMP_UNEXPECTED_ON: (
        "sáng ban ngày (lịch: tắt)",
        "is burning by day (schedule: off)",
    ),
    FaultType.LAMP_UNEXPECTED_OFF: ("không sáng", "is out"),
    FaultType.LAMP_POWER_TOO_HIGH: ("có công suất quá cao", "draws too much power"),
    FaultType.LAMP_POWER_TOO_LOW: ("có công suất quá thấp", "draws too little power"),
    FaultType.SUPPLY_VOLTAGE_TOO_HIGH: ("có điện áp nguồn quá cao", "has supply voltage too high"),
    FaultType.SUPPLY_VOLTAGE_TOO_LOW: ("có điện áp nguồn quá thấp", "has supply voltage too low"),
    FaultType.POWER_FACTOR_TOO_LOW: ("có hệ số công suất thấp", "has a low power factor"),
    FaultType.CYCLING_FAILURE: ("bị chập chờn, bật tắt liên tục", "keeps cycling on and off"),
    FaultType.CONTROL_GEAR_THERMAL_DERATING: ("có bộ nguồn quá nhiệt", "has an overheating driver"),
    FaultType.SUPPLY_LOSS: ("bị mất điện nguồn", "has lost its supply"),
    FaultType.GATEWAY_OFFLINE: ("mất kết nối", "is offline"),
}

_GATEWAY_PREDICATES: Mapping[FaultType, tuple[str, str]] = {
    FaultType.SUPPLY_LOSS: ("báo mất điện lưới", "reports mains lost"),
}
"""Where a gateway needs other words than a luminaire."""

_UNITS: Mapping[Quantity, tuple[str, int]] = {
    Quantity.POWER_W: ("W", 1),
    Quantity.VOLTAGE_V: ("V", 1),
    Quantity.POWER_FACTOR: ("", 2),
    Quantity.TEMPERATURE_C: ("°C", 1),
    Quantity.FLIPS: ("", 0),
    Quantity.LEVEL_PCT: ("%", 0),
    Quantity.SILENCE_S: ("s", 0),
    Quantity.MAINS: ("", 0),
    Quantity.FLAG: ("", 0),
}
"""Unit and decimals of each quantity in messages and in the payload's ``evidence.unit``."""


def _who(kind: SubjectKind, info: SubjectInfo, lang: Lang) -> str:
    """``Đèn P1-LD-001 (Lê Duẩn, Phường 1)`` / ``Gateway GW-01 (Phường 1)``."""
    noun = {
        (SubjectKind.LUMINAIRE, Lang.VI): "Đèn",
        (SubjectKind.LUMINAIRE, Lang.EN): "Light",
        (SubjectKind.GATEWAY, Lang.VI): "Gateway",
        (SubjectKind.GATEWAY, Lang.EN): "Gateway",
    }[(kind, lang)]
    name = info.name if not info.pole or info.pole == info.name else f"{info.name} / {info.pole}"
    where = ", ".join(part for part in (info.street, info.ward) if part)
    return f"{noun} {name} ({where})" if where else f"{noun} {name}"


def _detail(fault: FaultType, ev: Evidence | None, info: SubjectInfo, lang: Lang) -> str:
    """``: đo 130,2 W, mong đợi 100,0 W (tối đa 115,0 W)`` style evidence, or ``""``."""
    vi = lang is Lang.VI

    def num(value: float, quantity: Quantity) -> str:
        unit, decimals = _UNITS[quantity]
        text = format_number(value, decimals, lang)
        if not unit:
            return text
        return f"{text}{unit}" if unit == "%" else f"{text} {unit}"

    if fault is FaultType.CONTROL_GEAR_COMM_FAILURE and info.gateway_name:
        return (
            f" (gateway {info.gateway_name} vẫn trực tuyến)"
            if vi
            else f" (gateway {info.gateway_name} is online)"
        )
    if fault is FaultType.SUPPLY_LOSS and ev is not None and ev.quantity is Quantity.MAINS:
        return "; các đèn phía sau không sáng" if vi else "; the lights behind it are dark"
    if ev is None or ev.measured is None or ev.quantity in {Quantity.FLAG, Quantity.MAINS}:
        return ""
    q = ev.quantity
    if q is Quantity.FLIPS:
        minutes = format_number((ev.window_s or 0.0) / 60.0, 0, lang)
        count = format_number(ev.measured, 0, lang)
        return f": {count} lần trong {minutes} phút" if vi else f": {count} flips in {minutes} min"
    if q is Quantity.LEVEL_PCT:
        if ev.expected is None:
            return ""
        level = num(ev.expected, q)
        return f" (lịch: bật {level})" if vi else f" (schedule: on at {level})"
    if q is Quantity.SILENCE_S:
        silent = num(ev.measured, q)
        return f" (không phản hồi {silent})" if vi else f" (silent for {silent})"
    parts = [f"đo {num(ev.measured, q)}" if vi else f"measured {num(ev.measured, q)}"]
    if ev.expected is not None and q is Quantity.POWER_W:
        parts.append(f"mong đợi {num(ev.expected, q)}" if vi else f"expected {num(ev.expected, q)}")
    if ev.high is not None:
        parts.append(f"tối đa {num(ev.high, q)}" if vi else f"max {num(ev.high, q)}")
    if ev.low is not None:
        parts.append(f"tối thiểu {num(ev.low, q)}" if vi else f"min {num(ev.low, q)}")
    return ": " + ", ".join(parts)


def message(transition: Transition, info: SubjectInfo, zone: tzinfo, lang: Lang = Lang.VI) -> str:
    """The crews' one-line message for a transition, instants in ``zone``.

    ``Đèn P1-LD-001 (Lê Duẩn, Phường 1) không sáng từ 18:32 21/06/2026 (lịch: bật 70%).``
    """
    vi = lang is Lang.VI
    t = transition
    who = _who(t.subject.kind, info, lang)
    since = format_time(t.since, zone, lang)
    at = format_time(t.at, zone, lang)
    i = 0 if vi else 1
    title = _TITLES[t.fault_type][i]
    predicates = _GATEWAY_PREDICATES if t.subject.kind is SubjectKind.GATEWAY else {}
    predicate = predicates.get(t.fault_type, _PREDICATES[t.fault_type])[i]
    detail = _detail(t.fault_type, t.evidence, info, lang)
    if t.kind is TransitionKind.OPENED:
        if vi:
            return f"{who} {predicate} từ {since}{detail}."
        return f"{who} {predicate} since {since}{detail}."
    if t.kind is TransitionKind.UPDATED:
        count = format_number(t.count, 0, lang)
        if vi:
            return f"{who} vẫn {predicate} từ {since}{detail} ({count} lần ghi nhận)."
        return f"{who} still {predicate} since {since}{detail} ({count} observations)."
    if t.kind is TransitionKind.ACKNOWLEDGED:
        if vi:
            by = t.actor or "tổ kỹ thuật"
            return f"{who}: lỗi “{title}” (từ {since}) đã được {by} tiếp nhận lúc {at}."
        by = f" by {t.actor}" if t.actor else ""
        return f"{who}: “{title}” (since {since}) acknowledged{by} at {at}."
    if t.actor:
        if vi:
            return f"{who}: lỗi “{title}” (từ {since}) đã được {t.actor} đóng lúc {at}."
        return f"{who}: “{title}” (since {since}) closed by {t.actor} at {at}."
    if vi:
        return f"{who} đã hết lỗi “{title}” lúc {at} (bắt đầu {since})."
    return f"{who}: “{title}” cleared at {at} (since {since})."


# --- payload ------------------------------------------------------------------------------


def _evidence_json(ev: Evidence | None) -> JsonObject | None:
    if ev is None:
        return None

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return {
        "quantity": str(ev.quantity),
        "unit": _UNITS[ev.quantity][0],
        "measured": r(ev.measured),
        "expected": r(ev.expected),
        "low": r(ev.low),
        "high": r(ev.high),
        "window_s": r(ev.window_s),
        "flag": None if ev.flag is None else str(ev.flag),
    }


def build_alert(
    transition: Transition,
    *,
    fault_id: str | int,
    subject: SubjectInfo,
    zone: tzinfo,
    state: AlertState | None = None,
) -> JsonObject:
    """The JSON alert (docs/schemas/alert.schema.json) for one transition of one fault.

    ``fault_id``: the fault's record id (or a placeholder until it has one). ``state``
    defaults to what the transition implies (an update of an acknowledged fault may pass
    ``acknowledged``).
    """
    t = transition
    fid = str(fault_id)

    def iso(d: datetime) -> str:
        return d.astimezone(zone).isoformat(timespec="seconds")

    gateway: JsonObject | None = None
    if t.subject.kind is SubjectKind.LUMINAIRE and (
        subject.gateway_id is not None or t.gateway_id is not None
    ):
        gateway = {
            "id": subject.gateway_id if subject.gateway_id is not None else t.gateway_id,
            "name": subject.gateway_name,
        }
    return {
        "schema": SCHEMA_VERSION,
        "idempotency_key": idempotency_key(fid, t.kind, t.at),
        "fault_id": fid,
        "transition": str(t.kind),
        "type": str(t.fault_type),
        "talq": FAULTS[t.fault_type].talq,
        "severity": str(t.severity),
        "state": str(state or alert_state(t.kind)),
        "subject": {
            "kind": str(t.subject.kind),
            "id": t.subject.id,
            "name": subject.name,
            "pole": subject.pole,
            "gateway": gateway,
        },
        "location": {
            "street": subject.street,
            "ward": subject.ward,
            "ward_slug": ward_slug(subject.ward),
            "latitude": subject.latitude,
            "longitude": subject.longitude,
        },
        "since": iso(t.since),
        "at": iso(t.at),
        "last_seen": iso(t.last_seen),
        "count": t.count,
        "evidence": _evidence_json(t.evidence),
        "actor": t.actor,
        "message_vi": message(t, subject, zone, Lang.VI),
        "message_en": message(t, subject, zone, Lang.EN),
    }


def alert_body(alert: Mapping[str, Any]) -> bytes:
    """Canonical UTF-8 JSON of an alert (sorted keys, no spaces): what is sent and signed."""
    return json.dumps(alert, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
