"""Alert e-mails from the tracker's transitions to a real SMTP server on loopback.

The rows are queued by :func:`record_transitions` (what the fault writer calls) from the
e-mail rules: one row per alert for an ``each`` rule, one per alert due at the end of its
window for a ``digest`` rule; the dispatcher sends them (both databases). The whole path
from a fault injected on the fake fleet is in tests/e2e/test_email_alerts.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

from controller.alerts.dispatcher import AlertDispatcher
from controller.alerts.messages import SubjectInfo
from controller.alerts.monitor import FaultMonitor
from controller.alerts.ports import SoleInstance
from controller.config.settings import Settings, load_settings
from controller.core.clock import ManualClock
from controller.core.values import Address, GatewayReading
from controller.faults.data import AlertContext, record_transitions
from controller.faults.rules import FaultType, Severity
from controller.faults.tracker import Subject, Transition, TransitionKind
from controller.store.db import Database
from controller.store.tables import AlertOutbox
from tests.conftest import free_port
from tests.e2e.receivers import SmtpInbox, eventually

CREW = "doi1@dongha.vn"
CHIEF = "truong@dongha.vn"
WARDS = {1: "Phường 1", 2: "Đông Lễ"}


def _settings(port: int, *, digest_min: int = 1, max_attempts: int = 10) -> Settings:
    return load_settings(
        alerts={
            "mqtt": False, "language": "en", "retry_base_s": 0.1, "max_attempts": max_attempts,
            "email": {
                "host": "127.0.0.1", "port": port, "starttls": False, "sender": "den@dongha.vn",
                "rules": [
                    {"name": "crew", "to": [CREW], "mode": "each", "wards": ["Phường 1"]},
                    {"name": "chief", "to": [CHIEF], "mode": "digest",
                     "digest_interval_min": digest_min},
                ],
            },
        }
    )  # fmt: skip


def _opened(gateway: int, at: datetime) -> Transition:
    return Transition(
        kind=TransitionKind.OPENED, subject=Subject.gateway(gateway),
        fault_type=FaultType.SUPPLY_LOSS, severity=Severity.CRITICAL,
        at=at, since=at, last_seen=at, count=3,
    )  # fmt: skip


async def _record(db: Database, settings: Settings, queued_at: datetime) -> None:
    """Supply lost on gateway 1 (Phường 1) and gateway 2 (Đông Lễ)."""
    at = datetime(2026, 6, 21, 13, 0, tzinfo=UTC)
    infos = {Subject.gateway(g): SubjectInfo(name=f"GW-{g:02d}", ward=w) for g, w in WARDS.items()}
    ctx = AlertContext(settings.alerts, settings.mqtt.prefix, settings.site.tz)
    async with db.sessions() as session:
        queued = await record_transitions(
            session=session, transitions=[_opened(1, at), _opened(2, at)], subjects=infos,
            ctx=ctx, queued_at=queued_at,
        )  # fmt: skip
    assert queued == 3  # crew: gateway 1 only; chief: both


async def _outbox(db: Database) -> list[AlertOutbox]:
    async with db.sessions() as session:
        return list((await session.exec(select(AlertOutbox).order_by(col(AlertOutbox.id)))).all())


def _dispatcher(settings: Settings, db: Database) -> AlertDispatcher:
    return AlertDispatcher(settings, db, leadership=SoleInstance(), publisher=lambda: None)


async def _deliver_until(dispatcher: AlertDispatcher, check: Any, what: str) -> None:
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(dispatcher.run(), name="dispatcher")
        await eventually(check, 15, what)
        task.cancel()


async def test_rules_queue_one_e_mail_per_alert_and_digest_rows_due_at_the_window_end(
    db: Database,
) -> None:
    settings = _settings(free_port(), digest_min=15)
    queued_at = datetime(2026, 12, 7, 10, 7, 30, tzinfo=UTC)
    await _record(db, settings, queued_at)
    rows = await _outbox(db)
    by_channel = sorted((r.channel, r.target, r.payload["subject"]["name"]) for r in rows)
    assert by_channel == [
        ("digest", "chief", "GW-01"), ("digest", "chief", "GW-02"), ("email", "crew", "GW-01"),
    ]  # fmt: skip
    for row in rows:
        assert row.created_at.replace(tzinfo=UTC) == queued_at
        due = datetime(2026, 12, 7, 10, 15, tzinfo=UTC) if row.channel == "digest" else queued_at
        assert row.next_attempt_at.replace(tzinfo=UTC) == due
        assert row.idempotency_key == row.payload["idempotency_key"]


async def test_each_and_digest_e_mails(db: Database) -> None:
    with SmtpInbox() as inbox:
        settings = _settings(inbox.port)
        await _record(db, settings, datetime.now(UTC) - timedelta(minutes=2))  # window over

        async def sent() -> bool:
            return all(r.delivered_at is not None for r in await _outbox(db))

        await _deliver_until(_dispatcher(settings, db), sent, "every e-mail sent")
    assert len(inbox.mails) == 2
    (single,) = inbox.to(CREW)
    assert "supplyLoss" in str(single.message["Subject"]) and "GW-01" in single.text
    assert "GW-02" not in single.text  # Đông Lễ is not the crew's ward
    (digest,) = inbox.to(CHIEF)
    assert "digest" in str(digest.message["Subject"]).lower()
    assert "GW-01" in digest.text and "GW-02" in digest.text
    assert str(digest.message["From"]) == "den@dongha.vn"
    assert single.message["Message-ID"] != digest.message["Message-ID"]


class _FlakyDatabase:
    """The test database, unreachable for its first ``failures`` sessions (an outage)."""

    def __init__(self, db: Database, failures: int) -> None:
        self.db = db
        self.failures = failures
        self.refused = 0

    def sessions(self) -> Any:
        if self.refused < self.failures:
            self.refused += 1
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database away"))
        return self.db.sessions()


async def test_a_database_outage_does_not_end_the_dispatcher(db: Database) -> None:
    """The outbox is in the database: while it is away the dispatcher waits and retries,
    and when it is back it delivers (before, the first failed query ended the controller)."""
    with SmtpInbox() as inbox:
        settings = _settings(inbox.port)
        await _record(db, settings, datetime.now(UTC) - timedelta(minutes=2))
        flaky = _FlakyDatabase(db, failures=3)
        dispatcher = AlertDispatcher(
            settings, flaky, leadership=SoleInstance(), publisher=lambda: None, db_retry_s=0.05
        )  # type: ignore[arg-type]

        async def sent() -> bool:
            return all(r.delivered_at is not None for r in await _outbox(db))

        await _deliver_until(dispatcher, sent, "every e-mail sent after the outage")
    assert flaky.refused == 3  # the outage really happened before the delivery
    assert len(inbox.mails) == 2


async def test_a_digest_waits_for_the_end_of_its_window(db: Database) -> None:
    """The outbox's clock is an argument: a manual one steps to the window's end."""
    queued_at = datetime(2026, 12, 7, 10, 7, 30, tzinfo=UTC)
    window_end = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)
    wall = ManualClock(queued_at)
    with SmtpInbox() as inbox:
        settings = _settings(inbox.port, digest_min=60)
        await _record(db, settings, queued_at)
        dispatcher = AlertDispatcher(
            settings, db, leadership=SoleInstance(), publisher=lambda: None, wall=wall
        )
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(dispatcher.run(), name="dispatcher")

            async def crew_sent() -> bool:
                return len(inbox.to(CREW)) == 1

            await eventually(crew_sent, 15, "the crew's e-mail at once")
            wall.set(window_end - timedelta(seconds=1))
            dispatcher.poke()
            await asyncio.sleep(0.5)
            assert inbox.to(CHIEF) == []  # a second before the window ends: still waiting
            digests = [r for r in await _outbox(db) if r.channel == "digest"]
            assert [(r.delivered_at, r.attempts) for r in digests] == [(None, 0), (None, 0)]
            wall.set(window_end)
            dispatcher.poke()

            async def chief_sent() -> bool:
                return len(inbox.to(CHIEF)) == 1

            await eventually(chief_sent, 15, "the chief's digest when the window ends")
            task.cancel()
    (digest,) = inbox.to(CHIEF)
    assert "GW-01" in digest.text and "GW-02" in digest.text
    delivered = {r.delivered_at for r in await _outbox(db) if r.channel == "digest"}
    assert {d.replace(tzinfo=UTC) for d in delivered if d is not None} == {window_end}


async def test_an_unreachable_smtp_server_is_retried_then_given_up_a_digest_as_one(
    db: Database,
) -> None:
    settings = _settings(free_port(), max_attempts=3)  # nothing listens there
    await _record(db, settings, datetime.now(UTC) - timedelta(minutes=2))
    dispatcher = _dispatcher(settings, db)

    async def given_up() -> bool:
        return all(r.gave_up_at is not None for r in await _outbox(db))

    await _deliver_until(dispatcher, given_up, "every e-mail given up after 3 attempts")
    rows = await _outbox(db)
    assert [r.attempts for r in rows] == [3, 3, 3]
    assert all(r.last_error is not None and "SMTP" in r.last_error for r in rows)
    assert dispatcher.gave_up == 3
    # the digest's two rows were retried together, as one e-mail, every time
    digests = [r for r in rows if r.channel == "digest"]
    assert len({r.next_attempt_at for r in digests}) == 1
    assert len({r.gave_up_at for r in digests}) == 1


# --- the monitor and the dispatcher, wired through their constructors ----------------------


@dataclass(frozen=True)
class _Gateway:
    id: int
    name: str
    ward: str | None
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True)
class _Inventory:
    gateways: dict[int, _Gateway]
    luminaires: dict[int, Any] = field(default_factory=dict)
    lamp_types: dict[int, Any] = field(default_factory=dict)


@dataclass
class _Polled:
    info: _Gateway
    last_seen: datetime | None = None
    addresses: dict[Address, int] = field(default_factory=dict)
    tracked: dict[Address, Any] = field(default_factory=dict)
    targets: dict[Address, Any] = field(default_factory=dict)


@dataclass
class _Leader:
    leader: bool


async def test_a_fault_seen_by_the_monitor_is_e_mailed_by_the_dispatcher_it_wakes(
    db: Database,
) -> None:
    """Plain objects stand in for the loop (the ports); the shared event is the only link."""
    with SmtpInbox() as inbox:
        settings = _settings(inbox.port)
        stored = asyncio.Event()
        monitor = FaultMonitor.from_settings(settings, db, stored=stored)
        leadership = _Leader(leader=False)
        dispatcher = AlertDispatcher(
            settings, db, leadership=leadership, publisher=lambda: None, wake=stored
        )
        gateway = _Gateway(1, "GW-01", "Phường 1")
        book = _Inventory({1: gateway})
        polled = _Polled(gateway)
        async with asyncio.TaskGroup() as tg:
            writer = tg.create_task(monitor.run_writer(lambda: book), name="fault-writer")
            sender = tg.create_task(dispatcher.run(), name="dispatcher")
            now = datetime.now(UTC)
            for n in range(3):  # supply lost on three polls, a minute apart: it opens
                at = now + timedelta(minutes=n)
                polled.last_seen = at
                monitor.observe(polled, book, at, GatewayReading(at, False, 100))
            assert monitor.transitions_total == 1

            async def queued() -> bool:
                return monitor.alerts_queued == 2  # crew (each) and chief (digest)

            await eventually(queued, 10, "the transition stored with its alerts")
            await asyncio.sleep(0.3)
            assert inbox.mails == []  # not the leader: nothing goes out
            leadership.leader = True
            dispatcher.poke()

            async def mailed() -> bool:
                return len(inbox.to(CREW)) == 1

            await eventually(mailed, 10, "the crew's e-mail once this instance leads")
            writer.cancel()
            sender.cancel()
    assert "GW-01" in inbox.to(CREW)[0].text


def test_alerts_and_faults_never_import_the_loop() -> None:
    code = (
        "import sys\n"
        "import controller.alerts.dispatcher, controller.alerts.monitor, controller.alerts.ports\n"
        "import controller.faults.data, controller.faults.rules, controller.faults.tracker\n"
        "print(sorted(m for m in sys.modules if m.startswith('controller.loop')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout
