"""Telemetry ingest: a bounded buffer between the gateway loops and the database.

Gateway loops hand over readings and state changes without waiting for the
database (``offer`` never blocks). One writer task drains the buffer in batches:
raw readings and state history by bulk insert, energy and the time telemetry covered
(:mod:`controller.energy.coverage`) into hourly and daily rollups by upsert, one
transaction per batch. When the database is down the
batch is kept and retried with back-off; what does not fit in the buffer is
dropped and counted (``stats.dropped``, zero in normal operation).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from controller.core.values import Reading
from controller.energy.accounting import Sample, energy_between
from controller.energy.coverage import DEFAULT_MAX_GAP_S, DarkCalendar, Piece, covered_pieces
from controller.energy.rollup import mark_stale
from controller.store.db import Database
from controller.store.tables import (
    EnergyDaily,
    EnergyHourly,
    IngestBatch,
    Luminaire,
    ReadingRow,
    StateChange,
)
from schedules.sun import Site

log = logging.getLogger(__name__)

_READING: Table = ReadingRow.__table__  # type: ignore[attr-defined]
_STATE: Table = StateChange.__table__  # type: ignore[attr-defined]
_HOURLY: Table = EnergyHourly.__table__  # type: ignore[attr-defined]
_DAILY: Table = EnergyDaily.__table__  # type: ignore[attr-defined]
_BATCH: Table = IngestBatch.__table__  # type: ignore[attr-defined]
_LUMINAIRE: Table = Luminaire.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class LuminaireRef:
    """Where a reading's energy is booked."""

    luminaire_id: int
    ward: str
    gateway_id: int


@dataclass(frozen=True, slots=True)
class StateRecord:
    luminaire_id: int
    at: datetime
    kind: str  # target | command | actual
    level: int
    source: str | None = None
    detail: str | None = None


@dataclass(slots=True)
class TelemetryStats:
    received: int = 0
    written: int = 0
    written_readings: int = 0
    dropped: int = 0
    batches: int = 0
    failures: int = 0
    last_batch_s: float = 0.0
    energy_wh: float = 0.0
    depth: int = 0


@dataclass(slots=True)
class _Bucket:
    energy_wh: float = 0.0
    burning_s: float = 0.0
    samples: int = 0
    covered_s: float = 0.0
    covered_dark_s: float = 0.0


@dataclass(slots=True)
class EnergyLedger:
    """Per-luminaire energy and coverage since the last flush, by hour (UTC) and local day.

    Pure. The span between two readings of a luminaire, when they cover it
    (:mod:`controller.energy.coverage`), is cut at the hour and day boundaries; each piece
    books its seconds, its dark seconds, and its share (by time) of the energy and burning
    time between the two readings. Across a longer gap the energy the counter measured is
    booked with the later reading, and nothing is covered.
    """

    site: Site
    max_gap_s: float = DEFAULT_MAX_GAP_S
    last: dict[int, tuple[Sample, bool]] = field(default_factory=dict)
    hourly: dict[tuple[int, datetime], _Bucket] = field(default_factory=dict)
    daily: dict[tuple[int, date, str, int], _Bucket] = field(default_factory=dict)
    dark: DarkCalendar = field(init=False)

    def __post_init__(self) -> None:
        self.dark = DarkCalendar(self.site)

    def add(self, ref: LuminaireRef, reading: Reading) -> float:
        """Book the energy since this luminaire's previous reading; returns the Wh booked."""
        sample = Sample(reading.at, reading.energy_wh, reading.power_w)
        previous = self.last.get(ref.luminaire_id)
        self.last[ref.luminaire_id] = (sample, reading.lamp_on)
        if previous is None or reading.at <= previous[0].at:
            return 0.0
        prev_sample, prev_on = previous
        delta = energy_between(prev_sample, sample)
        burning = (
            (reading.at - prev_sample.at).total_seconds() if prev_on and reading.lamp_on else 0.0
        )
        lid, ward, gateway = ref.luminaire_id, ref.ward, ref.gateway_id
        at = reading.at.astimezone(UTC)
        hour = at.replace(minute=0, second=0, microsecond=0)
        day = at.astimezone(self.dark.tz).date()
        pieces = covered_pieces(self.site, prev_sample.at, reading.at, self.max_gap_s, self.dark)
        if not pieces:  # a gap: what the counter says was used is booked with this reading
            pieces_energy = [(Piece(hour, day, 0.0, 0.0), 1.0)]
        else:  # spread evenly over the span, cut where the buckets are
            span_s = (reading.at - prev_sample.at).total_seconds()
            pieces_energy = [(p, p.seconds / span_s) for p in pieces]
        h = d = _Bucket()  # (bound in the loop below, which runs at least once)
        for piece, share in pieces_energy:
            h = self.hourly.setdefault((lid, piece.hour), _Bucket())
            d = self.daily.setdefault((lid, piece.day, ward, gateway), _Bucket())
            energy_wh, burning_s = delta.energy_wh * share, burning * share
            h.energy_wh += energy_wh
            d.energy_wh += energy_wh
            h.burning_s += burning_s
            d.burning_s += burning_s
            h.covered_s += piece.seconds
            d.covered_s += piece.seconds
            h.covered_dark_s += piece.dark_s
            d.covered_dark_s += piece.dark_s
        last = pieces_energy[-1][0]
        if (last.hour, last.day) != (hour, day):  # the reading starts the next bucket
            h = self.hourly.setdefault((lid, hour), _Bucket())
            d = self.daily.setdefault((lid, day, ward, gateway), _Bucket())
        h.samples += 1
        d.samples += 1
        return delta.energy_wh

    def take(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        hourly = [
            {"luminaire_id": lid, "hour": hour, "energy_wh": b.energy_wh,
             "burning_s": b.burning_s, "samples": b.samples, "covered_s": b.covered_s,
             "covered_dark_s": b.covered_dark_s}
            for (lid, hour), b in self.hourly.items()
        ]  # fmt: skip
        daily = [
            {"luminaire_id": lid, "day": day, "ward": ward, "gateway_id": gw,
             "energy_wh": b.energy_wh, "burning_s": b.burning_s, "samples": b.samples,
             "covered_s": b.covered_s, "covered_dark_s": b.covered_dark_s}
            for (lid, day, ward, gw), b in self.daily.items()
        ]  # fmt: skip
        self.hourly = {}
        self.daily = {}
        return hourly, daily


def _reading_row(ref: LuminaireRef, r: Reading) -> dict[str, Any]:
    return {
        "luminaire_id": ref.luminaire_id,
        "at": r.at,
        "lamp_on": r.lamp_on,
        "level_pct": r.level_pct,
        "power_w": r.power_w,
        "voltage_v": r.voltage_v,
        "current_ma": r.current_ma,
        "power_factor": r.power_factor,
        "energy_wh": r.energy_wh,
        "operating_hours": r.operating_hours,
        "switch_on_count": r.switch_on_count,
        "temperature_c": r.temperature_c,
        "flags": sorted(f.value for f in r.flags),
    }


class TelemetrySink:
    """The bounded buffer and its writer task (run it in the controller's TaskGroup)."""

    def __init__(
        self,
        db: Database,
        *,
        site: Site,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
        capacity: int = 200_000,
        batch_size: int = 5_000,
        flush_interval_s: float = 2.0,
        store_raw: bool = True,
    ) -> None:
        self._db = db
        self._items: deque[dict[str, Any] | StateRecord] = deque()
        self._capacity = capacity
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._store_raw = store_raw
        self._wake = asyncio.Event()
        self.ledger = EnergyLedger(site, max_gap_s)
        self.stats = TelemetryStats()
        self._retry: _Unit | None = None

    def _room(self, n: int) -> int:
        free = self._capacity - self.depth
        if free < n:
            self.stats.dropped += n - max(free, 0)
            if free <= 0:
                return 0
            return free
        return n

    def offer_readings(self, readings: Iterable[tuple[LuminaireRef, Reading]]) -> None:
        """Book energy at once (in memory) and queue the raw rows; never blocks."""
        rows = []
        for ref, reading in readings:
            self.stats.energy_wh += self.ledger.add(ref, reading)
            if self._store_raw:
                rows.append(_reading_row(ref, reading))
        self.stats.received += len(rows)
        keep = self._room(len(rows))
        self._items.extend(rows[:keep])
        self.stats.depth = self.depth
        self._wake.set()

    def offer_states(self, records: Sequence[StateRecord]) -> None:
        self.stats.received += len(records)
        keep = self._room(len(records))
        self._items.extend(records[:keep])
        self.stats.depth = self.depth
        self._wake.set()

    @property
    def depth(self) -> int:
        """Rows waiting for the database (the buffer and a unit being retried)."""
        return len(self._items) + (len(self._retry.items) if self._retry is not None else 0)

    async def run(self) -> None:
        """Write batches until cancelled; on cancel, one last flush is attempted."""
        backoff = 0.5
        try:
            while True:
                if not self._items and self._retry is None:
                    self._wake.clear()
                    try:
                        async with asyncio.timeout(self._flush_interval_s):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
                if await self._write_batch():
                    backoff = 0.5
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
        except asyncio.CancelledError:
            await asyncio.shield(self.flush())
            raise

    async def flush(self) -> None:
        """Write everything buffered now (used at shutdown and by tests)."""
        for _ in range(1000):
            if not await self._write_batch() or (
                not self._items
                and self._retry is None
                and not self.ledger.hourly
                and not self.ledger.daily
            ):
                return

    def _next_unit(self) -> _Unit | None:
        if self._retry is not None:
            return self._retry
        batch = [self._items.popleft() for _ in range(min(self._batch_size, len(self._items)))]
        hourly, daily = self.ledger.take()
        if not batch and not hourly and not daily:
            return None
        return _Unit(uuid.uuid4().hex, batch, hourly, daily)

    async def _write_batch(self) -> bool:
        """Write one unit exactly once.

        A unit that failed is retried as the same unit, under the same id: when the
        connection broke during COMMIT the outcome is unknown, and the id row written in
        the same transaction tells whether it landed (no duplicated readings, no energy
        counted twice).
        """
        unit = self._next_unit()
        if unit is None:
            return True
        readings = [i for i in unit.items if isinstance(i, dict)]
        states = [
            {"luminaire_id": s.luminaire_id, "at": s.at, "kind": s.kind, "level": s.level,
             "source": s.source, "detail": s.detail}
            for s in unit.items
            if isinstance(s, StateRecord)
        ]  # fmt: skip
        started = time.perf_counter()
        try:
            async with self._db.engine.begin() as conn:
                landed = (
                    unit.attempts > 0
                    and (
                        await conn.execute(select(_BATCH.c.id).where(_BATCH.c.id == unit.id))
                    ).first()
                    is not None
                )
                if not landed:
                    if readings:
                        await conn.execute(insert(_READING), readings)
                    if states:
                        await conn.execute(insert(_STATE), states)
                    if unit.hourly:
                        await conn.execute(
                            _upsert(conn.dialect.name, _HOURLY, ["luminaire_id", "hour"]),
                            unit.hourly,
                        )
                    if unit.daily:
                        await conn.execute(
                            _upsert(conn.dialect.name, _DAILY, ["luminaire_id", "day"]),
                            unit.daily,
                        )
                        # a late row for a day already rolled up into energy_monthly
                        await mark_stale(conn, (row["day"] for row in unit.daily))
                    await conn.execute(insert(_BATCH), [{"id": unit.id, "at": datetime.now(UTC)}])
        except IntegrityError as exc:
            self._retry = unit
            if await self._drop_deleted(unit):  # a luminaire was deleted meanwhile
                return await self._write_batch()
            self._fail(unit, exc)
            return False
        except (SQLAlchemyError, OSError) as exc:
            self._fail(unit, exc)
            return False
        self._retry = None
        self.stats.written += len(unit.items)
        self.stats.written_readings += len(readings)
        self.stats.batches += 1
        self.stats.last_batch_s = time.perf_counter() - started
        self.stats.depth = self.depth
        return True

    def _fail(self, unit: _Unit, reason: object) -> None:
        self.stats.failures += 1
        unit.attempts += 1
        self._retry = unit
        if self.stats.failures == 1 or self.stats.failures % 100 == 0:
            log.warning(
                "telemetry write failed (%d so far), will retry: %s", self.stats.failures, reason
            )
        self.stats.depth = self.depth

    async def _drop_deleted(self, unit: _Unit) -> bool:
        """Drop the unit's rows of luminaires no longer in the inventory; True if any were.

        Their telemetry has nowhere to go (the API deleted them while it was buffered); kept,
        it would fail the unit's foreign keys on every retry and hold back everyone else's.
        """
        wanted = {_luminaire_of(i) for i in unit.items}
        wanted |= {int(r["luminaire_id"]) for r in (*unit.hourly, *unit.daily)}
        try:
            async with self._db.engine.connect() as conn:
                found = set(
                    (await conn.execute(select(_LUMINAIRE.c.id).where(_LUMINAIRE.c.id.in_(wanted))))
                    .scalars()
                    .all()
                )
        except (SQLAlchemyError, OSError):
            return False
        gone = wanted - found
        if not gone:
            return False
        before = len(unit.items) + len(unit.hourly) + len(unit.daily)
        unit.items = [i for i in unit.items if _luminaire_of(i) not in gone]
        unit.hourly = [r for r in unit.hourly if r["luminaire_id"] not in gone]
        unit.daily = [r for r in unit.daily if r["luminaire_id"] not in gone]
        dropped = before - len(unit.items) - len(unit.hourly) - len(unit.daily)
        log.info("dropped %d telemetry row(s) of deleted luminaire(s) %s", dropped, sorted(gone))
        return True


def _luminaire_of(row: dict[str, Any] | StateRecord) -> int:
    return row.luminaire_id if isinstance(row, StateRecord) else int(row["luminaire_id"])


@dataclass(slots=True)
class _Unit:
    """One write: rows and rollups, retried whole under one id until it lands."""

    id: str
    items: list[dict[str, Any] | StateRecord]
    hourly: list[dict[str, Any]]
    daily: list[dict[str, Any]]
    attempts: int = 0


def _upsert(dialect: str, table: Table, keys: list[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE adding the numeric columns."""
    maker = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = maker(table)
    add = ("energy_wh", "burning_s", "samples", "covered_s", "covered_dark_s")
    return stmt.on_conflict_do_update(
        index_elements=keys,
        set_={c: table.c[c] + stmt.excluded[c] for c in add},
    )
