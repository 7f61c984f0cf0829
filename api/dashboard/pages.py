"""Overview, map, luminaires and groups, with the operators' override form."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from api.dashboard import queries
from api.dashboard.charts import PALETTE, stacked_bars, telemetry_chart
from api.dashboard.energy_summary import energy_summary
from api.dashboard.geo import build_map
from api.dashboard.i18n import Translator, validation_messages
from api.dashboard.night import tonight
from api.dashboard.status import StateWord, classify, count, states_of, summarise
from api.dashboard.web import (
    Id,
    PageNumber,
    PageRoute,
    User,
    controller_of,
    current_user,
    dashboard_of,
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
from controller.core.errors import InvalidInput, NotFound
from controller.faults import data as faults
from controller.inventory import data as inventory
from controller.scheduling import data as scheduling
from controller.scheduling import overrides
from controller.scheduling.overrides import OverrideCreate, OverrideTargets
from controller.store.tables import LuminaireGroup
from schedules.program import step_number

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
TELEMETRY_HOURS = (1, 6, 24)
MEMBERS_SHOWN = 100
OVERRIDE_FIELDS = ("level", "duration_min", "reason")


def describe(detail: str | None, t: Translator) -> str:
    """A target's detail (``program:NAME#2``, ``override:7``, ``default``) in words."""
    if not detail:
        return t("none")
    if detail.startswith("override:"):
        return t("detail_override", id=detail.partition(":")[2])
    if detail.startswith("program:"):
        name, _, step = detail.partition(":")[2].rpartition("#")
        if name and step.isdigit():
            return t("detail_program", name=name, step=step_number(int(step)))
        return t("detail_program_default", name=detail.partition(":")[2])
    key = f"source_{detail}"
    return t(key) if t.has(key) else detail


def describe_step(source: str, program: str | None, step: int | None, override_id: int | None,
                  t: Translator) -> str:  # fmt: skip
    if override_id is not None:
        return t("detail_override", id=override_id)
    if program is not None:
        if step is not None:
            return t("detail_program", name=program, step=step_number(step))
        return t("detail_program_default", name=program)
    key = f"source_{source}"
    return t(key) if t.has(key) else source


async def _light_states(request: Request, session: AsyncSession) -> dict[int, StateWord] | None:
    controller = controller_of(request)
    if controller is None:
        return None
    faulty = await queries.faulty_luminaires(session=session)
    return states_of(controller, faulty)


def _helpers(t: Translator) -> dict[str, Any]:
    return {"describe": lambda d: describe(d, t), "describe_step": describe_step}


# --- overview ------------------------------------------------------------------------------


@router.get("/")
async def overview(request: Request, session: SessionDep, group: str | None = None) -> Response:
    user = await require_user(request, session)
    t = translator(request)
    settings = settings_of(request)
    now = now_of(request)
    controller = controller_of(request)
    summary = None
    if controller is not None:
        summary = summarise(controller, await queries.faulty_luminaires(session=session))
    counts = await queries.fault_counts(session=session)
    latest = await faults.list_faults(session=session, limit=5, offset=0, state="active")
    lum_names, gw_names = await queries.names(
        session=session,
        luminaire_ids=[f.luminaire_id for f in latest.items if f.luminaire_id is not None],
        gateway_ids=[f.subject_id for f in latest.items if f.subject_kind == "gateway"],
    )
    groups = await inventory.list_groups(session=session, limit=500, offset=0)
    group_id = parse_id(group)
    if group_id is not None and group_id not in {g.id for g in groups.items}:
        group_id = None
    night = await tonight(session=session, settings=settings, now=now, t=t, group_id=group_id)
    energy = await energy_summary(session=session, settings=settings, now=now)
    return render(
        request,
        "overview.html",
        {
            "summary": summary,
            "states": [s.value for s in StateWord if s is not StateWord.UNKNOWN],
            "fault_counts": counts,
            "latest": latest.items,
            "lum_names": lum_names,
            "gw_names": gw_names,
            "groups": groups.items,
            "group_id": group_id,
            "night": night,
            "energy": energy,
            **_helpers(t),
        },
        user=user,
        nav="overview",
    )


# --- map -----------------------------------------------------------------------------------


@router.get("/map")
async def map_page(request: Request, session: SessionDep, focus: str | None = None) -> Response:
    user = await require_user(request, session)
    settings = settings_of(request)
    config = dashboard_of(request).config
    points = await queries.map_points(session=session)
    geo = build_map(points, (settings.site.latitude, settings.site.longitude))
    states = await _light_states(request, session)
    wards = sorted({p.ward for p in points})
    ward_fill = {w: PALETTE[i % len(PALETTE)] for i, w in enumerate(wards)}
    shown = [s.value for s in StateWord if (s is StateWord.UNKNOWN) == (states is None)]
    return render(
        request,
        "map.html",
        {
            "geo": geo,
            "states": {
                m.id: (states.get(m.id, StateWord.UNKNOWN) if states is not None else "unknown")
                for m in geo.markers
            },
            "legend": shown,
            "ward_fill": ward_fill,
            "label_size": max(geo.view[2], geo.view[3]) / 75.0,
            "tile_url": config.tile_url or "",
            "tile_attribution": config.tile_attribution,
            "tile_max_zoom": config.tile_max_zoom,
            "poll_s": config.map_poll_s,
            "focus": parse_id(focus),
            "has_controller": states is not None,
        },
        user=user,
        nav="map",
    )


@router.get("/map/state.json")
async def map_state(request: Request, session: SessionDep) -> Response:
    """Marker states for the map's live refresh (the session cookie authenticates)."""
    if await current_user(request, session) is None:
        return JSONResponse({"error": "not_authenticated"}, status_code=401)
    states = await _light_states(request, session)
    t = translator(request)
    return JSONResponse(
        {
            "at": now_of(request).isoformat(),
            "time": t("map_updated", time=t.hm(now_of(request))),
            "states": {str(k): v.value for k, v in (states or {}).items()},
            "labels": {s.value: t(f"state_{s.value}") for s in StateWord},
        },
        headers={"Cache-Control": "no-store"},
    )


# --- luminaires ----------------------------------------------------------------------------


@router.get("/luminaires")
async def luminaire_list(
    request: Request,
    session: SessionDep,
    q: str | None = None,
    ward: str | None = None,
    page: PageNumber = 1,
) -> Response:
    user = await require_user(request, session)
    result = await inventory.list_luminaires(
        session=session, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, ward=ward or None,
        q=q or None,
    )  # fmt: skip
    states = await _light_states(request, session)
    return render(
        request,
        "luminaires.html",
        {
            "items": result.items,
            "total": result.total,
            "page": page,
            "pages": max(1, math.ceil(result.total / PAGE_SIZE)),
            "q": q or "",
            "ward": ward or "",
            "wards": await queries.wards(session=session),
            "states": states,
        },
        user=user,
        nav="luminaires",
    )


async def _luminaire_context(
    request: Request,
    session: AsyncSession,
    user: User,
    luminaire_id: int,
    hours: int,
    form: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    t = translator(request)
    settings = settings_of(request)
    now = now_of(request)
    info = await queries.luminaire_info(session=session, luminaire_id=luminaire_id)
    if info is None:
        raise NotFound("luminaire", luminaire_id)
    controller = controller_of(request)
    state = controller.luminaire_state(luminaire_id) if controller is not None else None
    fault_list = await queries.faults_of_luminaires(
        session=session, luminaire_ids=[luminaire_id], active_only=False, limit=20
    )
    faulty = any(f.state != "resolved" for f in fault_list)
    since = now - timedelta(hours=hours)
    samples = await queries.readings(
        session=session, luminaire_id=luminaire_id, since=since, until=now
    )
    rated = info.lamp.rated_power_w if info.lamp is not None else 100.0
    chart = telemetry_chart(
        samples, since, now, rated_power_w=rated, time_label=t.hm, number=lambda v: t.num(v)
    )
    night = await tonight(
        session=session, settings=settings, now=now, t=t, luminaire_id=luminaire_id
    )
    return {
        "lum": info.row,
        "lamp": info.lamp,
        "gateway": info.gateway,
        "state": state,
        "word": classify(state, faulty).value if controller is not None else "unknown",
        "has_controller": controller is not None,
        "faults": fault_list,
        "chart": chart,
        "last_samples": list(reversed(samples[-5:])),
        "hours": hours,
        "hour_choices": TELEMETRY_HOURS,
        "night": night,
        "overrides": await queries.active_overrides(
            session=session, now=now, luminaire_id=luminaire_id
        ),
        "form": form or {},
        "errors": errors or [],
        "error_by_field": {e["field"]: e["message"] for e in errors or []},
        "override_fields": OVERRIDE_FIELDS,
        "action": f"/luminaires/{luminaire_id}/override",
        **_helpers(t),
    }


@router.get("/luminaires/{luminaire_id}")
async def luminaire_page(
    request: Request,
    session: SessionDep,
    luminaire_id: Id,
    hours: Annotated[int, Query(ge=1, le=48)] = 6,
) -> Response:
    user = await require_user(request, session)
    context = await _luminaire_context(request, session, user, luminaire_id, hours)
    return render(request, "luminaire.html", context, user=user, nav="luminaires")


# --- overrides -----------------------------------------------------------------------------


async def _apply_override(
    request: Request, session: AsyncSession, user: User, targets: OverrideTargets
) -> tuple[dict[str, str], list[dict[str, Any]], int | None]:
    """Create the override from the posted form: (values, field errors, new id)."""
    form = await read_form(request, user)
    require_role(user, Permission.OVERRIDE_WRITE, "set overrides")
    t = translator(request)
    values = {name: form_text(form, name) for name in OVERRIDE_FIELDS}
    errors = [
        {"field": name, "message": t("field_required")} for name in OVERRIDE_FIELDS
        if not values[name]
    ]  # fmt: skip
    stand_in = {"level": "0", "duration_min": "1", "reason": "-"}  # for the missing ones
    try:
        data = OverrideCreate.model_validate(
            {"targets": targets, **{k: values[k] or stand_in[k] for k in OVERRIDE_FIELDS}}
        )
    except ValidationError as exc:
        errors += validation_messages(exc.errors(), t)
    if errors:
        return values, errors, None
    try:
        created = await overrides.create_override(
            session=session, data=data, actor=user.principal, now=now_of(request)
        )
    except InvalidInput as exc:
        return values, [p.as_dict() for p in exc.errors], None
    user.session.flash(
        "ok", t("override_done", level=created.level, minutes=data.duration_min, id=created.id)
    )
    return values, [], created.id


@router.post("/luminaires/{luminaire_id}/override")
async def luminaire_override(request: Request, session: SessionDep, luminaire_id: Id) -> Response:
    user = await require_user(request, session)
    if await queries.luminaire_info(session=session, luminaire_id=luminaire_id) is None:
        raise NotFound("luminaire", luminaire_id)
    values, errors, created = await _apply_override(
        request, session, user, OverrideTargets(luminaires=[luminaire_id])
    )
    if created is not None:
        return redirect(f"/luminaires/{luminaire_id}")
    context = await _luminaire_context(request, session, user, luminaire_id, 6, values, errors)
    return render(request, "luminaire.html", context, user=user, nav="luminaires", status=422)


@router.post("/overrides/{override_id}/end")
async def end_override(request: Request, session: SessionDep, override_id: Id) -> Response:
    user = await require_user(request, session)
    form = await read_form(request, user)
    require_role(user, Permission.OVERRIDE_WRITE, "end overrides")
    await overrides.end_override(
        session=session, override_id=override_id, actor=user.principal, now=now_of(request)
    )
    user.session.flash("ok", translator(request)("override_ended", id=override_id))
    return redirect(safe_next(form_text(form, "next")))


# --- groups --------------------------------------------------------------------------------


@router.get("/groups")
async def group_list(request: Request, session: SessionDep) -> Response:
    user = await require_user(request, session)
    groups = await inventory.list_groups(session=session, limit=1000, offset=0)
    calendars = await scheduling.calendar_names(session=session)
    return render(
        request,
        "groups.html",
        {"groups": groups.items, "calendars": calendars},
        user=user,
        nav="groups",
    )


async def _group_context(
    request: Request,
    session: AsyncSession,
    user: User,
    group_id: int,
    form: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    t = translator(request)
    settings = settings_of(request)
    now = now_of(request)
    group = await inventory.get_group(session=session, group_id=group_id)
    row = await session.get(LuminaireGroup, group_id)
    assert row is not None
    ids = await queries.member_ids(session=session, group=row)
    states = await _light_states(request, session)
    counts = count(states.get(i, StateWord.UNKNOWN) for i in ids) if states is not None else None
    members = await inventory.list_luminaires(
        session=session, limit=MEMBERS_SHOWN, offset=0, group_id=group_id
    )
    controller = controller_of(request)
    member_states = {
        m.id: controller.luminaire_state(m.id) if controller is not None else None
        for m in members.items
    }
    hour_end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    hour_start = hour_end - timedelta(hours=24)
    energy = await queries.group_hourly_energy(
        session=session, group=row, since=hour_start, until=hour_end
    )
    hours = [hour_start + timedelta(hours=i) for i in range(24)]
    labels = {h.isoformat(): h for h in hours}
    chart = stacked_bars(
        [h.isoformat() for h in hours],
        ["kWh"],
        {(h.isoformat(), "kWh"): energy.get(h, 0.0) / 1000.0 for h in hours},
        unit="kWh",
        number=lambda v: t.num(v, 2),
        category_label=lambda c: t.hm(labels[c]),
        colours={"kWh": PALETTE[0]},
    )
    night = await tonight(session=session, settings=settings, now=now, t=t, group_id=group_id)
    fault_list = await queries.faults_of_luminaires(
        session=session, luminaire_ids=ids, active_only=True
    )
    calendars = await scheduling.calendar_names(session=session)
    return {
        "group": group,
        "calendar": calendars.get(group.calendar_id) if group.calendar_id else None,
        "counts": counts,
        "state_words": [s.value for s in StateWord if s is not StateWord.UNKNOWN],
        "members": members.items,
        "member_total": members.total,
        "member_states": member_states,
        "member_words": states,
        "energy_chart": chart,
        "energy_rows": [(h, energy.get(h, 0.0) / 1000.0) for h in hours],
        "night": night,
        "faults": fault_list,
        "overrides": await queries.active_overrides(session=session, now=now, group_id=group_id),
        "form": form or {},
        "errors": errors or [],
        "error_by_field": {e["field"]: e["message"] for e in errors or []},
        "override_fields": OVERRIDE_FIELDS,
        "action": f"/groups/{group_id}/override",
        **_helpers(t),
    }


@router.get("/groups/{group_id}")
async def group_page(request: Request, session: SessionDep, group_id: Id) -> Response:
    user = await require_user(request, session)
    context = await _group_context(request, session, user, group_id)
    return render(request, "group.html", context, user=user, nav="groups")


@router.post("/groups/{group_id}/override")
async def group_override(request: Request, session: SessionDep, group_id: Id) -> Response:
    user = await require_user(request, session)
    await inventory.get_group(session=session, group_id=group_id)  # 404 before anything
    values, errors, created = await _apply_override(
        request, session, user, OverrideTargets(groups=[group_id])
    )
    if created is not None:
        return redirect(f"/groups/{group_id}")
    context = await _group_context(request, session, user, group_id, values, errors)
    return render(request, "group.html", context, user=user, nav="groups", status=422)
