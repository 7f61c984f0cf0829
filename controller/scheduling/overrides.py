"""Manual overrides: storage, validation and which luminaires each one targets.

An override sets a level on some luminaires (explicit ids, the members of groups,
or all) from ``starts_at`` to ``ends_at``; it reverts by itself at its end and can
be ended early (``cancelled_at``). Of several active overrides on one luminaire the
newest wins (:mod:`schedules.decision`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import col, func, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.access import audit
from controller.access.auth import Principal
from controller.core.changes import ConfigChange, note_change
from controller.core.errors import FieldProblem, InvalidInput, NotFound
from controller.core.page import Page
from controller.inventory.data import group_condition
from controller.inventory.schemas import DbId
from controller.store.tables import Luminaire, LuminaireGroup, OverrideRow
from schedules.decision import Override
from schedules.program import night_bounds
from schedules.sun import Site

MAX_DURATION = timedelta(days=366)


class OverrideTargets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    luminaires: list[DbId] = Field(default_factory=list, description="Luminaire ids")
    groups: list[DbId] = Field(default_factory=list, description="Group ids (current members)")
    all: bool = Field(False, description="Every luminaire")

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not (self.all or self.luminaires or self.groups):
            raise ValueError("name luminaires, groups, or all=true")
        return self


class OverrideCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    targets: OverrideTargets
    level: int = Field(ge=0, le=100, description="0..100 %")
    start: datetime | None = Field(None, description="Default: now")
    end: datetime | None = Field(None, description="Give end or duration_min")
    duration_min: Annotated[int, Field(ge=1, le=527_040)] | None = None
    reason: Annotated[str, Field(min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _window(self) -> Self:
        if (self.end is None) == (self.duration_min is None):
            raise ValueError("give exactly one of end or duration_min")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a UTC offset (e.g. 2026-12-31T18:00:00+07:00)")
        return self


class OverridePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    level: int
    starts_at: datetime
    ends_at: datetime
    reason: str
    targets: OverrideTargets
    created_by: str
    created_at: datetime
    cancelled_at: datetime | None
    cancelled_by: str | None
    active: bool


def effective_end(row: OverrideRow) -> datetime:
    if row.cancelled_at is not None and row.cancelled_at < row.ends_at:
        return row.cancelled_at
    return row.ends_at


def to_public(row: OverrideRow, now: datetime) -> OverridePublic:
    assert row.id is not None
    return OverridePublic(
        id=row.id,
        level=row.level,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        reason=row.reason,
        targets=OverrideTargets(
            luminaires=row.luminaire_ids, groups=row.group_ids, all=row.all_luminaires
        ),
        created_by=row.created_by,
        created_at=row.created_at,
        cancelled_at=row.cancelled_at,
        cancelled_by=row.cancelled_by,
        active=row.starts_at <= now < effective_end(row),
    )


def to_pure(row: OverrideRow) -> Override:
    assert row.id is not None
    return Override(
        id=row.id,
        level=row.level,
        start=row.starts_at,
        end=effective_end(row),
        created_at=row.created_at,
    )


async def create_override(
    *, session: AsyncSession, data: OverrideCreate, actor: Principal, now: datetime
) -> OverridePublic:
    start = (data.start or now).astimezone(UTC)
    end = (
        data.end.astimezone(UTC)
        if data.end is not None
        else start + timedelta(minutes=data.duration_min or 0)
    )
    problems: list[FieldProblem] = []
    if end <= start:
        problems.append(FieldProblem("end", f"ends ({end.isoformat()}) before it starts"))
    elif end - start > MAX_DURATION:
        problems.append(FieldProblem("end", "an override may last at most 366 days"))
    if end <= now:
        problems.append(FieldProblem("end", "the override would already be over"))
    lum_ids = sorted(set(data.targets.luminaires))
    grp_ids = sorted(set(data.targets.groups))
    if lum_ids:
        found = set(
            (await session.exec(select(Luminaire.id).where(col(Luminaire.id).in_(lum_ids)))).all()
        )
        missing = [i for i in lum_ids if i not in found]
        if missing:
            problems.append(FieldProblem("targets.luminaires", f"unknown luminaire(s) {missing}"))
    if grp_ids:
        found = set(
            (
                await session.exec(
                    select(LuminaireGroup.id).where(col(LuminaireGroup.id).in_(grp_ids))
                )
            ).all()
        )
        missing = [i for i in grp_ids if i not in found]
        if missing:
            problems.append(FieldProblem("targets.groups", f"unknown group(s) {missing}"))
    if problems:
        raise InvalidInput("the override is invalid", problems)
    row = OverrideRow(
        level=data.level,
        starts_at=start,
        ends_at=end,
        reason=data.reason,
        all_luminaires=data.targets.all,
        luminaire_ids=lum_ids,
        group_ids=grp_ids,
        created_by=actor.name,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    public = to_public(row, now)
    audit.record(
        session=session, actor=actor, action="create", entity="override", entity_id=row.id,
        after=public,
    )  # fmt: skip
    await session.commit()
    note_change(session, ConfigChange.OVERRIDES)
    return public


async def end_override(
    *, session: AsyncSession, override_id: int, actor: Principal, now: datetime
) -> OverridePublic:
    """End an override now (idempotent: ending an ended override changes nothing)."""
    row = await session.get(OverrideRow, override_id)
    if row is None:
        raise NotFound("override", override_id)
    before = to_public(row, now)
    if effective_end(row) > now:
        row.cancelled_at = max(now, row.starts_at)
        row.cancelled_by = actor.name
        session.add(row)
        await session.flush()
        audit.record(
            session=session, actor=actor, action="end", entity="override",
            entity_id=override_id, before=before, after=to_public(row, now),
        )  # fmt: skip
        await session.commit()
        note_change(session, ConfigChange.OVERRIDES)
    return to_public(row, now)


async def get_override(*, session: AsyncSession, override_id: int, now: datetime) -> OverridePublic:
    row = await session.get(OverrideRow, override_id)
    if row is None:
        raise NotFound("override", override_id)
    return to_public(row, now)


async def list_overrides(
    *, session: AsyncSession, now: datetime, limit: int, offset: int, active: bool | None = None
) -> Page[OverridePublic]:
    stmt = select(OverrideRow)
    live = (
        col(OverrideRow.starts_at) <= now,
        col(OverrideRow.ends_at) > now,
        or_(col(OverrideRow.cancelled_at).is_(None), col(OverrideRow.cancelled_at) > now),
    )
    if active is True:
        stmt = stmt.where(*live)
    total = (await session.exec(select(func.count()).select_from(stmt.subquery()))).one()
    rows = (
        await session.exec(stmt.order_by(col(OverrideRow.id).desc()).offset(offset).limit(limit))
    ).all()
    items = [to_public(r, now) for r in rows]
    if active is False:
        items = [i for i in items if not i.active]
    return Page(items=items, total=total, limit=limit, offset=offset)


async def overlapping(
    *, session: AsyncSession, start: datetime, end: datetime
) -> Sequence[OverrideRow]:
    """Overrides whose window (as cut short by an early end) overlaps [start, end)."""
    rows = (
        await session.exec(
            select(OverrideRow).where(
                col(OverrideRow.starts_at) < end, col(OverrideRow.ends_at) > start
            )
        )
    ).all()
    return [r for r in rows if effective_end(r) > start and effective_end(r) > r.starts_at]


async def targeted_luminaires(*, session: AsyncSession, row: OverrideRow) -> set[int] | None:
    """The luminaire ids an override targets now (None = all)."""
    if row.all_luminaires:
        return None
    ids = set(row.luminaire_ids)
    for group_id in row.group_ids:
        group = await session.get(LuminaireGroup, group_id)
        if group is None:
            continue
        ids.update(
            i
            for i in (await session.exec(select(Luminaire.id).where(group_condition(group)))).all()
            if i is not None
        )
    return ids


async def overrides_for_luminaire(
    *, session: AsyncSession, luminaire_id: int, night: date, site: Site
) -> list[Override]:
    start, end = night_bounds(site, night)
    out: list[Override] = []
    for row in await overlapping(session=session, start=start, end=end):
        targets = await targeted_luminaires(session=session, row=row)
        if targets is None or luminaire_id in targets:
            out.append(to_pure(row))
    return out


async def overrides_for_group(
    *, session: AsyncSession, group_id: int, night: date, site: Site
) -> list[Override]:
    """Overrides on the whole group: ones naming it, or all luminaires."""
    start, end = night_bounds(site, night)
    return [
        to_pure(row)
        for row in await overlapping(session=session, start=start, end=end)
        if row.all_luminaires or group_id in row.group_ids
    ]
