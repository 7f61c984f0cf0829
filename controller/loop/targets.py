"""Targets for every luminaire at an instant, computed per calendar, not per luminaire.

The desired state is always recomputable from the schedules, the overrides and the
time, so a restart never depends on a missed event. Luminaires that share a
calendar and the same active overrides share one decision, so a city of 100,000
luminaires costs a handful of :func:`schedules.decision.decide` calls per tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select as core_select
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.config.settings import Settings
from controller.core.values import Address, CommandSource, Level
from controller.loop.reconcile import Target
from controller.scheduling import data as scheduling
from controller.scheduling.overrides import effective_end, overlapping, targeted_luminaires, to_pure
from controller.store.tables import GatewayRow, LampTypeRow, Luminaire
from schedules.calendar import ProgramRef
from schedules.decision import Decision, Override, decide, timeline
from schedules.program import Program, night_of
from schedules.sun import Site

SPAN_HORIZON = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class LuminaireInfo:
    id: int
    name: str
    gateway_id: int
    address: Address
    ward: str
    street: str
    rated_power_w: float
    lamp_type_id: int = 0
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    id: int
    name: str
    protocol: str
    host: str | None
    port: int | None
    unit_ids: tuple[int, ...]
    mqtt_id: str | None
    ward: str | None
    enabled: bool
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True)
class LampTypeInfo:
    id: int
    name: str
    rated_power_w: float
    power_tolerance_pct: float
    min_dim_level_pct: int
    nominal_voltage_v: float


@dataclass(frozen=True, slots=True)
class ActiveOverride:
    override: Override
    luminaires: frozenset[int] | None  # None = all


@dataclass(slots=True)
class TargetBook:
    """Everything needed to compute targets; reload it when the configuration changes."""

    site: Site
    default_level: int
    book: scheduling.ScheduleBook
    luminaires: dict[int, LuminaireInfo]
    gateways: dict[int, GatewayInfo]
    calendar_of: dict[int, int]
    overrides: list[ActiveOverride] = field(default_factory=list)
    lamp_types: dict[int, LampTypeInfo] = field(default_factory=dict)
    _span: tuple[datetime, datetime] | None = field(default=None, repr=False, compare=False)

    def span(self, at: datetime) -> tuple[datetime, datetime]:
        """``(start, end)`` around ``at`` in which no target of this book changes.

        ``start <= at < end``; ``end`` is the next change instant (a program step, an
        override's start or end, a night's start at noon) or a day ahead. Targets computed
        at any instant of the span hold for all of it, so a gateway whose targets were
        computed in the current span need not compute them again. Cached: one
        :meth:`change_instants` per span, shared by every gateway.
        """
        span = self._span
        if span is not None and span[0] <= at < span[1]:
            return span
        instants = self.change_instants(at, SPAN_HORIZON)
        span = self._span = (at, instants[0] if instants else at + SPAN_HORIZON)
        return span

    def targets(self, at: datetime, only: Iterable[int] | None = None) -> dict[int, Target]:
        """luminaire id -> target at ``at`` (for ``only`` those ids, or all)."""
        live = [o for o in self.overrides if o.override.is_active(at)]
        cache: dict[tuple[int | None, tuple[int, ...]], Target] = {}
        out: dict[int, Target] = {}
        ids = self.luminaires.keys() if only is None else only
        for lid in ids:
            applicable = tuple(
                o.override.id for o in live if o.luminaires is None or lid in o.luminaires
            )
            key = (self.calendar_of.get(lid), applicable)
            target = cache.get(key)
            if target is None:
                target = self._decide(
                    at, key[0], [o.override for o in live if o.override.id in applicable]
                )
                cache[key] = target
            out[lid] = target
        return out

    def _decide(self, at: datetime, calendar_id: int | None, overrides: list[Override]) -> Target:
        calendar = self.book.calendars.get(calendar_id) if calendar_id is not None else None
        decision = decide(
            at,
            site=self.site,
            calendar=calendar,
            programs=self.book.programs,
            overrides=overrides,
            default_level=self.default_level,
        )
        return to_target(decision, self.book.programs)

    def change_instants(self, now: datetime, horizon: timedelta) -> list[datetime]:
        """Every instant in (now, now + horizon] at which some target may change."""
        end = now + horizon
        instants: set[datetime] = set()
        calendars = set(self.calendar_of.values()) | {None}
        night = night_of(self.site, now)
        for offset in range(-1, int(horizon / timedelta(days=1)) + 2):
            the_night = night + timedelta(days=offset)
            for calendar_id in calendars:
                calendar = self.book.calendars.get(calendar_id) if calendar_id is not None else None
                for change in timeline(
                    the_night,
                    site=self.site,
                    calendar=calendar,
                    programs=self.book.programs,
                    default_level=self.default_level,
                ):
                    instants.add(change.at)
        for o in self.overrides:
            instants.update((o.override.start, o.override.end))
        return sorted(i for i in instants if now < i <= end)


def to_target(decision: Decision, programs: Mapping[ProgramRef, Program]) -> Target:
    """The controller's target for a decision: level, source, detail and fade.

    ``detail`` is ``program:NAME#N`` (N the step in effect; ``program:NAME`` before the
    first step), ``override:ID`` or the source.
    """
    fade = 0.0
    detail = decision.source.value
    if decision.program is not None:
        detail = f"program:{decision.program}"
        if decision.step_index is not None:
            detail += f"#{decision.step_index}"
            program = next((p for p in programs.values() if p.name == decision.program), None)
            if program is not None:
                fade = program.steps[decision.step_index].fade_s or 0.0
    if decision.override_id is not None:
        detail = f"override:{decision.override_id}"
    return Target(Level(decision.level), CommandSource(decision.source.value), detail, fade)


async def load_target_book(
    *, session: AsyncSession, settings: Settings, now: datetime
) -> TargetBook:
    book = await scheduling.load_book(session=session, settings=settings)
    lamps = {t.id: t for t in (await session.exec(select(LampTypeRow))).all()}
    # Columns, not ORM objects: at 100,000 luminaires building and tracking entities took
    # seconds of the event loop's time at every reload.
    rated = {t.id: t.rated_power_w for t in lamps.values()}
    c = Luminaire.__table__.c  # type: ignore[attr-defined]
    rows = await session.exec(
        core_select(
            c.id, c.name, c.gateway_id, c.address, c.ward, c.street, c.lamp_type_id,
            c.latitude, c.longitude,
        )  # type: ignore[call-overload]
    )  # fmt: skip
    luminaires: dict[int, LuminaireInfo] = {}
    for lid, name, gw_id, address, ward, street, lamp_type_id, lat, lon in rows:
        info = LuminaireInfo(
            lid, name, gw_id, Address(address), ward, street, rated[lamp_type_id], lamp_type_id,
            lat, lon,
        )  # fmt: skip
        luminaires[lid] = info
    gateways = {
        g.id: GatewayInfo(
            id=g.id, name=g.name, protocol=g.protocol, host=g.host, port=g.port,
            unit_ids=tuple(g.unit_ids), mqtt_id=g.mqtt_id, ward=g.ward, enabled=g.enabled,
            latitude=g.latitude, longitude=g.longitude,
        )
        for g in (await session.exec(select(GatewayRow))).all()
        if g.id is not None
    }  # fmt: skip
    calendar_of = await scheduling.calendar_assignment(
        session=session, default=book.default_calendar_id
    )
    active = await load_active_overrides(session=session, now=now)
    return TargetBook(
        site=settings.site.to_site(),
        default_level=settings.schedule.default_level,
        book=book,
        luminaires=luminaires,
        gateways=gateways,
        calendar_of=calendar_of,
        overrides=active,
        lamp_types={
            t.id: LampTypeInfo(
                t.id,
                t.name,
                t.rated_power_w,
                t.power_tolerance_pct,
                t.min_dim_level_pct,
                t.nominal_voltage_v,
            )
            for t in lamps.values()
            if t.id is not None
        },
    )


async def load_active_overrides(*, session: AsyncSession, now: datetime) -> list[ActiveOverride]:
    """The overrides that matter from a day before ``now`` to two days after, with targets."""
    active: list[ActiveOverride] = []
    for row in await overlapping(
        session=session, start=now - timedelta(days=1), end=now + timedelta(days=2)
    ):
        if effective_end(row) <= row.starts_at:
            continue
        targets = await targeted_luminaires(session=session, row=row)
        active.append(ActiveOverride(to_pure(row), None if targets is None else frozenset(targets)))
    return active


def by_gateway(luminaires: Mapping[int, LuminaireInfo]) -> dict[int, dict[Address, int]]:
    """gateway id -> (address -> luminaire id)."""
    out: dict[int, dict[Address, int]] = {}
    for info in luminaires.values():
        out.setdefault(info.gateway_id, {})[info.address] = info.id
    return out
