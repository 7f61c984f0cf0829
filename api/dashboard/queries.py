"""Database reads only the dashboard needs (keyword-only, async, one query each or few)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.dashboard.charts import Sample
from api.dashboard.geo import MapPoint
from controller.core.errors import NotFound
from controller.faults import data as faults
from controller.faults.data import FaultPublic, FaultState
from controller.inventory import data as inventory
from controller.inventory.data import group_condition
from controller.inventory.schemas import GatewayPublic, LampTypePublic, LuminairePublic
from controller.scheduling.overrides import (
    OverridePublic,
    overlapping,
    targeted_luminaires,
    to_public,
)
from controller.store.tables import (
    EnergyHourly,
    FaultRow,
    GatewayRow,
    Luminaire,
    LuminaireGroup,
    ReadingRow,
)

MAX_READINGS = 20_000
"""Readings fetched for one chart at most (about 55 h at one reading every 10 s)."""


async def map_points(*, session: AsyncSession) -> list[MapPoint]:
    rows = (await session.exec(select(Luminaire).order_by(col(Luminaire.id)))).all()
    return [MapPoint(r.id or 0, r.name, r.latitude, r.longitude, r.ward, r.street) for r in rows]


async def faulty_luminaires(*, session: AsyncSession) -> set[int]:
    """Luminaires with an unresolved fault of their own."""
    rows = (
        await session.exec(
            select(FaultRow.luminaire_id)
            .where(FaultRow.state != FaultState.RESOLVED, col(FaultRow.luminaire_id).is_not(None))
            .distinct()
        )
    ).all()
    return {int(r) for r in rows if r is not None}


@dataclass(frozen=True, slots=True)
class FaultCounts:
    critical: int = 0
    warning: int = 0
    acknowledged: int = 0

    @property
    def total(self) -> int:
        return self.critical + self.warning


async def fault_counts(*, session: AsyncSession) -> FaultCounts:
    counts = await faults.open_fault_counts(session=session)
    return FaultCounts(
        critical=sum(c.count for c in counts if c.severity == "critical"),
        warning=sum(c.count for c in counts if c.severity != "critical"),
        acknowledged=sum(c.count for c in counts if c.state == FaultState.ACKNOWLEDGED),
    )


async def readings(
    *, session: AsyncSession, luminaire_id: int, since: datetime, until: datetime
) -> list[Sample]:
    """Raw readings of one luminaire in [since, until), oldest first (at most MAX_READINGS)."""
    rows = (
        await session.exec(
            select(ReadingRow.at, ReadingRow.level_pct, ReadingRow.power_w)
            .where(
                ReadingRow.luminaire_id == luminaire_id,
                col(ReadingRow.at) >= since,
                col(ReadingRow.at) < until,
            )
            .order_by(col(ReadingRow.at).desc())
            .limit(MAX_READINGS)
        )
    ).all()
    return [Sample(_aware(at), float(level), float(power)) for at, level, power in reversed(rows)]


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


async def group_hourly_energy(
    *, session: AsyncSession, group: LuminaireGroup, since: datetime, until: datetime
) -> dict[datetime, float]:
    """Wh per UTC hour, summed over the group's current members."""
    rows = (
        await session.exec(
            select(EnergyHourly.hour, func.sum(EnergyHourly.energy_wh))
            .join(Luminaire, col(Luminaire.id) == col(EnergyHourly.luminaire_id))
            .where(group_condition(group), col(EnergyHourly.hour) >= since)
            .where(col(EnergyHourly.hour) < until)
            .group_by(col(EnergyHourly.hour))
        )
    ).all()
    return {_aware(hour): float(wh or 0.0) for hour, wh in rows}


async def active_overrides(
    *,
    session: AsyncSession,
    now: datetime,
    luminaire_id: int | None = None,
    group_id: int | None = None,
) -> list[OverridePublic]:
    """Overrides in force now on this luminaire (any way) or naming this group (or all)."""
    out = []
    for row in await overlapping(session=session, start=now, end=now + timedelta(microseconds=1)):
        if luminaire_id is not None:
            targets = await targeted_luminaires(session=session, row=row)
            if targets is not None and luminaire_id not in targets:
                continue
        elif group_id is not None and not (row.all_luminaires or group_id in row.group_ids):
            continue
        public = to_public(row, now)
        if public.active:
            out.append(public)
    return sorted(out, key=lambda o: o.id, reverse=True)


async def wards(*, session: AsyncSession) -> list[str]:
    rows = (await session.exec(select(Luminaire.ward).distinct())).all()
    return sorted(rows)


@dataclass(frozen=True, slots=True)
class LuminaireInfo:
    row: LuminairePublic
    lamp: LampTypePublic
    gateway: GatewayPublic


async def luminaire_info(*, session: AsyncSession, luminaire_id: int) -> LuminaireInfo | None:
    """The luminaire with its lamp type and gateway, as the API gives them (None: no such)."""
    try:
        row = await inventory.get_luminaire(session=session, luminaire_id=luminaire_id)
    except NotFound:
        return None
    return LuminaireInfo(
        row,
        await inventory.get_lamp_type(session=session, lamp_type_id=row.lamp_type_id),
        await inventory.get_gateway(session=session, gateway_id=row.gateway_id),
    )


async def names(
    *, session: AsyncSession, luminaire_ids: Iterable[int], gateway_ids: Iterable[int]
) -> tuple[dict[int, str], dict[int, str]]:
    """Names of luminaires and gateways by id (for fault lists)."""
    lids = sorted(set(luminaire_ids))
    gids = sorted(set(gateway_ids))
    lums: dict[int, str] = {}
    gws: dict[int, str] = {}
    if lids:
        rows = (
            await session.exec(
                select(Luminaire.id, Luminaire.name).where(col(Luminaire.id).in_(lids))
            )
        ).all()
        lums = {int(i or 0): n for i, n in rows}
    if gids:
        rows = (
            await session.exec(
                select(GatewayRow.id, GatewayRow.name).where(col(GatewayRow.id).in_(gids))
            )
        ).all()
        gws = {int(i or 0): n for i, n in rows}
    return lums, gws


async def member_ids(*, session: AsyncSession, group: LuminaireGroup) -> list[int]:
    rows = (
        await session.exec(
            select(Luminaire.id).where(group_condition(group)).order_by(col(Luminaire.id))
        )
    ).all()
    return [int(r) for r in rows if r is not None]


async def faults_of_luminaires(
    *, session: AsyncSession, luminaire_ids: list[int], active_only: bool, limit: int = 50
) -> list[FaultPublic]:
    if not luminaire_ids:
        return []
    stmt = select(FaultRow).where(col(FaultRow.luminaire_id).in_(luminaire_ids))
    if active_only:
        stmt = stmt.where(FaultRow.state != FaultState.RESOLVED)
    rows = (await session.exec(stmt.order_by(col(FaultRow.id).desc()).limit(limit))).all()
    return [FaultPublic.model_validate(r) for r in rows]
