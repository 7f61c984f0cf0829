"""Lamp types: what power each luminaire model should draw."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from api.deps import IdPath, PageDep, PrincipalDep, SessionDep, require
from controller.access.auth import Permission, Principal
from controller.core.page import Page
from controller.inventory import data as inventory
from controller.inventory.schemas import LampTypeCreate, LampTypePublic, LampTypeUpdate

router = APIRouter(prefix="/lamp-types", tags=["lamp types"])
Writer = Annotated[Principal, Depends(require(Permission.INVENTORY_WRITE, "change lamp types"))]


@router.get("", summary="List lamp types")
async def list_lamp_types(
    session: SessionDep, _: PrincipalDep, page: PageDep, q: str | None = None
) -> Page[LampTypePublic]:
    return await inventory.list_lamp_types(
        session=session, limit=page.limit, offset=page.offset, q=q
    )


@router.get("/{lamp_type_id}", summary="Get one lamp type")
async def get_lamp_type(
    lamp_type_id: IdPath, session: SessionDep, _: PrincipalDep
) -> LampTypePublic:
    return await inventory.get_lamp_type(session=session, lamp_type_id=lamp_type_id)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a lamp type")
async def create_lamp_type(
    data: LampTypeCreate, session: SessionDep, who: Writer
) -> LampTypePublic:
    return await inventory.create_lamp_type(session=session, data=data, actor=who)


@router.patch("/{lamp_type_id}", summary="Update a lamp type (partial)")
async def update_lamp_type(
    lamp_type_id: IdPath, data: LampTypeUpdate, session: SessionDep, who: Writer
) -> LampTypePublic:
    return await inventory.update_lamp_type(
        session=session, lamp_type_id=lamp_type_id, data=data, actor=who
    )


@router.delete(
    "/{lamp_type_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an unused lamp type"
)
async def delete_lamp_type(lamp_type_id: IdPath, session: SessionDep, who: Writer) -> Response:
    await inventory.delete_lamp_type(session=session, lamp_type_id=lamp_type_id, actor=who)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
