"""Gateways: the devices the controller talks to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from api.deps import IdPath, PageDep, PrincipalDep, SessionDep, require
from controller.access.auth import Permission, Principal
from controller.core.page import Page
from controller.core.values import ProtocolKind
from controller.inventory import data as inventory
from controller.inventory.schemas import GatewayCreate, GatewayPublic, GatewayUpdate

router = APIRouter(prefix="/gateways", tags=["gateways"])
Writer = Annotated[Principal, Depends(require(Permission.INVENTORY_WRITE, "change gateways"))]


@router.get("", summary="List gateways")
async def list_gateways(
    session: SessionDep,
    _: PrincipalDep,
    page: PageDep,
    ward: str | None = None,
    protocol: ProtocolKind | None = None,
    q: Annotated[str | None, Query(description="Text search in the name")] = None,
) -> Page[GatewayPublic]:
    return await inventory.list_gateways(
        session=session, limit=page.limit, offset=page.offset, ward=ward, protocol=protocol, q=q
    )


@router.get("/{gateway_id}", summary="Get one gateway")
async def get_gateway(gateway_id: IdPath, session: SessionDep, _: PrincipalDep) -> GatewayPublic:
    return await inventory.get_gateway(session=session, gateway_id=gateway_id)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a gateway")
async def create_gateway(data: GatewayCreate, session: SessionDep, who: Writer) -> GatewayPublic:
    return await inventory.create_gateway(session=session, data=data, actor=who)


@router.patch("/{gateway_id}", summary="Update a gateway (partial)")
async def update_gateway(
    gateway_id: IdPath, data: GatewayUpdate, session: SessionDep, who: Writer
) -> GatewayPublic:
    return await inventory.update_gateway(
        session=session, gateway_id=gateway_id, data=data, actor=who
    )


@router.delete(
    "/{gateway_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an unused gateway"
)
async def delete_gateway(gateway_id: IdPath, session: SessionDep, who: Writer) -> Response:
    await inventory.delete_gateway(session=session, gateway_id=gateway_id, actor=who)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
