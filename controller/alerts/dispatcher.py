"""Alert delivery: the outbox, delivered until cancelled.

:class:`AlertDispatcher` delivers what :func:`controller.faults.data.record_transitions`
queued: MQTT (QoS 1, on the controller's link), signed webhooks, and e-mails (one per alert,
or one digest per rule and window, sent when the window ends), retrying with exponential
back-off. The outbox is in the database, so a receiver outage or a controller restart loses
nothing. Delivery is at-least-once: a row is marked delivered after the receiver answered,
so a crash in between sends it again; every alert carries an idempotency key so a receiver
can drop the repeat. The outbox runs on wall time (``wall``), whatever clock drives the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import aiosmtplib
import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from controller.alerts.email import build_message
from controller.alerts.email import send as send_email
from controller.alerts.messages import alert_body
from controller.alerts.ports import AlertPublisher, Leadership
from controller.alerts.webhook import backoff_s, deliver
from controller.config.settings import Settings
from controller.core.clock import Clock, SystemClock
from controller.core.errors import GatewayUnavailable
from controller.store.db import Database
from controller.store.tables import AlertOutbox

log = logging.getLogger(__name__)


class AlertDispatcher:
    """Delivers the outbox until cancelled.

    A database outage does not end it: the rows wait in the database and it looks again every
    ``db_retry_s``. ``leadership``: only a leader delivers. ``publisher``: the MQTT link now
    (None while there is none). ``wake``: set when alerts were queued (shared with the
    :class:`~controller.alerts.monitor.FaultMonitor`; :meth:`poke` sets it too).
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        leadership: Leadership,
        publisher: Callable[[], AlertPublisher | None],
        wake: asyncio.Event | None = None,
        wall: Clock | None = None,
        db_retry_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.db_retry_s = db_retry_s
        self.db = db
        self.wake = wake or asyncio.Event()
        self.leadership = leadership
        self.publisher = publisher
        self.wall = wall or SystemClock()
        self.delivered = 0
        self.failures = 0
        self.gave_up = 0
        self._hooks = {h.name: h for h in settings.alerts.webhooks}
        self._rules = {r.name: r for r in settings.alerts.email.rules}

    def poke(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        async with httpx.AsyncClient() as client:
            failing = False
            while True:
                self.wake.clear()
                try:
                    delivered_all = await self._round(client)
                    if not delivered_all:
                        continue
                    wait_s = await self._seconds_to_next_due()
                except (SQLAlchemyError, OSError) as exc:
                    # The database may be away (an outage, a failover): the rows wait in it,
                    # so nothing is lost; look again shortly, and log once per outage.
                    if not failing:
                        log.warning("alert outbox unreachable, will retry: %s", exc)
                    failing = True
                    wait_s = self.db_retry_s
                else:
                    if failing:
                        log.info("alert outbox reachable again")
                    failing = False
                try:
                    async with asyncio.timeout(wait_s):
                        await self.wake.wait()
                except TimeoutError:
                    pass

    async def _round(self, client: httpx.AsyncClient, limit: int = 100) -> bool:
        if not self.leadership.leader:
            return True  # in a cluster only the leader delivers, so nothing goes out twice
        now = self.wall.now()
        async with self.db.sessions() as session:
            rows = (
                await session.exec(
                    select(AlertOutbox)
                    .where(
                        col(AlertOutbox.delivered_at).is_(None),
                        col(AlertOutbox.gave_up_at).is_(None),
                        col(AlertOutbox.next_attempt_at) <= now,
                    )
                    .order_by(col(AlertOutbox.id))
                    .limit(limit)
                )
            ).all()
            if not rows:
                return True
            digests = {r.target for r in rows if r.channel == "digest"}
            rows = [r for r in rows if r.channel != "digest"]
            for target in digests:  # every pending alert of that rule, in one e-mail
                batch = (
                    await session.exec(
                        select(AlertOutbox)
                        .where(
                            AlertOutbox.channel == "digest",
                            AlertOutbox.target == target,
                            col(AlertOutbox.delivered_at).is_(None),
                            col(AlertOutbox.gave_up_at).is_(None),
                            col(AlertOutbox.next_attempt_at) <= now,
                        )
                        .order_by(col(AlertOutbox.id))
                    )
                ).all()
                await self._send_digest(target, list(batch))
                session.add_all(batch)
            semaphore = asyncio.Semaphore(10)

            async def one(row: AlertOutbox) -> None:
                async with semaphore:
                    await self._attempt(row, client)

            async with asyncio.TaskGroup() as tg:
                for row in rows:
                    tg.create_task(one(row), name=f"alert-{row.id}-{row.channel}")
            for row in rows:
                session.add(row)
            await session.commit()
        return len(rows) < limit

    async def _attempt(self, row: AlertOutbox, client: httpx.AsyncClient) -> None:
        body = alert_body(row.payload)
        now = self.wall.now()
        row.attempts += 1
        error: str | None = None
        retryable = True
        if row.channel == "mqtt":
            link = self.publisher()
            if link is None:
                error = "no MQTT connection"
            else:
                try:
                    await link.publish(row.target, body, qos=1)
                except GatewayUnavailable as exc:
                    error = str(exc)
        elif row.channel == "webhook":
            hook = self._hooks.get(row.target)
            if hook is None:
                error, retryable = f"webhook {row.target!r} is no longer configured", False
            else:
                result = await deliver(
                    client, hook.url, body, hook.secret.get_secret_value(),
                    timestamp_s=int(now.timestamp()), idempotency_key=row.idempotency_key,
                )  # fmt: skip
                if not result.ok:
                    error, retryable = result.error or f"HTTP {result.status}", result.retryable
        elif row.channel == "email":
            error, retryable = await self._email(row.target, [row.payload], digest=False)
        else:
            error, retryable = f"unknown channel {row.channel!r}", False
        self._settle(row, error, retryable, now)

    async def _email(
        self, target: str, payloads: list[dict[str, Any]], *, digest: bool
    ) -> tuple[str | None, bool]:
        rule = self._rules.get(target)
        if rule is None:
            return f"e-mail rule {target!r} is no longer configured", False
        message = build_message(
            rule, payloads, sender=self.settings.alerts.email.sender,
            lang=self.settings.alerts.language, digest=digest,
        )  # fmt: skip
        try:
            await send_email(self.settings.alerts.email, message)
        except (OSError, aiosmtplib.SMTPException) as exc:
            return f"SMTP: {exc}", True
        return None, True

    async def _send_digest(self, target: str, rows: list[AlertOutbox]) -> None:
        """One e-mail for every due alert of a digest rule; they succeed or retry together."""
        now = self.wall.now()
        for row in rows:
            row.attempts += 1
        error, retryable = await self._email(target, [r.payload for r in rows], digest=True)
        key = f"digest:{target}"
        for row in rows:
            self._settle(row, error, retryable, now, backoff_key=key)

    def _settle(
        self,
        row: AlertOutbox,
        error: str | None,
        retryable: bool,
        now: datetime,
        *,
        backoff_key: str | None = None,
    ) -> None:
        """Record the outcome of an attempt: delivered, retry later, or give up.

        ``backoff_key``: draws the retry's jitter (the row's idempotency key by default; the
        rows of one digest share one, so they are retried in one e-mail again).
        """
        if error is None:
            row.delivered_at = now
            row.last_error = None
            self.delivered += 1
            return
        self.failures += 1
        row.last_error = error[:500]
        if not retryable or row.attempts >= self.settings.alerts.max_attempts:
            row.gave_up_at = now
            self.gave_up += 1
            log.warning(
                "alert %s to %s %s given up after %d attempt(s): %s",
                row.idempotency_key, row.channel, row.target, row.attempts, error,
            )  # fmt: skip
            return
        delay = backoff_s(
            row.attempts, backoff_key or row.idempotency_key,
            base_s=self.settings.alerts.retry_base_s,
        )  # fmt: skip
        row.next_attempt_at = now + timedelta(seconds=delay)
        if row.attempts == 1:
            log.info("alert to %s %s failed, will retry: %s", row.channel, row.target, error)

    async def _seconds_to_next_due(self) -> float:
        async with self.db.sessions() as session:
            nxt: datetime | None = (
                await session.exec(
                    select(AlertOutbox.next_attempt_at)
                    .where(
                        col(AlertOutbox.delivered_at).is_(None),
                        col(AlertOutbox.gave_up_at).is_(None),
                    )
                    .order_by(col(AlertOutbox.next_attempt_at))
                    .limit(1)
                )
            ).first()
        if nxt is None:
            return 60.0
        return max(0.05, min(60.0, (nxt - self.wall.now()).total_seconds()))
