"""Alert e-mails over SMTP (aiosmtplib): one message per alert, or a digest of many."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from controller.config.settings import EmailRule, EmailSettings

_SUBJECT = {
    "vi": {"opened": "Sự cố", "acknowledged": "Đã tiếp nhận", "resolved": "Đã khắc phục"},
    "en": {"opened": "Fault", "acknowledged": "Acknowledged", "resolved": "Resolved"},
}
_DIGEST = {"vi": "Tổng hợp cảnh báo chiếu sáng", "en": "Street-lighting alert digest"}


def _line(alert: dict[str, Any]) -> str:
    return str(
        alert.get("message") or f"{alert.get('type')} {alert.get('subject', {}).get('name')}"
    )


def message_id(keys: Sequence[str]) -> str:
    """``Message-ID`` of the e-mail for these alerts' idempotency keys: the same on a resend
    (delivery is at-least-once), so a mail system that drops duplicates drops it."""
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]
    return f"<{digest}@streetlight.alerts>"


def build_message(
    rule: EmailRule,
    alerts: Sequence[dict[str, Any]],
    *,
    sender: str,
    lang: str,
    digest: bool = False,
) -> EmailMessage:
    """One e-mail for one alert, or (``digest``) a digest of ``alerts``, one line each."""
    if not alerts or (len(alerts) > 1 and not digest):
        raise ValueError("one alert per e-mail, or a digest")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(rule.to)
    msg["Message-ID"] = message_id([str(a.get("idempotency_key")) for a in alerts])
    words = _SUBJECT.get(lang, _SUBJECT["en"])
    if not digest:
        a = alerts[0]
        subject = a.get("subject", {})
        where = ", ".join(
            str(x) for x in (subject.get("name"), a.get("location", {}).get("ward")) if x
        )
        msg["Subject"] = (
            f"[streetlight] {words.get(str(a.get('transition')), a.get('transition'))}: "
            f"{a.get('type')} {where} ({a.get('severity')})"
        )
        body = [_line(a), "", f"id: {a.get('fault_id')}  key: {a.get('idempotency_key')}"]
    else:
        msg["Subject"] = f"[streetlight] {_DIGEST.get(lang, _DIGEST['en'])}: {len(alerts)}"
        body = [f"- {_line(a)}" for a in alerts]
    msg.set_content("\n".join(body) + "\n")
    return msg


async def send(settings: EmailSettings, message: EmailMessage, *, timeout_s: float = 30) -> None:
    """Send through the configured SMTP server; raises OSError/SMTPException on failure."""
    if settings.host is None:
        raise aiosmtplib.SMTPException("no SMTP host configured (alerts.email.host)")
    await aiosmtplib.send(
        message,
        hostname=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        start_tls=settings.starttls and not settings.tls,
        use_tls=settings.tls,
        timeout=timeout_s,
    )
