"""Inventory data access: gateways, lamp types, luminaires and groups.

Keyword-only async functions used by the API routes, the CLI and the importer.
Every write validates through :mod:`controller.inventory.schemas`, checks references and
uniqueness with clear errors (404 / 409 in the API), and records an audit entry
in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement, false
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, func, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from controller.access import audit
from controller.access.auth import Principal
from controller.core.changes import ConfigChange, note_change
from controller.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from controller.core.page import Page
from controller.core.values import ProtocolKind
from controller.inventory.schemas import (
    GatewayCreate,
    GatewayPublic,
    GatewayUpdate,
    GroupCreate,
    GroupKind,
    GroupPublic,
    GroupUpdate,
    LampTypeCreate,
    LampTypePublic,
    LampTypeUpdate,
    LuminaireCreate,
    LuminairePublic,
    LuminaireUpdate,
    gateway_capacity,
)
from controller.store.tables import (
    CalendarRow,
    GatewayRow,
    GroupMember,
    LampTypeRow,
    Luminaire,
    LuminaireGroup,
)

T = TypeVar("T", bound=SQLModel)
P = TypeVar("P", bound=BaseModel)


def _now() -> datetime:
    return datetime.now(UTC)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


async def _page(
    session: AsyncSession,
    stmt: SelectOfScalar[T],
    order: Any,
    limit: int,
    offset: int,
    to_public: Callable[[Sequence[T]], list[P]],
) -> Page[P]:
    total = (await session.exec(select(func.count()).select_from(stmt.subquery()))).one()
    rows = (await session.exec(stmt.order_by(order).offset(offset).limit(limit))).all()
    return Page(items=to_public(rows), total=total, limit=limit, offset=offset)


async def _get(session: AsyncSession, table: type[T], kind: str, key: int) -> T:
    row = await session.get(table, key)
    if row is None:
        raise NotFound(kind, key)
    return row


async def _commit(session: AsyncSession, what: str) -> None:
    """Commit an inventory change (the running controller follows it: a change notice)."""
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"{what} conflicts with existing data: {exc.orig}") from exc
    note_change(session, ConfigChange.CONFIGURATION)


async def _write_new(
    session: AsyncSession,
    row: T,
    to_public: Callable[[T], P],
    *,
    actor: Principal,
    entity: str,
    what: str,
) -> P:
    """Insert ``row``, audit it, commit; the public view of what was stored."""
    session.add(row)
    await session.flush()
    public = to_public(row)
    audit.record(
        session=session,
        actor=actor,
        action="create",
        entity=entity,
        entity_id=getattr(row, "id", None),
        after=public,
    )
    await _commit(session, what)
    return public


async def _write_update(
    session: AsyncSession,
    row: T,
    values: dict[str, Any],
    before: P,
    to_public: Callable[[T], P],
    *,
    actor: Principal,
    entity: str,
    entity_id: int,
    what: str,
) -> P:
    """Apply validated ``values`` to ``row``, audit before/after, commit."""
    for key, value in values.items():
        setattr(row, key, value)
    setattr(row, "updated_at", _now())  # noqa: B010 - every inventory table has it
    session.add(row)
    await session.flush()
    after = to_public(row)
    audit.record(
        session=session,
        actor=actor,
        action="update",
        entity=entity,
        entity_id=entity_id,
        before=before,
        after=after,
    )
    await _commit(session, what)
    return after


async def _write_delete(
    session: AsyncSession,
    row: SQLModel,
    before: BaseModel,
    *,
    actor: Principal,
    entity: str,
    entity_id: int,
    what: str,
) -> None:
    await session.delete(row)
    audit.record(
        session=session,
        actor=actor,
        action="delete",
        entity=entity,
        entity_id=entity_id,
        before=before,
    )
    await _commit(session, what)


def _merge(model: BaseModel, update: BaseModel) -> dict[str, Any]:
    """Current values overlaid with the fields the client actually sent."""
    return {**model.model_dump(), **update.model_dump(exclude_unset=True)}


def _revalidate(schema: type[P], data: dict[str, Any]) -> P:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = [
            FieldProblem(".".join(str(p) for p in e["loc"]) or "body", e["msg"])
            for e in exc.errors()
        ]
        raise InvalidInput("the update would make the record invalid", problems) from exc


# --- gateways -----------------------------------------------------------------------------


def gateway_public(row: GatewayRow) -> GatewayPublic:
    return GatewayPublic.model_validate(
        {**row.model_dump(), "capacity": gateway_capacity(row.protocol, row.unit_ids)}
    )


async def _check_gateway_unique(
    session: AsyncSession, name: str, mqtt_id: str | None, exclude_id: int | None = None
) -> None:
    stmt = select(GatewayRow).where(GatewayRow.name == name)
    if exclude_id is not None:
        stmt = stmt.where(GatewayRow.id != exclude_id)
    if (await session.exec(stmt)).first() is not None:
        raise Conflict(f"a gateway named {name!r} already exists", field="name")
    if mqtt_id:
        stmt = select(GatewayRow).where(GatewayRow.mqtt_id == mqtt_id)
        if exclude_id is not None:
            stmt = stmt.where(GatewayRow.id != exclude_id)
        if (await session.exec(stmt)).first() is not None:
            raise Conflict(
                f"mqtt_id {mqtt_id!r} is already used by another gateway", field="mqtt_id"
            )


async def list_gateways(
    *,
    session: AsyncSession,
    limit: int,
    offset: int,
    ward: str | None = None,
    protocol: ProtocolKind | None = None,
    q: str | None = None,
) -> Page[GatewayPublic]:
    stmt = select(GatewayRow)
    if ward:
        stmt = stmt.where(GatewayRow.ward == ward)
    if protocol:
        stmt = stmt.where(GatewayRow.protocol == protocol.value)
    if q:
        stmt = stmt.where(func.lower(GatewayRow.name).like(_like(q), escape="\\"))
    return await _page(
        session, stmt, col(GatewayRow.id), limit, offset, lambda rs: [gateway_public(r) for r in rs]
    )


async def get_gateway(*, session: AsyncSession, gateway_id: int) -> GatewayPublic:
    return gateway_public(await _get(session, GatewayRow, "gateway", gateway_id))


async def create_gateway(
    *, session: AsyncSession, data: GatewayCreate, actor: Principal
) -> GatewayPublic:
    await _check_gateway_unique(session, data.name, data.mqtt_id)
    return await _write_new(
        session,
        GatewayRow(**data.model_dump(mode="json")),
        gateway_public,
        actor=actor,
        entity="gateway",
        what="gateway",
    )


async def update_gateway(
    *, session: AsyncSession, gateway_id: int, data: GatewayUpdate, actor: Principal
) -> GatewayPublic:
    row = await _get(session, GatewayRow, "gateway", gateway_id)
    before = gateway_public(row)
    merged = _merge(before, data)
    new = _revalidate(GatewayCreate, {k: merged[k] for k in GatewayCreate.model_fields})
    await _check_gateway_unique(session, new.name, new.mqtt_id, exclude_id=gateway_id)
    capacity = gateway_capacity(new.protocol, new.unit_ids)
    highest = (
        await session.exec(
            select(func.max(Luminaire.address)).where(Luminaire.gateway_id == gateway_id)
        )
    ).one()
    if highest is not None and highest >= capacity:
        raise Conflict(
            f"luminaire address {highest} on this gateway would exceed its capacity of "
            f"{capacity}; move those luminaires first",
            field="unit_ids",
        )
    return await _write_update(
        session, row, new.model_dump(mode="json"), before, gateway_public,
        actor=actor, entity="gateway", entity_id=gateway_id, what="gateway",
    )  # fmt: skip


async def delete_gateway(*, session: AsyncSession, gateway_id: int, actor: Principal) -> None:
    row = await _get(session, GatewayRow, "gateway", gateway_id)
    used = (
        await session.exec(
            select(func.count()).select_from(Luminaire).where(Luminaire.gateway_id == gateway_id)
        )
    ).one()
    if used:
        raise Conflict(f"gateway {gateway_id} still serves {used} luminaire(s); move them first")
    before = gateway_public(row)
    await _write_delete(
        session, row, before, actor=actor, entity="gateway", entity_id=gateway_id, what="gateway"
    )


# --- lamp types ---------------------------------------------------------------------------


async def _check_lamp_type_unique(
    session: AsyncSession, name: str, exclude_id: int | None = None
) -> None:
    stmt = select(LampTypeRow).where(LampTypeRow.name == name)
    if exclude_id is not None:
        stmt = stmt.where(LampTypeRow.id != exclude_id)
    if (await session.exec(stmt)).first() is not None:
        raise Conflict(f"a lamp type named {name!r} already exists", field="name")


async def list_lamp_types(
    *, session: AsyncSession, limit: int, offset: int, q: str | None = None
) -> Page[LampTypePublic]:
    stmt = select(LampTypeRow)
    if q:
        stmt = stmt.where(func.lower(LampTypeRow.name).like(_like(q), escape="\\"))
    return await _page(
        session,
        stmt,
        col(LampTypeRow.id),
        limit,
        offset,
        lambda rs: [LampTypePublic.model_validate(r) for r in rs],
    )


async def get_lamp_type(*, session: AsyncSession, lamp_type_id: int) -> LampTypePublic:
    return LampTypePublic.model_validate(
        await _get(session, LampTypeRow, "lamp type", lamp_type_id)
    )


async def create_lamp_type(
    *, session: AsyncSession, data: LampTypeCreate, actor: Principal
) -> LampTypePublic:
    await _check_lamp_type_unique(session, data.name)
    return await _write_new(
        session,
        LampTypeRow(**data.model_dump()),
        LampTypePublic.model_validate,
        actor=actor,
        entity="lamp_type",
        what="lamp type",
    )


async def update_lamp_type(
    *, session: AsyncSession, lamp_type_id: int, data: LampTypeUpdate, actor: Principal
) -> LampTypePublic:
    row = await _get(session, LampTypeRow, "lamp type", lamp_type_id)
    before = LampTypePublic.model_validate(row)
    merged = _merge(before, data)
    new = _revalidate(LampTypeCreate, {k: merged[k] for k in LampTypeCreate.model_fields})
    await _check_lamp_type_unique(session, new.name, exclude_id=lamp_type_id)
    return await _write_update(
        session, row, new.model_dump(), before, LampTypePublic.model_validate,
        actor=actor, entity="lamp_type", entity_id=lamp_type_id, what="lamp type",
    )  # fmt: skip


async def delete_lamp_type(*, session: AsyncSession, lamp_type_id: int, actor: Principal) -> None:
    row = await _get(session, LampTypeRow, "lamp type", lamp_type_id)
    used = (
        await session.exec(
            select(func.count())
            .select_from(Luminaire)
            .where(Luminaire.lamp_type_id == lamp_type_id)
        )
    ).one()
    if used:
        raise Conflict(f"lamp type {lamp_type_id} is used by {used} luminaire(s)")
    before = LampTypePublic.model_validate(row)
    await _write_delete(
        session,
        row,
        before,
        actor=actor,
        entity="lamp_type",
        entity_id=lamp_type_id,
        what="lamp type",
    )


# --- luminaires ---------------------------------------------------------------------------


async def _check_luminaire(
    session: AsyncSession, data: LuminaireCreate, exclude_id: int | None = None
) -> None:
    gateway = await session.get(GatewayRow, data.gateway_id)
    if gateway is None:
        raise InvalidInput(
            "unknown gateway",
            [FieldProblem("gateway_id", f"gateway {data.gateway_id} does not exist")],
        )
    if await session.get(LampTypeRow, data.lamp_type_id) is None:
        raise InvalidInput(
            "unknown lamp type",
            [FieldProblem("lamp_type_id", f"lamp type {data.lamp_type_id} does not exist")],
        )
    capacity = gateway_capacity(gateway.protocol, gateway.unit_ids)
    if data.address >= capacity:
        raise InvalidInput(
            "address out of range",
            [
                FieldProblem(
                    "address",
                    f"gateway {gateway.name!r} serves addresses 0..{capacity - 1}",
                )
            ],
        )
    same_name = select(Luminaire).where(Luminaire.name == data.name)
    same_addr = select(Luminaire).where(
        Luminaire.gateway_id == data.gateway_id, Luminaire.address == data.address
    )
    if exclude_id is not None:
        same_name = same_name.where(Luminaire.id != exclude_id)
        same_addr = same_addr.where(Luminaire.id != exclude_id)
    if (await session.exec(same_name)).first() is not None:
        raise Conflict(f"a luminaire named {data.name!r} already exists", field="name")
    other = (await session.exec(same_addr)).first()
    if other is not None:
        raise Conflict(
            f"address {data.address} on gateway {data.gateway_id} is already taken by "
            f"luminaire {other.id} ({other.name})",
            field="address",
        )


def group_condition(group: LuminaireGroup) -> ColumnElement[bool]:
    """A SQL condition selecting the group's current members."""
    kind = GroupKind(group.kind)
    if kind is GroupKind.EXPLICIT:
        members = select(GroupMember.luminaire_id).where(GroupMember.group_id == group.id)
        return col(Luminaire.id).in_(members)
    if kind is GroupKind.WARD:
        return col(Luminaire.ward) == group.selector
    if kind is GroupKind.STREET:
        return col(Luminaire.street) == group.selector
    if group.selector is None or not group.selector.isdigit():
        return false()
    return col(Luminaire.gateway_id) == int(group.selector)


async def list_luminaires(
    *,
    session: AsyncSession,
    limit: int,
    offset: int,
    ward: str | None = None,
    street: str | None = None,
    gateway_id: int | None = None,
    group_id: int | None = None,
    q: str | None = None,
) -> Page[LuminairePublic]:
    stmt = select(Luminaire)
    if ward:
        stmt = stmt.where(Luminaire.ward == ward)
    if street:
        stmt = stmt.where(Luminaire.street == street)
    if gateway_id is not None:
        stmt = stmt.where(Luminaire.gateway_id == gateway_id)
    if group_id is not None:
        group = await _get(session, LuminaireGroup, "group", group_id)
        stmt = stmt.where(group_condition(group))
    if q:
        pattern = _like(q)
        stmt = stmt.where(
            or_(
                func.lower(Luminaire.name).like(pattern, escape="\\"),
                func.lower(Luminaire.street).like(pattern, escape="\\"),
                func.lower(Luminaire.ward).like(pattern, escape="\\"),
            )
        )
    return await _page(
        session,
        stmt,
        col(Luminaire.id),
        limit,
        offset,
        lambda rs: [LuminairePublic.model_validate(r) for r in rs],
    )


async def get_luminaire(*, session: AsyncSession, luminaire_id: int) -> LuminairePublic:
    return LuminairePublic.model_validate(await _get(session, Luminaire, "luminaire", luminaire_id))


async def create_luminaire(
    *, session: AsyncSession, data: LuminaireCreate, actor: Principal
) -> LuminairePublic:
    await _check_luminaire(session, data)
    return await _write_new(
        session,
        Luminaire(**data.model_dump()),
        LuminairePublic.model_validate,
        actor=actor,
        entity="luminaire",
        what="luminaire",
    )


async def update_luminaire(
    *, session: AsyncSession, luminaire_id: int, data: LuminaireUpdate, actor: Principal
) -> LuminairePublic:
    row = await _get(session, Luminaire, "luminaire", luminaire_id)
    before = LuminairePublic.model_validate(row)
    merged = _merge(before, data)
    new = _revalidate(LuminaireCreate, {k: merged[k] for k in LuminaireCreate.model_fields})
    await _check_luminaire(session, new, exclude_id=luminaire_id)
    return await _write_update(
        session, row, new.model_dump(), before, LuminairePublic.model_validate,
        actor=actor, entity="luminaire", entity_id=luminaire_id, what="luminaire",
    )  # fmt: skip


async def delete_luminaire(*, session: AsyncSession, luminaire_id: int, actor: Principal) -> None:
    row = await _get(session, Luminaire, "luminaire", luminaire_id)
    before = LuminairePublic.model_validate(row)
    await _write_delete(
        session,
        row,
        before,
        actor=actor,
        entity="luminaire",
        entity_id=luminaire_id,
        what="luminaire",
    )


# --- groups -------------------------------------------------------------------------------


async def _member_count(session: AsyncSession, group: LuminaireGroup) -> int:
    return (
        await session.exec(
            select(func.count()).select_from(Luminaire).where(group_condition(group))
        )
    ).one()


async def group_public(session: AsyncSession, group: LuminaireGroup) -> GroupPublic:
    return GroupPublic.model_validate(
        {**group.model_dump(), "member_count": await _member_count(session, group)}
    )


async def _check_group(
    session: AsyncSession, data: GroupCreate, exclude_id: int | None = None
) -> None:
    stmt = select(LuminaireGroup).where(LuminaireGroup.name == data.name)
    if exclude_id is not None:
        stmt = stmt.where(LuminaireGroup.id != exclude_id)
    if (await session.exec(stmt)).first() is not None:
        raise Conflict(f"a group named {data.name!r} already exists", field="name")
    if (
        data.kind is GroupKind.GATEWAY
        and data.selector is not None
        and await session.get(GatewayRow, int(data.selector)) is None
    ):
        raise InvalidInput(
            "unknown gateway",
            [FieldProblem("selector", f"gateway {data.selector} does not exist")],
        )
    if data.calendar_id is not None and await session.get(CalendarRow, data.calendar_id) is None:
        raise InvalidInput(
            "unknown calendar",
            [FieldProblem("calendar_id", f"calendar {data.calendar_id} does not exist")],
        )
    if data.members:
        wanted = set(data.members)
        found = set(
            (await session.exec(select(Luminaire.id).where(col(Luminaire.id).in_(wanted)))).all()
        )
        missing = sorted(wanted - found)
        if missing:
            raise InvalidInput(
                "unknown luminaires",
                [FieldProblem("members", f"luminaire(s) {missing} do not exist")],
            )


async def _set_members(session: AsyncSession, group_id: int, members: list[int]) -> None:
    existing = (
        await session.exec(select(GroupMember).where(GroupMember.group_id == group_id))
    ).all()
    for member in existing:
        await session.delete(member)
    await session.flush()
    session.add_all(GroupMember(group_id=group_id, luminaire_id=m) for m in sorted(set(members)))


async def list_groups(
    *, session: AsyncSession, limit: int, offset: int, q: str | None = None
) -> Page[GroupPublic]:
    stmt = select(LuminaireGroup)
    if q:
        stmt = stmt.where(func.lower(LuminaireGroup.name).like(_like(q), escape="\\"))
    total = (await session.exec(select(func.count()).select_from(stmt.subquery()))).one()
    rows = (
        await session.exec(stmt.order_by(col(LuminaireGroup.id)).offset(offset).limit(limit))
    ).all()
    items = [await group_public(session, r) for r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


async def get_group(*, session: AsyncSession, group_id: int) -> GroupPublic:
    return await group_public(session, await _get(session, LuminaireGroup, "group", group_id))


async def create_group(
    *, session: AsyncSession, data: GroupCreate, actor: Principal
) -> GroupPublic:
    await _check_group(session, data)
    row = LuminaireGroup(**data.model_dump(exclude={"members"}))
    session.add(row)
    await session.flush()
    assert row.id is not None
    await _set_members(session, row.id, data.members)
    await session.flush()
    public = await group_public(session, row)
    audit.record(
        session=session,
        actor=actor,
        action="create",
        entity="group",
        entity_id=row.id,
        after=public,
        extra={"members": sorted(set(data.members))},
    )
    await _commit(session, "group")
    return public


async def update_group(
    *, session: AsyncSession, group_id: int, data: GroupUpdate, actor: Principal
) -> GroupPublic:
    row = await _get(session, LuminaireGroup, "group", group_id)
    before = await group_public(session, row)
    current_members = list(
        (
            await session.exec(
                select(GroupMember.luminaire_id).where(GroupMember.group_id == group_id)
            )
        ).all()
    )
    merged = {**before.model_dump(), "members": current_members}
    sent = data.model_dump(exclude_unset=True)
    merged.update(sent)
    if "kind" in sent and sent["kind"] != GroupKind.EXPLICIT and "members" not in sent:
        merged["members"] = []
    new = _revalidate(GroupCreate, {k: merged[k] for k in GroupCreate.model_fields})
    await _check_group(session, new, exclude_id=group_id)
    for key, value in new.model_dump(exclude={"members"}).items():
        setattr(row, key, value)
    row.updated_at = _now()
    session.add(row)
    await _set_members(session, group_id, new.members)
    await session.flush()
    after = await group_public(session, row)
    audit.record(
        session=session,
        actor=actor,
        action="update",
        entity="group",
        entity_id=group_id,
        before=before,
        after=after,
        extra={"members": sorted(set(new.members))},
    )
    await _commit(session, "group")
    return after


async def delete_group(*, session: AsyncSession, group_id: int, actor: Principal) -> None:
    row = await _get(session, LuminaireGroup, "group", group_id)
    before = await group_public(session, row)
    await _set_members(session, group_id, [])
    await session.delete(row)
    audit.record(
        session=session,
        actor=actor,
        action="delete",
        entity="group",
        entity_id=group_id,
        before=before,
    )
    await _commit(session, "group")
