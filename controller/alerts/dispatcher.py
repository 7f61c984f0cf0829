"""Fault detection and alert delivery inside the running controller.

- :class:`FaultMonitor` turns every gateway poll into observations for the pure
  :class:`~controller.faults.tracker.FaultTracker` and queues its transitions;
- its writer task stores transitions and their alerts (outbox) in one transaction;
- :class:`AlertDispatcher` delivers the outbox: MQTT (QoS 1, on the controller's link)
  and signed webhooks, retrying with exponential back-off. The outbox is in the
  database, so a receiver outage or a controller restart loses nothing; every alert
  carries an idempotency key so a receiver can drop a repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiosmtplib
import httpx
from sqlmodel import col, select

from controller.alerts.email import build_message
from controller.alerts.email import send as send_email
from controller.alerts.messages import SubjectInfo, alert_body
from controller.alerts.webhook import backoff_s, deliver
from controller.app.settings import Settings
from controller.core.errors import GatewayUnavailable
from controller.core.values import Address, GatewayReading
from controller.faults.data import AlertContext, load_open_faults, record_transitions
from controller.faults.rules import (
    DEFAULT_THRESHOLDS,
    FaultType,
    LampHistory,
    LampType,
    Severity,
    Thresholds,
    evaluate_gateway,
    evaluate_luminaire,
    remember,
)
from controller.faults.tracker import (
    Debounce,
    FaultTracker,
    Observation,
    Subject,
    TrackerConfig,
    Transition,
)
from controller.loop.targets import TargetBook
from controller.store.db import Database
from controller.store.tables import AlertOutbox

if TYPE_CHECKING:
    from controller.loop.runtime import GatewayState
    from protocols.mqtt import MqttLink

log = logging.getLogger(__name__)


def subject_infos(book: TargetBook) -> dict[Subject, SubjectInfo]:
    """How crews find every luminaire and gateway (from the inventory)."""
    out: dict[Subject, SubjectInfo] = {}
    for gw in book.gateways.values():
        out[Subject.gateway(gw.id)] = SubjectInfo(
            name=gw.name, ward=gw.ward, latitude=gw.latitude, longitude=gw.longitude
        )
    for lum in book.luminaires.values():
        gw_info = book.gateways.get(lum.gateway_id)
        out[Subject.luminaire(lum.id)] = SubjectInfo(
            name=lum.name, pole=lum.name, street=lum.street, ward=lum.ward,
            latitude=lum.latitude, longitude=lum.longitude, gateway_id=lum.gateway_id,
            gateway_name=gw_info.name if gw_info else None,
        )  # fmt: skip
    return out


@dataclass(slots=True)
class FaultMonitor:
    """Observations in, transitions out (stored by :meth:`run_writer`)."""

    settings: Settings
    db: Database
    tracker: FaultTracker = field(default_factory=FaultTracker)
    thresholds: Thresholds = DEFAULT_THRESHOLDS

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> FaultMonitor:
        """Thresholds, debounce and severities from ``settings.faults``."""
        f = settings.faults
        thresholds = Thresholds(
            voltage_high_pct=f.voltage_high_pct, voltage_low_pct=f.voltage_low_pct,
            pf_min=f.pf_min, pf_check_min_level_pct=f.pf_check_min_level_pct,
            warmup_s=f.warmup_s, settle_grace_s=f.settle_grace_s,
            cycling_window_s=f.cycling_window_s, cycling_min_flips=f.cycling_min_flips,
            over_temperature_c=f.over_temperature_c,
        )  # fmt: skip
        config = TrackerConfig(
            debounce=Debounce(f.raise_count, f.raise_s, f.clear_count, f.clear_s),
            severities={FaultType(k): Severity(v) for k, v in f.severities.items()},
        )
        return cls(settings, db, tracker=FaultTracker(config), thresholds=thresholds)

    histories: dict[int, LampHistory] = field(default_factory=dict)
    observed_at: dict[int, datetime] = field(default_factory=dict)
    _snapshots: dict[int, GatewayReading] = field(default_factory=dict)
    """Per gateway the snapshot last judged (an MQTT link hands out the same one again)."""
    _lamps: dict[tuple[int, int, float], LampType] = field(default_factory=dict)
    pending: list[Transition] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    on_stored: Callable[[], None] | None = None
    transitions_total: int = 0
    alerts_queued: int = 0

    async def restore(self) -> None:
        async with self.db.sessions() as session:
            self.tracker.restore(await load_open_faults(session=session))

    def observe(
        self, state: GatewayState, book: TargetBook, now: datetime, snapshot: GatewayReading | None
    ) -> None:
        """Judge one poll of one gateway (``snapshot`` None: it did not answer)."""
        gw = Subject.gateway(state.info.id)
        silence = (now - state.last_seen).total_seconds() if state.last_seen else None
        gateway_obs = Observation(
            gw,
            now,
            evaluate_gateway(
                answering=snapshot is not None,
                mains_present=snapshot.mains_present if snapshot is not None else None,
                silence_s=silence,
            ),
        )
        observations: list[Observation] = []
        if snapshot is not None:
            items: Iterable[tuple[Address, int]] = state.addresses.items()
            if self._snapshots.get(state.info.id) is snapshot:
                # Judged already: only luminaires missing from it are observed again.
                missing = state.addresses.keys() - snapshot.luminaires.keys()
                items = [(a, state.addresses[a]) for a in missing]
            self._snapshots[state.info.id] = snapshot
            for address, lid in items:
                info = book.luminaires.get(lid)
                if info is None:
                    continue
                reading = snapshot.luminaires.get(address)
                if reading is not None:
                    seen = self.observed_at.get(lid)
                    if seen is not None and reading.at <= seen:
                        continue  # the same report again (MQTT state is pushed, read is pulled)
                    self.observed_at[lid] = reading.at
                lamp = self._lamp(book, info.lamp_type_id, info.rated_power_w)
                history = remember(
                    self.histories.get(lid, LampHistory()), reading, lamp, self.thresholds
                )
                self.histories[lid] = history
                tracked = state.tracked.get(address)
                target = state.targets.get(address)
                observations.append(
                    Observation(
                        Subject.luminaire(lid),
                        reading.at if reading is not None else now,
                        evaluate_luminaire(
                            reading,
                            at=reading.at if reading is not None else now,
                            target=target.level if target is not None else None,
                            acked=tracked.acked if tracked is not None else None,
                            settle_until=tracked.fade_until if tracked is not None else None,
                            lamp=lamp,
                            history=history,
                            thresholds=self.thresholds,
                        ),
                        gateway_id=state.info.id,
                    )
                )
        transitions = self.tracker.observe_poll(gateway_obs, observations)
        if transitions:
            self.pending.extend(transitions)
            self.transitions_total += len(transitions)
            self.wake.set()

    def _lamp(self, book: TargetBook, lamp_type_id: int, rated_w: float) -> LampType:
        key = (id(book), lamp_type_id, rated_w)
        cached = self._lamps.get(key)
        if cached is None:
            if len(self._lamps) > 1000:
                self._lamps.clear()
            cached = self._lamps[key] = self._make_lamp(book, lamp_type_id, rated_w)
        return cached

    @staticmethod
    def _make_lamp(book: TargetBook, lamp_type_id: int, rated_w: float) -> LampType:
        t = book.lamp_types.get(lamp_type_id)
        if t is None:
            return LampType(rated_power_w=rated_w)
        return LampType(
            rated_power_w=t.rated_power_w,
            power_tolerance_pct=t.power_tolerance_pct,
            min_dim_level_pct=t.min_dim_level_pct,
            nominal_voltage_v=t.nominal_voltage_v,
        )

    async def run_writer(self, book: Callable[[], TargetBook | None]) -> None:
        """Store queued transitions and their alerts; retries while the database is down."""
        ctx = AlertContext(self.settings.alerts, self.settings.mqtt.prefix, self.settings.site.tz)
        backoff = 0.5
        while True:
            if not self.pending:
                self.wake.clear()
                await self.wake.wait()
            batch, self.pending = self.pending, []
            current = book()
            infos = subject_infos(current) if current is not None else {}
            try:
                async with self.db.sessions() as session:
                    queued = await record_transitions(
                        session=session, transitions=batch, subjects=infos, ctx=ctx
                    )
            except Exception as exc:  # the database may be away: keep them, retry
                log.warning(
                    "storing %d fault transition(s) failed, will retry: %s", len(batch), exc
                )
                self.pending = batch + self.pending
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            self.alerts_queued += queued
            if self.on_stored is not None:
                self.on_stored()


class AlertDispatcher:
    """Delivers the outbox until cancelled."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.wake = asyncio.Event()
        self.link: MqttLink | None = None
        self.is_leader: Callable[[], bool] = lambda: True
        self.delivered = 0
        self.failures = 0
        self.gave_up = 0
        self._hooks = {h.name: h for h in settings.alerts.webhooks}
        self._rules = {r.name: r for r in settings.alerts.email.rules}

    def poke(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                self.wake.clear()
                delivered_all = await self._round(client)
                if not delivered_all:
                    continue
                wait_s = await self._seconds_to_next_due()
                try:
                    async with asyncio.timeout(wait_s):
                        await self.wake.wait()
                except TimeoutError:
                    pass

    async def _round(self, client: httpx.AsyncClient, limit: int = 100) -> bool:
        if not self.is_leader():
            return True  # in a cluster only the leader delivers, so nothing goes out twice
        now = datetime.now(UTC)
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
                        select(AlertOutbox).where(
                            AlertOutbox.channel == "digest",
                            AlertOutbox.target == target,
                            col(AlertOutbox.delivered_at).is_(None),
                            col(AlertOutbox.gave_up_at).is_(None),
                            col(AlertOutbox.next_attempt_at) <= now,
                        )
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
        now = datetime.now(UTC)
        row.attempts += 1
        error: str | None = None
        retryable = True
        if row.channel == "mqtt":
            if self.link is None:
                error = "no MQTT connection"
            else:
                try:
                    await self.link.publish(row.target, body, qos=1)
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
            error, retryable = await self._email(row.target, [row.payload])
        else:
            error, retryable = f"unknown channel {row.channel!r}", False
        self._settle(row, error, retryable, now)

    async def _email(self, target: str, payloads: list[dict[str, Any]]) -> tuple[str | None, bool]:
        rule = self._rules.get(target)
        if rule is None:
            return f"e-mail rule {target!r} is no longer configured", False
        message = build_message(
            rule, payloads, sender=self.settings.alerts.email.sender,
            lang=self.settings.alerts.language,
        )  # fmt: skip
        try:
            await send_email(self.settings.alerts.email, message)
        except (OSError, aiosmtplib.SMTPException) as exc:
            return f"SMTP: {exc}", True
        return None, True

    async def _send_digest(self, target: str, rows: list[AlertOutbox]) -> None:
        now = datetime.now(UTC)
        for row in rows:
            row.attempts += 1
        error, retryable = await self._email(target, [r.payload for r in rows])
        for row in rows:
            self._settle(row, error, retryable, now)

    def _settle(self, row: AlertOutbox, error: str | None, retryable: bool, now: datetime) -> None:
        """Record the outcome of an attempt: delivered, retry later, or give up."""
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
            row.attempts, row.idempotency_key, base_s=self.settings.alerts.retry_base_s
        )
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
        return max(0.05, min(60.0, (nxt - datetime.now(UTC)).total_seconds()))
