"""The faults page: filter, acknowledge and resolve (maintenance crews), with a note."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from api.dashboard import queries
from api.dashboard.web import (
    Id,
    PageNumber,
    PageRoute,
    form_text,
    now_of,
    parse_id,
    read_form,
    redirect,
    render,
    require_role,
    require_user,
    safe_next,
    settings_of,
    translator,
)
from api.deps import SessionDep
from controller.access.auth import Permission
from controller.core.errors import Conflict
from controller.faults import data as faults
from controller.faults.data import AlertContext, FaultNote
from controller.faults.rules import FaultType

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
STATES = ("active", "open", "acknowledged", "resolved", "all")
SEVERITIES = ("warning", "critical")


@router.get("/faults")
async def fault_list(
    request: Request,
    session: SessionDep,
    state: Literal["active", "open", "acknowledged", "resolved", "all"] = "active",
    ward: str = "",
    fault_type: Annotated[str, Query(alias="type")] = "",
    severity: Literal["", "warning", "critical"] = "",
    luminaire: str = "",
    page: PageNumber = 1,
) -> Response:
    user = await require_user(request, session)
    result = await faults.list_faults(
        session=session,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        state=None if state == "all" else state,
        ward=ward or None,
        fault_type=fault_type or None,
        severity=severity or None,
        luminaire_id=parse_id(luminaire),
    )
    lum_names, gw_names = await queries.names(
        session=session,
        luminaire_ids=[f.luminaire_id for f in result.items if f.luminaire_id is not None],
        gateway_ids=[f.subject_id for f in result.items if f.subject_kind == "gateway"],
    )
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render(
        request,
        "faults.html",
        {
            "items": result.items,
            "total": result.total,
            "page": page,
            "pages": max(1, math.ceil(result.total / PAGE_SIZE)),
            "filters": {
                "state": state,
                "ward": ward,
                "type": fault_type,
                "severity": severity,
                "luminaire": luminaire,
            },
            "states": STATES,
            "severities": SEVERITIES,
            "wards": await queries.wards(session=session),
            "types": [f.value for f in FaultType],
            "lum_names": lum_names,
            "gw_names": gw_names,
            "here": here,
        },
        user=user,
        nav="faults",
    )


async def _act(request: Request, session: SessionDep, fault_id: int, action: str) -> Response:
    user = await require_user(request, session)
    form = await read_form(request, user)
    require_role(user, Permission.FAULT_WRITE, "handle faults")
    t = translator(request)
    back = safe_next(form_text(form, "next"), "/faults")
    try:
        note = FaultNote.model_validate({"note": form_text(form, "note") or None})
    except ValidationError as exc:
        message = "; ".join(str(e.get("msg", "")) for e in exc.errors())
        user.session.flash("error", f"{t('note')}: {message}")
        return redirect(back)
    settings = settings_of(request)
    ctx = AlertContext(settings.alerts, settings.mqtt.prefix, settings.site.tz)
    try:
        _, transition = await faults.act_by_hand(
            session=session, fault_id=fault_id, action="ack" if action == "ack" else "resolve",
            note=note.note, actor=user.principal, now=now_of(request), ctx=ctx,
        )  # fmt: skip
    except Conflict as exc:
        user.session.flash("error", t("error_server_said", message=str(exc)))
        return redirect(back)
    controller = getattr(request.app.state, "controller", None)
    if controller is not None:
        controller.fault_acted_on(transition)
    user.session.flash("ok", t("fault_acked" if action == "ack" else "fault_resolved", id=fault_id))
    return redirect(back)


@router.post("/faults/{fault_id}/ack")
async def acknowledge(request: Request, session: SessionDep, fault_id: Id) -> Response:
    return await _act(request, session, fault_id, "ack")


@router.post("/faults/{fault_id}/resolve")
async def resolve(request: Request, session: SessionDep, fault_id: Id) -> Response:
    return await _act(request, session, fault_id, "resolve")
