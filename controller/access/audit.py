"""The audit trail: every write, who made it, and the entity before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.access.auth import Principal
from controller.access.schemas import AuditPublic
from controller.core.page import Page
from controller.store.tables import AuditEntry


def snapshot(model: BaseModel | None) -> dict[str, Any] | None:
    """A JSON-safe dict of a public model, for the before/after columns."""
    return None if model is None else model.model_dump(mode="json")


def record(
    *,
    session: AsyncSession,
    actor: Principal,
    action: str,
    entity: str,
    entity_id: object | None,
    before: BaseModel | None = None,
    after: BaseModel | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry to the session; it commits with the change it describes."""
    after_dict = snapshot(after)
    if extra:
        after_dict = {**(after_dict or {}), **extra}
    session.add(
        AuditEntry(
            actor=actor.name,
            role=actor.role.value,
            action=action,
            entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            before=snapshot(before),
            after=after_dict,
        )
    )


async def list_entries(
    *,
    session: AsyncSession,
    limit: int,
    offset: int,
    entity: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    entity_id: str | None = None,
    action: str | None = None,
) -> Page[AuditPublic]:
    """Newest first; ``until`` is excluded."""
    stmt = select(AuditEntry)
    if entity:
        stmt = stmt.where(AuditEntry.entity == entity)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if since:
        stmt = stmt.where(col(AuditEntry.at) >= since)
    if until:
        stmt = stmt.where(col(AuditEntry.at) < until)
    if entity_id:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    total = (await session.exec(select(func.count()).select_from(stmt.subquery()))).one()
    rows = (
        await session.exec(stmt.order_by(col(AuditEntry.id).desc()).offset(offset).limit(limit))
    ).all()
    return Page(
        items=[AuditPublic.model_validate(r) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )
