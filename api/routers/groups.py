"""Groups of luminaires: explicit lists or every luminaire of a ward, street or gateway."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from api.deps import IdPath, PageDep, PrincipalDep, SessionDep, require
from controller.access.auth import Permission, Principal
from controller.core.page import Page
from controller.inventory import data as inventory
from controller.inventory.schemas import GroupCreate, GroupPublic, GroupUpdate, LuminairePublic

router = APIRouter(prefix="/groups", tags=["groups"])
Writer = Annotated[Principal, Depends(require(Permission.INVENTORY_WRITE, "change groups"))]


@router.get("", summary="List groups")
async def list_groups(
    session: SessionDep, _: PrincipalDep, page: PageDep, q: str | None = None
) -> Page[GroupPublic]:
    return await inventory.list_groups(session=session, limit=page.limit, offset=page.offset, q=q)


@router.get("/{group_id}", summary="Get one group")
async def get_group(group_id: IdPath, session: SessionDep, _: PrincipalDep) -> GroupPublic:
    return await inventory.get_group(session=session, group_id=group_id)


@router.get("/{group_id}/members", summary="The group's current luminaires")
async def group_members(
    group_id: IdPath, session: SessionDep, _: PrincipalDep, page: PageDep
) -> Page[LuminairePublic]:
    return await inventory.list_luminaires(
        session=session, limit=page.limit, offset=page.offset, group_id=group_id
    )


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a group")
async def create_group(data: GroupCreate, session: SessionDep, who: Writer) -> GroupPublic:
    return await inventory.create_group(session=session, data=data, actor=who)


@router.patch("/{group_id}", summary="Update a group (partial; members replace the list)")
async def update_group(
    group_id: IdPath, data: GroupUpdate, session: SessionDep, who: Writer
) -> GroupPublic:
    return await inventory.update_group(session=session, group_id=group_id, data=data, actor=who)


@router.delete("/{group_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a group")
async def delete_group(group_id: IdPath, session: SessionDep, who: Writer) -> Response:
    await inventory.delete_group(session=session, group_id=group_id, actor=who)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
