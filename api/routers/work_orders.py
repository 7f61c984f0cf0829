"""Work orders: faults handed to a crew, from new to verified (maintenance, operators).

A city's ticket system can drive them: create from fault ids, assign, move, add notes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import IdPath, NowDep, PageDep, PrincipalDep, SessionDep, require
from controller.access.auth import Permission, Principal
from controller.core.page import Page
from controller.faults import work_orders
from controller.faults.work_order_schemas import (
    WorkOrderAssign,
    WorkOrderCreate,
    WorkOrderDetail,
    WorkOrderMove,
    WorkOrderNoteCreate,
    WorkOrderPublic,
    WorkState,
)

router = APIRouter(prefix="/work-orders", tags=["work orders"])
Writer = Annotated[Principal, Depends(require(Permission.WORK_ORDER_WRITE, "handle work orders"))]


@router.get("", summary="List work orders (newest first); state, open, ward, crew, assignee")
async def list_work_orders(
    session: SessionDep,
    _: PrincipalDep,
    page: PageDep,
    state: WorkState | None = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
    ward: Annotated[str | None, Query(max_length=100)] = None,
    crew: Annotated[str | None, Query(max_length=100)] = None,
    assignee: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[WorkOrderPublic]:
    return await work_orders.list_work_orders(
        session=session, limit=page.limit, offset=page.offset, state=state,
        open_only=open_only, ward=ward, crew=crew, assignee=assignee,
    )  # fmt: skip


@router.post("", status_code=201, summary="Create a work order from open faults")
async def create_work_order(
    body: WorkOrderCreate, session: SessionDep, who: Writer, now: NowDep
) -> WorkOrderDetail:
    return await work_orders.create_work_order(session=session, data=body, actor=who, now=now)


@router.get("/{order_id}", summary="A work order with its faults and notes")
async def get_work_order(order_id: IdPath, session: SessionDep, _: PrincipalDep) -> WorkOrderDetail:
    return await work_orders.get_work_order(session=session, order_id=order_id)


@router.patch("/{order_id}", summary="Change the crew or crew member")
async def assign_work_order(
    order_id: IdPath, body: WorkOrderAssign, session: SessionDep, who: Writer, now: NowDep
) -> WorkOrderDetail:
    return await work_orders.assign_work_order(
        session=session, order_id=order_id, data=body, actor=who, now=now
    )


@router.post(
    "/{order_id}/transitions",
    summary="Move to another state (409 names the state when the move is not allowed)",
)
async def move_work_order(
    order_id: IdPath, body: WorkOrderMove, session: SessionDep, who: Writer, now: NowDep
) -> WorkOrderDetail:
    return await work_orders.move_work_order(
        session=session, order_id=order_id, data=body, actor=who, now=now
    )


@router.post("/{order_id}/notes", status_code=201, summary="Append a note and time spent")
async def add_note(
    order_id: IdPath, body: WorkOrderNoteCreate, session: SessionDep, who: Writer, now: NowDep
) -> WorkOrderDetail:
    return await work_orders.add_note(
        session=session, order_id=order_id, data=body, actor=who, now=now
    )
