"""The alert outbox delivered by e-mail (a real SMTP server on loopback), one by one and as
a digest, and webhook retries against a receiver that fails first."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller as SmtpController
from sqlmodel import select

from controller.alerts.dispatcher import AlertDispatcher
from controller.app.settings import Settings, load_settings
from controller.store.db import Database
from controller.store.tables import AlertOutbox, FaultEvent, FaultRow
from tests.conftest import free_port
from tests.e2e.receivers import eventually


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    server = SmtpController(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        yield inbox, port
    finally:
        server.stop()


def _settings(port: int, **email: Any) -> Settings:
    return load_settings(
        alerts={
            "mqtt": False,
            "retry_base_s": 0.1,
            "email": {
                "host": "127.0.0.1", "port": port, "starttls": False, "sender": "den@dongha.vn",
                "rules": [
                    {"name": "crew", "to": ["doi1@dongha.vn"], "mode": "each"},
                    {"name": "chief", "to": ["truong@dongha.vn"], "mode": "digest",
                     "digest_interval_min": 1},
                ],
                **email,
            },
        }
    )  # fmt: skip


def alert(n: int) -> dict[str, Any]:
    return {
        "transition": "opened", "type": "lampFailure", "severity": "critical", "fault_id": str(n),
        "idempotency_key": f"k{n}", "subject": {"name": f"P1-LD-{n:03d}"},
        "location": {"ward": "Phường 1"}, "message": f"Đèn P1-LD-{n:03d} không sáng",
    }  # fmt: skip


async def _queue(db: Database, rows: list[AlertOutbox]) -> None:
    async with db.sessions() as session:
        fault = FaultRow(
            subject_kind="luminaire", subject_id=1, fault_type="lampFailure", severity="critical",
            state="open", since=datetime.now(UTC), last_seen=datetime.now(UTC),
        )  # fmt: skip
        session.add(fault)
        await session.flush()
        assert fault.id is not None
        event = FaultEvent(fault_id=fault.id, at=datetime.now(UTC), kind="opened")
        session.add(event)
        await session.flush()
        assert event.id is not None
        for row in rows:
            row.fault_event_id = event.id
        session.add_all(rows)
        await session.commit()


async def _pending(db: Database) -> list[AlertOutbox]:
    async with db.sessions() as session:
        return list(
            (await session.exec(select(AlertOutbox).where(AlertOutbox.delivered_at == None))).all()  # noqa: E711
        )


async def test_each_and_digest_emails(db: Database, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    now = datetime.now(UTC)
    await _queue(
        db,
        [
            AlertOutbox(fault_event_id=0, channel="email", target="crew", payload=alert(1),
                        idempotency_key="k1"),
            AlertOutbox(fault_event_id=0, channel="digest", target="chief", payload=alert(1),
                        idempotency_key="k1", next_attempt_at=now - timedelta(seconds=1)),
            AlertOutbox(fault_event_id=0, channel="digest", target="chief", payload=alert(2),
                        idempotency_key="k2", next_attempt_at=now - timedelta(seconds=1)),
        ],
    )  # fmt: skip
    dispatcher = AlertDispatcher(_settings(port), db)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(dispatcher.run(), name="dispatcher")

        async def done() -> bool:
            return await _pending(db) == []

        await eventually(done, 10, "every e-mail sent")
        task.cancel()
    by_to = {m["To"]: m for m in inbox.messages}
    assert len(inbox.messages) == 2
    single = by_to["doi1@dongha.vn"]
    assert "P1-LD-001" in str(single["Subject"])
    assert "không sáng" in single.get_payload(decode=True).decode()  # type: ignore[union-attr]
    digest = by_to["truong@dongha.vn"]
    text = digest.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "P1-LD-001" in text and "P1-LD-002" in text
    assert digest["From"] == "den@dongha.vn"


async def test_an_unreachable_smtp_server_is_retried_then_given_up(db: Database) -> None:
    port = free_port()  # nothing listens there
    await _queue(
        db,
        [AlertOutbox(fault_event_id=0, channel="email", target="crew", payload=alert(3),
                     idempotency_key="k3")],
    )  # fmt: skip
    settings = _settings(port).model_copy(
        update={"alerts": _settings(port).alerts.model_copy(update={"max_attempts": 3})}
    )
    dispatcher = AlertDispatcher(settings, db)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(dispatcher.run(), name="dispatcher")

        async def given_up() -> bool:
            async with db.sessions() as session:
                row = (await session.exec(select(AlertOutbox))).one()
            return row.gave_up_at is not None

        await eventually(given_up, 15, "the alert given up after 3 attempts")
        task.cancel()
    async with db.sessions() as session:
        row = (await session.exec(select(AlertOutbox))).one()
    assert row.attempts == 3
    assert row.last_error is not None and "SMTP" in row.last_error
    assert dispatcher.gave_up == 1
