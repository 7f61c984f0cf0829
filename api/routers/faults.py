"""Faults: what broke, where, since when; acknowledge and resolve (maintenance role)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from api.deps import IdPath, IdQuery, PageDep, PrincipalDep, SessionDep, SettingsDep, require
from controller.access.auth import Permission, Principal
from controller.core.errors import FieldProblem, InvalidInput
from controller.core.page import Page
from controller.faults import data as faults
from controller.faults.data import AlertContext, FaultDetail, FaultNote, FaultPublic, FaultStats

router = APIRouter(prefix="/faults", tags=["faults"])
Crew = Annotated[Principal, Depends(require(Permission.FAULT_WRITE, "handle faults"))]


def _now(request: Request) -> datetime:
    clock = getattr(request.app.state, "clock", None)
    return clock.now() if clock is not None else datetime.now(UTC)


@router.get("", summary="List faults (newest first); state=open|acknowledged|resolved|active")
async def list_faults(
    session: SessionDep,
    _: PrincipalDep,
    page: PageDep,
    state: Literal["open", "acknowledged", "resolved", "active"] | None = None,
    ward: str | None = None,
    fault_type: Annotated[str | None, Query(alias="type")] = None,
    severity: Literal["warning", "critical"] | None = None,
    since: datetime | None = None,
    luminaire_id: IdQuery = None,
    gateway_id: IdQuery = None,
) -> Page[FaultPublic]:
    return await faults.list_faults(
        session=session, limit=page.limit, offset=page.offset, state=state, ward=ward,
        fault_type=fault_type, severity=severity, since=since, luminaire_id=luminaire_id,
        gateway_id=gateway_id,
    )  # fmt: skip


@router.get("/stats", summary="Per ward: faulty and critical ratios now, MTTA and MTTR")
async def fault_stats(
    request: Request,
    session: SessionDep,
    _: PrincipalDep,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
) -> FaultStats:
    to = end or _now(request)
    frm = start or to - timedelta(days=30)
    if frm >= to:
        raise InvalidInput("bad period", [FieldProblem("from (query)", "must be before 'to'")])
    return await faults.fault_stats(session=session, start=frm, end=to)


@router.get("/{fault_id}", summary="A fault with its full history")
async def get_fault(fault_id: IdPath, session: SessionDep, _: PrincipalDep) -> FaultDetail:
    return await faults.get_fault(session=session, fault_id=fault_id)


async def _act(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    who: Principal,
    fault_id: IdPath,
    body: FaultNote | None,
    action: Literal["ack", "resolve"],
) -> FaultDetail:
    ctx = AlertContext(settings.alerts, settings.mqtt.prefix, settings.site.tz)
    detail, transition = await faults.act_by_hand(
        session=session, fault_id=fault_id, action=action,
        note=body.note if body is not None else None, actor=who, now=_now(request), ctx=ctx,
    )  # fmt: skip
    controller = getattr(request.app.state, "controller", None)
    if controller is not None:
        controller.fault_acted_on(transition)
    return detail


@router.post("/{fault_id}/ack", summary="Acknowledge a fault (someone is on it)")
async def acknowledge(
    fault_id: IdPath,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    who: Crew,
    body: FaultNote | None = None,
) -> FaultDetail:
    return await _act(request, session, settings, who, fault_id, body, "ack")


@router.post("/{fault_id}/resolve", summary="Resolve a fault by hand (repaired)")
async def resolve(
    fault_id: IdPath,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    who: Crew,
    body: FaultNote | None = None,
) -> FaultDetail:
    return await _act(request, session, settings, who, fault_id, body, "resolve")
