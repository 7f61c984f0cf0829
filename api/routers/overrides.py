"""Manual overrides: set a level on some luminaires for a while; they revert by themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from api.deps import IdPath, NowDep, PageDep, PrincipalDep, SessionDep, require
from controller.access.auth import Permission, Principal
from controller.core.page import Page
from controller.scheduling import overrides
from controller.scheduling.overrides import OverrideCreate, OverridePublic

router = APIRouter(prefix="/overrides", tags=["overrides"])
Writer = Annotated[Principal, Depends(require(Permission.OVERRIDE_WRITE, "set overrides"))]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Set an override")
async def create_override(
    data: OverrideCreate, request: Request, session: SessionDep, who: Writer, now: NowDep
) -> OverridePublic:
    return await overrides.create_override(session=session, data=data, actor=who, now=now)


@router.get("", summary="List overrides (newest first); active=true for those in force")
async def list_overrides(
    now: NowDep,
    session: SessionDep,
    _: PrincipalDep,
    page: PageDep,
    active: bool | None = None,
) -> Page[OverridePublic]:
    return await overrides.list_overrides(
        session=session, now=now, limit=page.limit, offset=page.offset, active=active
    )


@router.get("/{override_id}", summary="Get an override")
async def get_override(
    override_id: IdPath, now: NowDep, session: SessionDep, _: PrincipalDep
) -> OverridePublic:
    return await overrides.get_override(session=session, override_id=override_id, now=now)


@router.delete("/{override_id}", summary="End an override now (the lights revert)")
async def end_override(
    override_id: IdPath, request: Request, session: SessionDep, who: Writer, now: NowDep
) -> OverridePublic:
    return await overrides.end_override(
        session=session, override_id=override_id, actor=who, now=now
    )
