"""The audit trail (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import PageDep, SessionDep, require
from controller.access import audit
from controller.access.auth import Permission, Principal
from controller.access.schemas import AuditPublic
from controller.core.page import Page

router = APIRouter(prefix="/audit", tags=["audit"])
Admin = Annotated[Principal, Depends(require(Permission.AUDIT_READ, "read the audit log"))]


@router.get("", summary="Every write: who, role, what, target, before/after, when (newest first)")
async def list_audit(
    session: SessionDep,
    _: Admin,
    page: PageDep,
    entity: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
) -> Page[AuditPublic]:
    return await audit.list_entries(
        session=session,
        limit=page.limit,
        offset=page.offset,
        entity=entity,
        actor=actor,
        since=since,
    )
