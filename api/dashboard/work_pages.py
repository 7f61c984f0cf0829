"""``/work``: the maintenance crews' phone page, and their work orders.

Open faults in the crew's wards (``?ward=``, remembered in a cookie) or near them (the
page's script adds ``?lat=&lon=`` from the browser's position; the distance is computed
here), most severe and oldest first, each with its pole, street, what is wrong since when
and a ``geo:`` link. From there a crew member takes faults as a work order and moves it
on site, fixed (the tracker then verifies it), with notes and minutes. Small pages: no
map tiles, no framework, one tiny script.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import quote, unquote

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy import case
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.dashboard import queries
from api.dashboard.i18n import Translator, validation_messages
from api.dashboard.web import (
    Id,
    PageRoute,
    form_text,
    now_of,
    parse_id,
    read_form,
    redirect,
    render,
    require_role,
    require_user,
    translator,
)
from api.deps import SessionDep
from controller.access.auth import Permission
from controller.core.errors import Conflict, FieldProblem, InvalidInput
from controller.faults import work_orders
from controller.faults.rules import Severity
from controller.faults.work_order_schemas import (
    MOVES,
    WorkOrderCreate,
    WorkOrderMove,
    WorkOrderNoteCreate,
    WorkOrderPublic,
    WorkState,
)
from controller.store.tables import FaultRow, GatewayRow, Luminaire

router = APIRouter(route_class=PageRoute, include_in_schema=False)

WARD_COOKIE = "work_wards"
WARD_COOKIE_MAX_AGE_S = 180 * 24 * 3600
SHOWN = 100
"""Faults listed at most: a phone screen's worth, and a page well under 100 kB."""
NEAR_SCAN = 5000
"""Open faults whose distance is computed at most in "near me" mode."""
EARTH_RADIUS_M = 6_371_000.0
GEO_POLICY = "geolocation=(self), camera=(), microphone=()"


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine; a pole's accuracy needs no more)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


@dataclass(frozen=True, slots=True)
class FieldFault:
    """An open fault as the crew sees it."""

    id: int
    fault_type: str
    severity: str
    state: str
    since: datetime
    pole: str
    luminaire_id: int | None
    street: str | None
    ward: str | None
    latitude: float | None
    longitude: float | None
    distance_m: float | None
    order: WorkOrderPublic | None

    @property
    def geo(self) -> str | None:
        """A ``geo:`` URI (RFC 5870) to the pole: phones open it in their maps app."""
        if self.latitude is None or self.longitude is None:
            return None
        return f"geo:{self.latitude:.6f},{self.longitude:.6f}"


def _severity_rank() -> object:
    return case((col(FaultRow.severity) == Severity.CRITICAL.value, 0), else_=1)


async def field_faults(
    *,
    session: AsyncSession,
    fault_ids: Sequence[int] | None = None,
    wards: Sequence[str] = (),
    near: tuple[float, float, float] | None = None,
) -> list[FieldFault]:
    """Open faults (or the given ones) with pole, street and position: in ``wards`` (all
    when empty) or within ``near`` = (lat, lon, radius_m); critical first, then oldest."""
    stmt = select(FaultRow, Luminaire, GatewayRow).outerjoin(
        Luminaire, col(Luminaire.id) == col(FaultRow.luminaire_id)
    ).outerjoin(GatewayRow, col(GatewayRow.id) == col(FaultRow.gateway_id))  # fmt: skip
    if fault_ids is not None:
        stmt = stmt.where(col(FaultRow.id).in_(list(fault_ids)))
    else:
        stmt = stmt.where(FaultRow.state != "resolved")
        if wards and near is None:
            stmt = stmt.where(col(FaultRow.ward).in_(list(wards)))
    stmt = stmt.order_by(_severity_rank(), col(FaultRow.since), col(FaultRow.id))  # type: ignore[arg-type]
    limit = NEAR_SCAN if near is not None else SHOWN
    rows = (await session.exec(stmt.limit(limit))).all()
    orders = await work_orders.open_orders_of_faults(
        session=session, fault_ids=[f.id for f, _, _ in rows if f.id is not None]
    )
    out = []
    for fault, lum, gw in rows:
        assert fault.id is not None
        lat = lum.latitude if lum is not None else gw.latitude if gw is not None else None
        lon = lum.longitude if lum is not None else gw.longitude if gw is not None else None
        dist = None
        if near is not None and lat is not None and lon is not None:
            dist = distance_m(near[0], near[1], lat, lon)
        if near is not None and fault_ids is None and (dist is None or dist > near[2]):
            continue
        pole = lum.name if lum is not None else gw.name if gw is not None else str(fault.subject_id)
        out.append(
            FieldFault(
                id=fault.id, fault_type=fault.fault_type, severity=fault.severity,
                state=fault.state, since=fault.since, pole=pole, luminaire_id=fault.luminaire_id,
                street=fault.street, ward=fault.ward, latitude=lat, longitude=lon,
                distance_m=dist, order=orders.get(fault.id),
            )
        )  # fmt: skip
    return out[:SHOWN]


def _cookie_wards(request: Request) -> list[str]:
    raw = request.cookies.get(WARD_COOKIE, "")
    return [unquote(w) for w in raw.split(",") if w][:20]


def _bad_query(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", [FieldProblem(field, message)])


@router.get("/work")
async def work(
    request: Request,
    session: SessionDep,
    ward: Annotated[list[str] | None, Query(max_length=20)] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    radius_km: Annotated[float, Query(gt=0, le=50)] = 2.0,
) -> Response:
    user = await require_user(request, session)
    if (lat is None) != (lon is None):
        raise _bad_query("lon" if lon is None else "lat", "lat and lon go together")
    chosen = [w for w in (ward or []) if w]
    wards = chosen if ward is not None else _cookie_wards(request)
    near = (lat, lon, radius_km * 1000) if lat is not None and lon is not None else None
    faults = await field_faults(session=session, wards=wards, near=near)
    mine = await work_orders.list_work_orders(
        session=session, limit=50, offset=0, open_only=True, assignee=user.principal.name
    )
    response = render(
        request,
        "work.html",
        {
            "faults": faults,
            "wards": wards,
            "all_wards": await queries.wards(session=session),
            "near": near,
            "radius_km": radius_km,
            "mine": mine.items,
            "can_write": user.principal.role in Permission.WORK_ORDER_WRITE,
        },
        user=user,
        nav="work",
    )
    # "near me" needs the position: this page alone may ask for it (the site-wide policy,
    # api/security.py, denies it; a route's own header wins there)
    response.headers["Permissions-Policy"] = GEO_POLICY
    if ward is not None:  # remember the choice (an empty choice forgets it)
        response.set_cookie(
            WARD_COOKIE, ",".join(quote(w, safe="") for w in chosen),
            max_age=WARD_COOKIE_MAX_AGE_S, httponly=True, samesite="lax",
            secure=request.url.scheme == "https",
        )  # fmt: skip
    return response


def _problems(exc: ValidationError | InvalidInput, t: Translator) -> str:
    if isinstance(exc, InvalidInput):
        items = [p.as_dict() for p in exc.errors] or [{"field": "", "message": str(exc)}]
    else:
        items = validation_messages(exc.errors(), t)
    return "; ".join(f"{i['field']}: {i['message']}" if i["field"] else str(i["message"])
                     for i in items)  # fmt: skip


@router.post("/work/orders")
async def take(request: Request, session: SessionDep) -> Response:
    """Create a work order from the chosen faults, assigned to the one who takes it."""
    user = await require_user(request, session)
    form = await read_form(request, user)
    require_role(user, Permission.WORK_ORDER_WRITE, "handle work orders")
    t = translator(request)
    only = parse_id(form_text(form, "only"))
    picked = [v for v in form.getlist("fault_id") if isinstance(v, str)]
    ids = [i for i in ([only] if only else map(parse_id, picked)) if i is not None]
    if not ids:
        user.session.flash("error", t("work_none_selected"))
        return redirect("/work")
    me = user.principal.name
    try:
        data = WorkOrderCreate(fault_ids=ids, crew=form_text(form, "crew") or me, assignee=me)
        order = await work_orders.create_work_order(
            session=session, data=data, actor=user.principal, now=now_of(request)
        )
    except (ValidationError, InvalidInput) as exc:
        user.session.flash("error", _problems(exc, t))
        return redirect("/work")
    except Conflict as exc:
        user.session.flash("error", t("error_server_said", message=str(exc)))
        return redirect("/work")
    user.session.flash("ok", t("work_created", id=order.id))
    return redirect(f"/work/orders/{order.id}")


@router.get("/work/orders/{order_id}")
async def order_page(request: Request, session: SessionDep, order_id: Id) -> Response:
    user = await require_user(request, session)
    order = await work_orders.get_work_order(session=session, order_id=order_id)
    faults = await field_faults(session=session, fault_ids=order.fault_ids)
    return render(
        request,
        "work_order.html",
        {
            "order": order,
            "faults": faults,
            "moves": sorted(MOVES[order.state], key=list(WorkState).index),
            "can_write": user.principal.role in Permission.WORK_ORDER_WRITE,
        },
        user=user,
        nav="work",
    )


@router.post("/work/orders/{order_id}/move")
async def move(request: Request, session: SessionDep, order_id: Id) -> Response:
    user = await require_user(request, session)
    form = await read_form(request, user)
    require_role(user, Permission.WORK_ORDER_WRITE, "handle work orders")
    t = translator(request)
    back = f"/work/orders/{order_id}"
    me = user.principal.name
    try:
        data = WorkOrderMove.model_validate(
            {"to": form_text(form, "to"), "reason": form_text(form, "reason") or None}
        )
        if data.to is WorkState.ASSIGNED:  # taking it: the one who presses is the assignee
            data = data.model_copy(update={"crew": form_text(form, "crew") or me, "assignee": me})
        order = await work_orders.move_work_order(
            session=session, order_id=order_id, data=data, actor=user.principal,
            now=now_of(request),
        )  # fmt: skip
    except (ValidationError, InvalidInput) as exc:
        user.session.flash("error", _problems(exc, t))
        return redirect(back)
    except Conflict as exc:
        user.session.flash("error", t("error_server_said", message=str(exc)))
        return redirect(back)
    user.session.flash("ok", t("work_moved", id=order_id, state=t("wstate_" + order.state)))
    return redirect(back)


@router.post("/work/orders/{order_id}/note")
async def note(request: Request, session: SessionDep, order_id: Id) -> Response:
    user = await require_user(request, session)
    form = await read_form(request, user)
    require_role(user, Permission.WORK_ORDER_WRITE, "handle work orders")
    t = translator(request)
    back = f"/work/orders/{order_id}"
    try:
        data = WorkOrderNoteCreate.model_validate(
            {"text": form_text(form, "text"), "minutes": form_text(form, "minutes") or 0}
        )
        await work_orders.add_note(
            session=session, order_id=order_id, data=data, actor=user.principal,
            now=now_of(request),
        )  # fmt: skip
    except ValidationError as exc:
        user.session.flash("error", _problems(exc, t))
        return redirect(back)
    user.session.flash("ok", t("work_noted"))
    return redirect(back)
