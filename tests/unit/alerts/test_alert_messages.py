"""Alert payloads (validated against docs/schemas/alert.schema.json), messages, topics."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.alerts.messages import (
    SCHEMA_VERSION,
    AlertState,
    Lang,
    SubjectInfo,
    alert_body,
    alert_state,
    alert_topic,
    build_alert,
    format_number,
    format_time,
    idempotency_key,
    message,
    ward_slug,
)
from controller.core.values import DeviceFlag
from controller.faults.rules import (
    FAULTS,
    Evidence,
    FaultType,
    Quantity,
    Severity,
    SubjectKind,
)
from controller.faults.tracker import Subject, Transition, TransitionKind

SCHEMA = json.loads(
    (Path(__file__).parents[3] / "docs" / "schemas" / "alert.schema.json").read_text("utf-8")
)
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
SINCE = datetime(2026, 6, 21, 11, 32, tzinfo=UTC)  # 18:32 in Đông Hà
LATER = datetime(2026, 6, 21, 22, 40, tzinfo=UTC)  # 05:40 next morning
F = FaultType
K = TransitionKind

LUMINAIRE = SubjectInfo(
    name="P1-LD-001", street="Lê Duẩn", ward="Phường 1", latitude=16.8163, longitude=107.1003,
    gateway_id=3, gateway_name="GW-P1-01",
)  # fmt: skip
GATEWAY = SubjectInfo(name="GW-P1-01", ward="Phường 1", latitude=16.8170, longitude=107.0990)


def transition(
    fault: FaultType = F.LAMP_UNEXPECTED_OFF,
    kind: TransitionKind = K.OPENED,
    evidence: Evidence | None = None,
    *,
    subject: Subject | None = None,
    at: datetime = SINCE + timedelta(minutes=1),
    actor: str | None = None,
) -> Transition:
    return Transition(
        kind=kind, subject=subject or Subject.luminaire(17), fault_type=fault,
        severity=FAULTS[fault].severity, at=at, since=SINCE, last_seen=at, count=7,
        evidence=evidence, gateway_id=3, actor=actor,
    )  # fmt: skip


def validate(payload: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(payload), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


# --- formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "decimals", "vi", "en"),
    [
        (130.24, 1, "130,2", "130.2"),
        (1234.5, 1, "1.234,5", "1,234.5"),
        (1234567, 0, "1.234.567", "1,234,567"),
        (0.62, 2, "0,62", "0.62"),
        (-3.25, 1, "-3,2", "-3.2"),  # round half to even, as Python formats
        (70, 0, "70", "70"),
    ],
)
def test_format_number(value: float, decimals: int, vi: str, en: str) -> None:
    assert format_number(value, decimals, Lang.VI) == vi
    assert format_number(value, decimals, Lang.EN) == en


@pytest.mark.parametrize(
    ("at", "vi", "en"),
    [
        (SINCE, "18:32 21/06/2026", "18:32 21 Jun 2026"),
        (datetime(2026, 12, 31, 17, 5, tzinfo=UTC), "00:05 01/01/2027", "00:05 1 Jan 2027"),
        (
            datetime(2026, 6, 21, 18, 32, tzinfo=timezone(timedelta(hours=7))),
            "18:32 21/06/2026",
            "18:32 21 Jun 2026",
        ),
    ],
)
def test_times_are_in_the_site_zone(at: datetime, vi: str, en: str) -> None:
    assert format_time(at, ZONE, Lang.VI) == vi
    assert format_time(at, ZONE, Lang.EN) == en


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 6, 21, 18, 32), ZONE)
    with pytest.raises(ValueError, match="timezone-aware"):
        idempotency_key("1", K.OPENED, datetime(2026, 6, 21, 18, 32))


# --- ward slugs and topics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ward", "slug"),
    [
        ("Phường 1", "phuong-1"),
        ("Phường 5", "phuong-5"),
        ("Đông Giang", "dong-giang"),
        ("Đông Lễ", "dong-le"),
        ("Đông Lương", "dong-luong"),
        ("Đông Thanh", "dong-thanh"),
        ("  Phường  2 ", "phuong-2"),
        ("Phường 3 / Khu phố 4", "phuong-3-khu-pho-4"),
        (unicodedata.normalize("NFD", "Đông Lễ"), "dong-le"),  # decomposed input
        ("", "unassigned"),
        (None, "unassigned"),
        ("#+/", "unassigned"),
    ],
)
def test_ward_slug(ward: str | None, slug: str) -> None:
    assert ward_slug(ward) == slug


@given(st.text(max_size=40))
def test_ward_slug_is_always_one_safe_topic_level(ward: str) -> None:
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", ward_slug(ward))


def test_alert_topic() -> None:
    assert alert_topic("streetlight", "Đông Lễ", Severity.CRITICAL) == (
        "streetlight/alerts/dong-le/critical"
    )
    assert alert_topic("city/dongha", None, Severity.WARNING) == (
        "city/dongha/alerts/unassigned/warning"
    )


@pytest.mark.parametrize("prefix", ["", "a/#", "+", "/streetlight", "streetlight/"])
def test_alert_topic_refuses_bad_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        alert_topic(prefix, "Phường 1", Severity.WARNING)


# --- messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "info", "vi", "en"),
    [
        (
            transition(evidence=Evidence(Quantity.LEVEL_PCT, measured=0.0, expected=70.0)),
            LUMINAIRE,
            "Đèn P1-LD-001 (Lê Duẩn, Phường 1) không sáng từ 18:32 21/06/2026 (lịch: bật 70%).",
            "Light P1-LD-001 (Lê Duẩn, Phường 1) is out since 18:32 21 Jun 2026"
            " (schedule: on at 70%).",
        ),
        (
            transition(
                F.LAMP_POWER_TOO_HIGH,
                evidence=Evidence(Quantity.POWER_W, measured=130.24, expected=100.0, high=115.0),
            ),
            LUMINAIRE,
            "Đèn P1-LD-001 (Lê Duẩn, Phường 1) có công suất quá cao từ 18:32 21/06/2026:"
            " đo 130,2 W, mong đợi 100,0 W, tối đa 115,0 W.",
            "Light P1-LD-001 (Lê Duẩn, Phường 1) draws too much power since 18:32 21 Jun 2026:"
            " measured 130.2 W, expected 100.0 W, max 115.0 W.",
        ),
        (
            transition(
                F.SUPPLY_VOLTAGE_TOO_LOW,
                evidence=Evidence(Quantity.VOLTAGE_V, measured=185.06, expected=220.0, low=187.0),
            ),
            LUMINAIRE,
            "Đèn P1-LD-001 (Lê Duẩn, Phường 1) có điện áp nguồn quá thấp từ 18:32 21/06/2026:"
            " đo 185,1 V, tối thiểu 187,0 V.",
            "Light P1-LD-001 (Lê Duẩn, Phường 1) has supply voltage too low since"
            " 18:32 21 Jun 2026: measured 185.1 V, min 187.0 V.",
        ),
        (
            transition(
                F.CYCLING_FAILURE,
                evidence=Evidence(Quantity.FLIPS, measured=12, high=6, window_s=600),
            ),
            LUMINAIRE,
            "Đèn P1-LD-001 (Lê Duẩn, Phường 1) bị chập chờn, bật tắt liên tục từ"
            " 18:32 21/06/2026: 12 lần trong 10 phút.",
            "Light P1-LD-001 (Lê Duẩn, Phường 1) keeps cycling on and off since"
            " 18:32 21 Jun 2026: 12 flips in 10 min.",
        ),
        (
            transition(F.CONTROL_GEAR_COMM_FAILURE),
            LUMINAIRE,
            "Đèn P1-LD-001 (Lê Duẩn, Phường 1) mất liên lạc từ 18:32 21/06/2026"
            " (gateway GW-P1-01 vẫn trực tuyến).",
            "Light P1-LD-001 (Lê Duẩn, Phường 1) is not answering since 18:32 21 Jun 2026"
            " (gateway GW-P1-01 is online).",
        ),
        (
            transition(
                F.SUPPLY_LOSS,
                subject=Subject.gateway(3),
                evidence=Evidence(Quantity.MAINS, measured=0.0, expected=1.0),
            ),
            GATEWAY,
            "Gateway GW-P1-01 (Phường 1) báo mất điện lưới từ 18:32 21/06/2026;"
            " các đèn phía sau không sáng.",
            "Gateway GW-P1-01 (Phường 1) reports mains lost since 18:32 21 Jun 2026;"
            " the lights behind it are dark.",
        ),
        (
            transition(kind=K.RESOLVED, at=LATER),
            LUMINAIRE,
            "Đèn P1-LD-001 (Lê Duẩn, Phường 1) đã hết lỗi “không sáng” lúc 05:40 22/06/2026"
            " (bắt đầu 18:32 21/06/2026).",
            "Light P1-LD-001 (Lê Duẩn, Phường 1): “out at night” cleared at 05:40 22 Jun 2026"
            " (since 18:32 21 Jun 2026).",
        ),
        (
            transition(kind=K.RESOLVED, at=LATER, actor="Nguyễn Văn An"),
            LUMINAIRE,
            "Đèn P1-LD-001 (Lê Duẩn, Phường 1): lỗi “không sáng” (từ 18:32 21/06/2026)"
            " đã được Nguyễn Văn An đóng lúc 05:40 22/06/2026.",
            "Light P1-LD-001 (Lê Duẩn, Phường 1): “out at night” (since 18:32 21 Jun 2026)"
            " closed by Nguyễn Văn An at 05:40 22 Jun 2026.",
        ),
        (
            transition(kind=K.ACKNOWLEDGED, at=LATER, actor="Tổ 3"),
            LUMINAIRE,
            "Đèn P1-LD-001 (Lê Duẩn, Phường 1): lỗi “không sáng” (từ 18:32 21/06/2026)"
            " đã được Tổ 3 tiếp nhận lúc 05:40 22/06/2026.",
            "Light P1-LD-001 (Lê Duẩn, Phường 1): “out at night” (since 18:32 21 Jun 2026)"
            " acknowledged by Tổ 3 at 05:40 22 Jun 2026.",
        ),
    ],
)
def test_messages(t: Transition, info: SubjectInfo, vi: str, en: str) -> None:
    assert message(t, info, ZONE, Lang.VI) == vi
    assert message(t, info, ZONE, Lang.EN) == en


def test_updated_message_counts_observations() -> None:
    t = transition(kind=K.UPDATED, evidence=Evidence(Quantity.LEVEL_PCT, 0.0, expected=100.0))
    assert message(t, LUMINAIRE, ZONE) == (
        "Đèn P1-LD-001 (Lê Duẩn, Phường 1) vẫn không sáng từ 18:32 21/06/2026"
        " (lịch: bật 100%) (7 lần ghi nhận)."
    )


def test_a_pole_label_and_a_missing_location() -> None:
    info = SubjectInfo(name="LD-001", pole="P1-17")
    assert message(transition(F.LAMP_FAILURE), info, ZONE).startswith("Đèn LD-001 / P1-17 bị hỏng")


@pytest.mark.parametrize("fault", list(FaultType))
def test_every_fault_has_a_vietnamese_message_with_diacritics(fault: FaultType) -> None:
    kind = SubjectKind.GATEWAY if fault is F.GATEWAY_OFFLINE else SubjectKind.LUMINAIRE
    subject = Subject(kind, 3)
    vi = message(transition(fault, subject=subject), LUMINAIRE, ZONE, Lang.VI)
    en = message(transition(fault, subject=subject), LUMINAIRE, ZONE, Lang.EN)
    assert "từ 18:32 21/06/2026" in vi
    predicate = vi.split(") ", 1)[1].split(" từ ")[0]
    assert any(ord(ch) > 0x7F for ch in predicate), predicate  # Vietnamese, with diacritics
    assert "since 18:32 21 Jun 2026" in en
    assert vi != en


# --- payload ---------------------------------------------------------------------------------

EVIDENCE_EXAMPLES: dict[FaultType, Evidence | None] = {
    F.LAMP_FAILURE: Evidence(Quantity.FLAG, flag=DeviceFlag.LAMP_FAILURE),
    F.CONTROL_GEAR_FAILURE: Evidence(Quantity.FLAG, flag=DeviceFlag.DRIVER_FAILURE),
    F.CONTROL_GEAR_COMM_FAILURE: Evidence(Quantity.FLAG, flag=DeviceFlag.NOT_ANSWERING),
    F.LAMP_UNEXPECTED_ON: Evidence(Quantity.POWER_W, measured=100.2, expected=0.0, high=2.0),
    F.LAMP_UNEXPECTED_OFF: Evidence(Quantity.LEVEL_PCT, measured=0.0, expected=70.0),
    F.LAMP_POWER_TOO_HIGH: Evidence(Quantity.POWER_W, 130.0, expected=100.0, high=115.0),
    F.LAMP_POWER_TOO_LOW: Evidence(Quantity.POWER_W, 50.7, expected=72.4, low=61.54),
    F.SUPPLY_VOLTAGE_TOO_HIGH: Evidence(Quantity.VOLTAGE_V, 250.3, expected=220.0, high=242.0),
    F.SUPPLY_VOLTAGE_TOO_LOW: Evidence(Quantity.VOLTAGE_V, 185.0, expected=220.0, low=187.0),
    F.POWER_FACTOR_TOO_LOW: Evidence(Quantity.POWER_FACTOR, 0.62, low=0.85),
    F.CYCLING_FAILURE: Evidence(Quantity.FLIPS, 12.0, high=6.0, window_s=600.0),
    F.CONTROL_GEAR_THERMAL_DERATING: Evidence(
        Quantity.TEMPERATURE_C, 92.1, flag=DeviceFlag.OVER_TEMPERATURE
    ),
    F.SUPPLY_LOSS: Evidence(Quantity.MAINS, measured=0.0, expected=1.0),
    F.GATEWAY_OFFLINE: Evidence(Quantity.SILENCE_S, measured=45.0),
}


@pytest.mark.parametrize("kind", list(TransitionKind))
@pytest.mark.parametrize("fault", list(FaultType))
def test_every_alert_validates_against_the_schema(fault: FaultType, kind: TransitionKind) -> None:
    gateway_fault = fault is F.GATEWAY_OFFLINE
    t = transition(
        fault,
        kind,
        EVIDENCE_EXAMPLES[fault],
        subject=Subject.gateway(3) if gateway_fault else Subject.luminaire(17),
        actor="an" if kind is K.ACKNOWLEDGED else None,
    )
    payload = build_alert(
        t, fault_id=42, subject=GATEWAY if gateway_fault else LUMINAIRE, zone=ZONE
    )
    validate(payload)
    assert payload["type"] == str(fault)
    assert payload["state"] == alert_state(kind)
    assert (payload["subject"]["gateway"] is None) == gateway_fault


def test_alert_payload_example() -> None:
    t = transition(
        F.LAMP_POWER_TOO_LOW,
        evidence=Evidence(Quantity.POWER_W, 50.70001, expected=72.4, low=61.54),
    )
    payload = build_alert(t, fault_id="f-9", subject=LUMINAIRE, zone=ZONE)
    validate(payload)
    assert payload["schema"] == SCHEMA_VERSION
    assert payload["fault_id"] == "f-9"
    assert payload["talq"] == "LampMonitorFunction.lampPowerTooLow"
    assert payload["severity"] == "warning"
    assert payload["state"] == "open"
    assert payload["subject"] == {
        "kind": "luminaire", "id": 17, "name": "P1-LD-001", "pole": None,
        "gateway": {"id": 3, "name": "GW-P1-01"},
    }  # fmt: skip
    assert payload["location"] == {
        "street": "Lê Duẩn", "ward": "Phường 1", "ward_slug": "phuong-1",
        "latitude": 16.8163, "longitude": 107.1003,
    }  # fmt: skip
    assert payload["since"] == "2026-06-21T18:32:00+07:00"
    assert payload["at"] == "2026-06-21T18:33:00+07:00"
    assert payload["evidence"] == {
        "quantity": "power_w", "unit": "W", "measured": 50.7, "expected": 72.4, "low": 61.54,
        "high": None, "window_s": None, "flag": None,
    }  # fmt: skip
    assert payload["message_vi"].startswith("Đèn P1-LD-001 (Lê Duẩn, Phường 1) có công suất")
    assert payload["idempotency_key"] == idempotency_key("f-9", K.OPENED, t.at)


def test_acknowledged_state_can_be_passed_for_an_update() -> None:
    payload = build_alert(
        transition(kind=K.UPDATED), fault_id=1, subject=LUMINAIRE, zone=ZONE,
        state=AlertState.ACKNOWLEDGED,
    )  # fmt: skip
    validate(payload)
    assert payload["state"] == "acknowledged"


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.pop("message_vi"),
        lambda p: p.update(severity="minor"),
        lambda p: p.update(type="lampOnFire"),
        lambda p: p.update(since="21/06/2026 18:32"),
        lambda p: p.update(idempotency_key="not-hex"),
        lambda p: p["location"].update(ward_slug="Phường 1"),
        lambda p: p["location"].update(latitude=91.0),
        lambda p: p.update(extra=1),
        lambda p: p.update(count=0),
    ],
)
def test_the_schema_rejects_broken_alerts(damage: Any) -> None:
    payload = build_alert(transition(), fault_id=1, subject=LUMINAIRE, zone=ZONE)
    validate(payload)
    damage(payload)
    assert list(VALIDATOR.iter_errors(payload))


def test_idempotency_key_is_stable_and_distinct() -> None:
    key = idempotency_key("42", K.OPENED, SINCE)
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert idempotency_key("42", K.OPENED, SINCE.astimezone(ZONE)) == key  # same instant
    assert len({
        key,
        idempotency_key("43", K.OPENED, SINCE),
        idempotency_key("42", K.RESOLVED, SINCE),
        idempotency_key("42", K.OPENED, SINCE + timedelta(microseconds=1)),
    }) == 4  # fmt: skip


def test_alert_body_is_canonical_utf8() -> None:
    payload = build_alert(transition(), fault_id=1, subject=LUMINAIRE, zone=ZONE)
    body = alert_body(payload)
    assert "Lê Duẩn".encode() in body  # not \u-escaped
    assert json.loads(body) == payload
    reordered = dict(reversed(list(payload.items())))
    assert alert_body(reordered) == body
    assert body.startswith(b'{"actor":null,"at":"2026-06-21T18:33:00+07:00","count":7,')
