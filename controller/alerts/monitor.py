"""Fault detection inside the running controller: polls in, stored transitions out.

:class:`FaultMonitor` turns every gateway poll into observations for the pure
:class:`~controller.faults.tracker.FaultTracker` and queues its transitions; its writer
task stores them and their alerts (the outbox) in one transaction, then sets ``stored``
for the :class:`~controller.alerts.dispatcher.AlertDispatcher`. It reads the inventory and
the loop's memory through :mod:`controller.alerts.ports`, never the loop itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from controller.alerts.messages import SubjectInfo
from controller.alerts.ports import Inventory, PolledGateway
from controller.config.settings import Settings
from controller.core.clock import Clock, SystemClock
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
from controller.store.db import Database

log = logging.getLogger(__name__)


def subject_infos(book: Inventory) -> dict[Subject, SubjectInfo]:
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
    stored: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever alerts were queued in the outbox (the dispatcher waits on it)."""
    wall: Clock = field(default_factory=SystemClock)
    """The outbox's clock: wall time, whatever clock drives the loop (see docs/faults.md)."""

    @classmethod
    def from_settings(
        cls, settings: Settings, db: Database, *, stored: asyncio.Event | None = None
    ) -> FaultMonitor:
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
        return cls(
            settings, db, tracker=FaultTracker(config), thresholds=thresholds,
            stored=stored or asyncio.Event(),
        )  # fmt: skip

    histories: dict[int, LampHistory] = field(default_factory=dict)
    observed_at: dict[int, datetime] = field(default_factory=dict)
    _snapshots: dict[int, GatewayReading] = field(default_factory=dict)
    """Per gateway the snapshot last judged (an MQTT link hands out the same one again)."""
    _lamps: dict[tuple[int, int, float], LampType] = field(default_factory=dict)
    pending: list[Transition] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    transitions_total: int = 0
    alerts_queued: int = 0

    async def restore(self) -> None:
        async with self.db.sessions() as session:
            self.tracker.restore(await load_open_faults(session=session))

    def observe(
        self, state: PolledGateway, book: Inventory, now: datetime, snapshot: GatewayReading | None
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

    def _lamp(self, book: Inventory, lamp_type_id: int, rated_w: float) -> LampType:
        key = (id(book), lamp_type_id, rated_w)
        cached = self._lamps.get(key)
        if cached is None:
            if len(self._lamps) > 1000:
                self._lamps.clear()
            cached = self._lamps[key] = self._make_lamp(book, lamp_type_id, rated_w)
        return cached

    @staticmethod
    def _make_lamp(book: Inventory, lamp_type_id: int, rated_w: float) -> LampType:
        t = book.lamp_types.get(lamp_type_id)
        if t is None:
            return LampType(rated_power_w=rated_w)
        return LampType(
            rated_power_w=t.rated_power_w,
            power_tolerance_pct=t.power_tolerance_pct,
            min_dim_level_pct=t.min_dim_level_pct,
            nominal_voltage_v=t.nominal_voltage_v,
        )

    async def run_writer(self, book: Callable[[], Inventory | None]) -> None:
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
                        session=session, transitions=batch, subjects=infos, ctx=ctx,
                        queued_at=self.wall.now(),
                    )  # fmt: skip
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
            if queued:
                self.stored.set()
