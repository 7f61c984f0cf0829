"""Work orders in the database: faults handed to a crew, moved from new to verified.

Every change is audited with the order before and after. A ``fixed`` order becomes
``verified`` on its own when the fault tracker has resolved every one of its faults:
:func:`verify_repaired` runs inside :func:`controller.faults.data.record_transitions`, in
the transaction that records the resolution, and when an order is marked fixed after the
tracker already resolved its faults.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.access import audit
from controller.access.auth import Principal
from controller.access.schemas import Role
from controller.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from controller.core.page import Page
from controller.faults.work_order_schemas import (
    MOVES,
    OPEN_STATES,
    RepairTimes,
    WorkFault,
    WorkNotePublic,
    WorkOrderAssign,
    WorkOrderCreate,
    WorkOrderDetail,
    WorkOrderMove,
    WorkOrderNoteCreate,
    WorkOrderPublic,
    WorkState,
)
from controller.store.tables import ApiKey, FaultRow, WorkOrder, WorkOrderFault, WorkOrderNote

RESOLVED = "resolved"  # controller.faults.data.FaultState.RESOLVED (data imports this module)
TELEMETRY = Principal(name="telemetry", role=Role.ADMIN)
"""Who verifies an order when the fault tracker resolved its faults (the audit's actor)."""
_OPEN = [s.value for s in OPEN_STATES]


async def _fault_ids(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {i: [] for i in order_ids}
    if order_ids:
        rows = await session.exec(
            select(WorkOrderFault)
            .where(col(WorkOrderFault.work_order_id).in_(order_ids))
            .order_by(col(WorkOrderFault.fault_id))
        )
        for link in rows.all():
            out[link.work_order_id].append(link.fault_id)
    return out


def _public(row: WorkOrder, fault_ids: list[int]) -> WorkOrderPublic:
    public = WorkOrderPublic.model_validate(row)
    public.fault_ids = fault_ids
    return public


async def _load(session: AsyncSession, order_id: int) -> WorkOrder:
    row = await session.get(WorkOrder, order_id)
    if row is None:
        raise NotFound("work order", order_id)
    return row


async def get_work_order(*, session: AsyncSession, order_id: int) -> WorkOrderDetail:
    row = await _load(session, order_id)
    faults = (
        await session.exec(
            select(FaultRow)
            .join(WorkOrderFault, col(WorkOrderFault.fault_id) == col(FaultRow.id))
            .where(WorkOrderFault.work_order_id == order_id)
            .order_by(col(FaultRow.id))
        )
    ).all()
    notes = (
        await session.exec(
            select(WorkOrderNote)
            .where(WorkOrderNote.work_order_id == order_id)
            .order_by(col(WorkOrderNote.id))
        )
    ).all()
    detail = WorkOrderDetail.model_validate(row)
    detail.faults = [WorkFault.model_validate(f) for f in faults]
    detail.fault_ids = [f.id for f in detail.faults]
    detail.notes = [WorkNotePublic.model_validate(n) for n in notes]
    return detail


async def list_work_orders(
    *,
    session: AsyncSession,
    limit: int,
    offset: int,
    state: WorkState | None = None,
    open_only: bool = False,
    ward: str | None = None,
    crew: str | None = None,
    assignee: str | None = None,
) -> Page[WorkOrderPublic]:
    """Newest first; ``open_only`` keeps the orders not yet verified or cancelled."""
    stmt = select(WorkOrder)
    if state is not None:
        stmt = stmt.where(WorkOrder.state == state.value)
    if open_only:
        stmt = stmt.where(col(WorkOrder.state).in_(_OPEN))
    if ward:
        stmt = stmt.where(WorkOrder.ward == ward)
    if crew:
        stmt = stmt.where(WorkOrder.crew == crew)
    if assignee:
        stmt = stmt.where(WorkOrder.assignee == assignee)
    total = (await session.exec(select(func.count()).select_from(stmt.subquery()))).one()
    rows = (
        await session.exec(stmt.order_by(col(WorkOrder.id).desc()).offset(offset).limit(limit))
    ).all()
    links = await _fault_ids(session, [r.id for r in rows if r.id is not None])
    return Page(
        items=[_public(r, links[r.id or 0]) for r in rows], total=total, limit=limit,
        offset=offset,
    )  # fmt: skip


async def open_orders_of_faults(
    *, session: AsyncSession, fault_ids: Collection[int]
) -> dict[int, WorkOrderPublic]:
    """The order not yet closed that holds each fault (faults without one are left out)."""
    if not fault_ids:
        return {}
    rows = (
        await session.exec(
            select(WorkOrderFault.fault_id, WorkOrder)
            .join(WorkOrder, col(WorkOrder.id) == col(WorkOrderFault.work_order_id))
            .where(col(WorkOrderFault.fault_id).in_(list(fault_ids)))
            .where(col(WorkOrder.state).in_(_OPEN))
        )
    ).all()
    links = await _fault_ids(session, sorted({o.id for _, o in rows if o.id is not None}))
    return {fid: _public(order, links[order.id or 0]) for fid, order in rows}


async def latest_order_of_fault(*, session: AsyncSession, fault_id: int) -> WorkOrder | None:
    """The newest work order that covers a fault, whatever its state."""
    return (
        await session.exec(
            select(WorkOrder)
            .join(WorkOrderFault, col(WorkOrderFault.work_order_id) == col(WorkOrder.id))
            .where(WorkOrderFault.fault_id == fault_id)
            .order_by(col(WorkOrder.id).desc())
        )
    ).first()


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", [FieldProblem(field, message)])


async def _check_assignee(session: AsyncSession, name: str | None) -> None:
    """An assignee is the name of an API key in use (422 otherwise)."""
    if name is None:
        return
    key = (await session.exec(select(ApiKey).where(ApiKey.name == name))).first()
    if key is None or key.revoked_at is not None:
        raise _bad("assignee", f"no API key in use is named {name!r}")


async def create_work_order(
    *, session: AsyncSession, data: WorkOrderCreate, actor: Principal, now: datetime
) -> WorkOrderDetail:
    """An order for open faults that share a street (same ward) or a gateway.

    A fault already in an order not yet closed is a conflict (409); a fault that does not
    exist, is resolved, or lies elsewhere is refused (422 on ``fault_ids``).
    """
    await _check_assignee(session, data.assignee)
    ids = sorted(set(data.fault_ids))
    # locked (PostgreSQL): two crews taking the same fault at once queue here, and the
    # second then finds it taken (409) instead of both getting it
    locked = select(FaultRow).where(col(FaultRow.id).in_(ids)).with_for_update()
    rows = (await session.exec(locked)).all()
    missing = sorted(set(ids) - {r.id for r in rows})
    if missing:
        raise _bad("fault_ids", f"no such fault: {', '.join(map(str, missing))}")
    resolved = [r.id for r in rows if r.state == RESOLVED]
    if resolved:
        raise _bad("fault_ids", f"already resolved: {', '.join(map(str, resolved))}")
    streets = {(r.ward, r.street) for r in rows}
    gateways = {r.gateway_id for r in rows}
    same_street = len(streets) == 1 and None not in next(iter(streets))
    same_gateway = len(gateways) == 1 and None not in gateways
    if not (same_street or same_gateway):
        raise _bad("fault_ids", "the faults must share one street (in one ward) or one gateway")
    taken = await open_orders_of_faults(session=session, fault_ids=ids)
    if taken:
        fid, order = next(iter(sorted(taken.items())))
        raise Conflict(
            f"fault {fid} is already in work order {order.id} ({order.state.value})",
            field="fault_ids",
        )
    wards = {r.ward for r in rows}
    first = rows[0]
    row = WorkOrder(
        state=WorkState.ASSIGNED.value if data.crew else WorkState.NEW.value,
        crew=data.crew, assignee=data.assignee,
        ward=first.ward if len(wards) == 1 else None,
        street=first.street if same_street else None,
        gateway_id=first.gateway_id if same_gateway else None,
        created_by=actor.name, created_at=now, assigned_at=now if data.crew else None,
        updated_at=now,
    )  # fmt: skip
    session.add(row)
    await session.flush()
    assert row.id is not None
    session.add_all(WorkOrderFault(work_order_id=row.id, fault_id=i) for i in ids)
    if data.note:
        session.add(WorkOrderNote(work_order_id=row.id, at=now, author=actor.name, text=data.note))
    audit.record(
        session=session, actor=actor, action="create", entity="work_order", entity_id=row.id,
        after=_public(row, ids),
    )  # fmt: skip
    await session.commit()
    return await get_work_order(session=session, order_id=row.id)


def _closed(row: WorkOrder) -> Conflict:
    return Conflict(f"work order {row.id} is {row.state!r}: it is closed", field="state")


async def assign_work_order(
    *,
    session: AsyncSession,
    order_id: int,
    data: WorkOrderAssign,
    actor: Principal,
    now: datetime,
) -> WorkOrderDetail:
    """Change the crew or crew member of an order not yet closed."""
    row = await _load(session, order_id)
    if WorkState(row.state) not in OPEN_STATES:
        raise _closed(row)
    links = (await _fault_ids(session, [order_id]))[order_id]
    before = _public(row, links)
    changes = data.model_dump(exclude_unset=True)
    await _check_assignee(session, changes.get("assignee"))
    if "crew" in changes and changes["crew"] is None and row.state != WorkState.NEW.value:
        raise _bad("crew", "an assigned order keeps a crew (cancel it instead)")
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = now
    session.add(row)
    audit.record(
        session=session, actor=actor, action="update", entity="work_order", entity_id=order_id,
        before=before, after=_public(row, links),
    )  # fmt: skip
    await session.commit()
    return await get_work_order(session=session, order_id=order_id)


async def _all_resolved_by_tracker(session: AsyncSession, order_id: int) -> bool:
    """Whether every fault of the order is resolved, and by the tracker (not by hand)."""
    faults = (
        await session.exec(
            select(FaultRow)
            .join(WorkOrderFault, col(WorkOrderFault.fault_id) == col(FaultRow.id))
            .where(WorkOrderFault.work_order_id == order_id)
        )
    ).all()
    return bool(faults) and all(f.state == RESOLVED and f.resolved_by is None for f in faults)


def _apply(row: WorkOrder, to: WorkState, at: datetime) -> None:
    row.state = to.value
    row.updated_at = at
    stamp = {
        WorkState.ASSIGNED: "assigned_at",
        WorkState.ON_SITE: "on_site_at",
        WorkState.FIXED: "fixed_at",
        WorkState.VERIFIED: "verified_at",
        WorkState.CANCELLED: "cancelled_at",
    }.get(to)
    if stamp is not None:
        setattr(row, stamp, at)


async def _verify_by_telemetry(
    session: AsyncSession, row: WorkOrder, links: list[int], at: datetime
) -> None:
    before = _public(row, links)
    _apply(row, WorkState.VERIFIED, at)
    row.verified_by = TELEMETRY.name
    session.add(row)
    audit.record(
        session=session, actor=TELEMETRY, action=WorkState.VERIFIED.value, entity="work_order",
        entity_id=row.id, before=before, after=_public(row, links),
    )  # fmt: skip


async def move_work_order(
    *,
    session: AsyncSession,
    order_id: int,
    data: WorkOrderMove,
    actor: Principal,
    now: datetime,
) -> WorkOrderDetail:
    """Move an order to another state (:data:`MOVES`), audited.

    A move not allowed from the current state is a conflict (409) naming both states.
    Verifying by hand and cancelling need a ``reason`` (422); ``assigned`` needs a crew.
    An order marked ``fixed`` whose faults the tracker already resolved is verified at once.
    """
    row = await _load(session, order_id)
    current = WorkState(row.state)
    if data.to not in MOVES[current]:
        allowed = ", ".join(sorted(m.value for m in MOVES[current])) or "none: it is closed"
        raise Conflict(
            f"work order {order_id} is {current.value!r}: it cannot go to {data.to.value!r} "
            f"(allowed: {allowed})",
            field="to",
        )
    if data.to in (WorkState.VERIFIED, WorkState.CANCELLED) and not data.reason:
        raise _bad("reason", f"required to move to {data.to.value!r} by hand")
    if data.to is not WorkState.ASSIGNED and (data.crew or data.assignee):
        raise _bad("crew", "a crew is given only with a move to 'assigned'")
    links = (await _fault_ids(session, [order_id]))[order_id]
    before = _public(row, links)
    if data.to is WorkState.ASSIGNED:
        await _check_assignee(session, data.assignee)
        row.crew = data.crew or row.crew
        row.assignee = data.assignee or row.assignee
        if not row.crew:
            raise _bad("crew", "required to assign the order")
    _apply(row, data.to, now)
    if data.to is WorkState.VERIFIED:
        row.verified_by, row.verified_reason = actor.name, data.reason
    elif data.to is WorkState.CANCELLED:
        row.cancelled_reason = data.reason
    session.add(row)
    audit.record(
        session=session, actor=actor, action=data.to.value, entity="work_order",
        entity_id=order_id, before=before, after=_public(row, links),
        extra={"reason": data.reason} if data.reason else None,
    )  # fmt: skip
    if data.to is WorkState.FIXED and await _all_resolved_by_tracker(session, order_id):
        await _verify_by_telemetry(session, row, links, now)
    await session.commit()
    return await get_work_order(session=session, order_id=order_id)


async def add_note(
    *,
    session: AsyncSession,
    order_id: int,
    data: WorkOrderNoteCreate,
    actor: Principal,
    now: datetime,
) -> WorkOrderDetail:
    """Append a note (and the minutes it reports) to an order; notes are never edited."""
    row = await _load(session, order_id)
    session.add(
        WorkOrderNote(
            work_order_id=order_id, at=now, author=actor.name, text=data.text,
            minutes=data.minutes,
        )
    )  # fmt: skip
    row.minutes_spent += data.minutes
    row.updated_at = now
    session.add(row)
    audit.record(
        session=session, actor=actor, action="note", entity="work_order", entity_id=order_id,
        extra={"text": data.text, "minutes": data.minutes},
    )  # fmt: skip
    await session.commit()
    return await get_work_order(session=session, order_id=order_id)


async def verify_repaired(
    *, session: AsyncSession, fault_ids: Collection[int], at: datetime
) -> list[int]:
    """Verify the ``fixed`` orders holding any of these just-resolved faults once the tracker
    has resolved all their faults; returns their ids. Adds to the session, does not commit:
    the caller's transaction records the resolution and the verification together."""
    if not fault_ids:
        return []
    orders = (
        await session.exec(
            select(WorkOrder)
            .join(WorkOrderFault, col(WorkOrderFault.work_order_id) == col(WorkOrder.id))
            .where(col(WorkOrderFault.fault_id).in_(list(fault_ids)))
            .where(WorkOrder.state == WorkState.FIXED.value)
        )
    ).unique().all()  # fmt: skip
    verified = []
    for row in orders:
        assert row.id is not None
        if await _all_resolved_by_tracker(session, row.id):
            links = (await _fault_ids(session, [row.id]))[row.id]
            await _verify_by_telemetry(session, row, links, at)
            verified.append(row.id)
    return verified


async def repair_times(
    *, session: AsyncSession, start: datetime, end: datetime
) -> dict[str | None, RepairTimes]:
    """Per ward, the orders created in [start, end) and not cancelled: how many, and their
    mean times from creation to fixed and to verified."""
    rows = (
        await session.exec(
            select(WorkOrder.ward, WorkOrder.created_at, WorkOrder.fixed_at, WorkOrder.verified_at)
            .where(col(WorkOrder.created_at) >= start, col(WorkOrder.created_at) < end)
            .where(WorkOrder.state != WorkState.CANCELLED.value)
        )
    ).all()
    per: dict[str | None, list[tuple[datetime, datetime | None, datetime | None]]] = {}
    for ward, created, fixed, verified in rows:
        per.setdefault(ward, []).append((created, fixed, verified))

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 1) if values else None

    return {
        ward: RepairTimes(
            created=len(items),
            mean_time_to_fix_s=mean([(f - c).total_seconds() for c, f, _ in items if f]),
            mean_time_to_verify_s=mean([(v - c).total_seconds() for c, _, v in items if v]),
        )
        for ward, items in per.items()
    }
