"""Alert e-mails, pure: one message per alert or a digest, and the digest windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.alerts.email import build_message
from controller.config.settings import EmailRule
from controller.faults.data import digest_due

RULE = EmailRule(name="crew", to=["doi1@dongha.vn", "doi2@dongha.vn"])


def alert(n: int, transition: str = "opened") -> dict[str, Any]:
    return {
        "transition": transition, "type": "lampFailure", "severity": "critical",
        "fault_id": str(n), "idempotency_key": f"k{n}", "subject": {"name": f"P1-LD-{n:03d}"},
        "location": {"ward": "Phường 1"}, "message": f"Light P1-LD-{n:03d} has failed",
    }  # fmt: skip


def test_one_alert_one_e_mail() -> None:
    msg = build_message(RULE, [alert(1)], sender="den@dongha.vn", lang="en")
    assert msg["Subject"] == "[streetlight] Fault: lampFailure P1-LD-001, Phường 1 (critical)"
    assert msg["To"] == "doi1@dongha.vn, doi2@dongha.vn"
    assert "Light P1-LD-001 has failed" in msg.get_content()
    assert "key: k1" in msg.get_content()


def test_a_digest_lists_every_alert_even_a_single_one() -> None:
    one = build_message(RULE, [alert(1)], sender="s@x.vn", lang="vi", digest=True)
    assert one["Subject"] == "[streetlight] Tổng hợp cảnh báo chiếu sáng: 1"
    many = build_message(
        RULE, [alert(1), alert(2, "resolved")], sender="s@x.vn", lang="en", digest=True
    )
    assert many["Subject"] == "[streetlight] Street-lighting alert digest: 2"
    lines = many.get_content().splitlines()
    assert lines == ["- Light P1-LD-001 has failed", "- Light P1-LD-002 has failed"]


def test_several_alerts_need_a_digest() -> None:
    with pytest.raises(ValueError, match="one alert per e-mail, or a digest"):
        build_message(RULE, [alert(1), alert(2)], sender="s@x.vn", lang="en")
    with pytest.raises(ValueError, match="one alert per e-mail, or a digest"):
        build_message(RULE, [], sender="s@x.vn", lang="en", digest=True)


def test_a_resend_has_the_same_message_id() -> None:
    first = build_message(RULE, [alert(1)], sender="s@x.vn", lang="en")
    again = build_message(RULE, [alert(1)], sender="s@x.vn", lang="en")
    other = build_message(RULE, [alert(2)], sender="s@x.vn", lang="en")
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]


@pytest.mark.parametrize(
    ("now", "minutes", "due"),
    [
        ("10:07:30", 15, "10:15:00"),
        ("10:15:00", 15, "10:30:00"),  # a window is [start, end): its first instant opens it
        ("10:14:59", 15, "10:15:00"),
        ("23:59:59", 60, "00:00:00"),
    ],
)
def test_digest_windows_are_aligned_on_utc(now: str, minutes: int, due: str) -> None:
    day = datetime(2026, 12, 7, tzinfo=UTC)

    def at(hms: str) -> datetime:
        h, m, s = (int(x) for x in hms.split(":"))
        return day + timedelta(hours=h, minutes=m, seconds=s)

    expected = at(due) + (timedelta(days=1) if due < now else timedelta())
    assert digest_due(at(now), minutes) == expected


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(1, 1440),
)
def test_a_digest_is_due_within_one_window_on_a_window_boundary(
    now: datetime, minutes: int
) -> None:
    due = digest_due(now, minutes)
    assert now < due <= now + timedelta(minutes=minutes)
    assert int(due.timestamp()) % (minutes * 60) == 0
