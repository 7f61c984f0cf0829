"""Night programs: list, create, edit, copy, delete, with a step editor and a live curve.

The editor posts its unsaved form to ``/programs/preview`` as the operator types; the
answer (JSON) is the night's curve for the chosen date, the API's field errors
(``steps.N.level``) and the year-long warnings, all computed by the functions the API
uses: :func:`controller.scheduling.schemas.to_program` (the 422),
:func:`controller.scheduling.data.program_warnings` and :func:`schedules.decision.timeline`.
Without JavaScript the same buttons (add, remove, move a step) post the form and the page
comes back with the change made, not yet saved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.dashboard.charts import Frame, StepChart, step_chart
from api.dashboard.i18n import Translator, validation_messages
from api.dashboard.night import chart_window
from api.dashboard.web import (
    Id,
    PageRoute,
    User,
    current_user,
    form_text,
    now_of,
    read_form,
    redirect,
    render,
    require_role,
    require_user,
    settings_of,
    translator,
)
from api.deps import SessionDep
from controller.access.auth import Permission
from controller.config.settings import Settings
from controller.core.errors import InvalidInput
from controller.scheduling import data as scheduling
from controller.scheduling.schemas import ProgramCreate, ProgramPublic, ProgramUpdate, to_program
from schedules.builtin import PROGRAM_TEMPLATES
from schedules.calendar import Calendar
from schedules.decision import timeline
from schedules.holiday import holidays_on
from schedules.program import Program, step_number
from schedules.program import tonight as tonight_of
from schedules.sun import SunEvent, compute_sun_events

router = APIRouter(route_class=PageRoute, include_in_schema=False)

STEP_FIELDS = ("anchor", "offset_min", "level", "fade_s")
_STEP_NAME = re.compile(r"steps\.(\d{1,3})\.(anchor|offset_min|level|fade_s)")
MAX_STEPS = 50
PREVIEW_REF = "preview"
ANCHORS = tuple(e.value for e in SunEvent)
NIGHT_RANGE = (date(1900, 1, 1), date(9998, 12, 30))
"""Nights a date field may choose (others: tonight); the sun tables overflow past 9999."""
CURVE_FRAME = Frame(height=200.0, bottom=170.0)
"""The frame :func:`api.dashboard.charts.step_chart` draws in (for the empty chart)."""


@dataclass
class Draft:
    """The editor's form as typed (text), before validation."""

    name: str = ""
    description: str = ""
    default_level: str = "0"
    steps: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, program: Program | ProgramPublic, description: str | None = None) -> Draft:
        steps = [
            {
                "anchor": s.anchor,
                "offset_min": str(s.offset_min),
                "level": str(s.level),
                "fade_s": "" if s.fade_s is None else f"{s.fade_s:g}",
            }
            for s in program.steps
        ]
        return cls(program.name, description or "", str(program.default_level), steps)

    def payload(self, *, name: str | None = None) -> dict[str, Any]:
        """The API's ``ProgramCreate`` body: empty offsets are 0, empty fades absent."""
        steps = []
        for row in self.steps:
            step: dict[str, Any] = {"anchor": row["anchor"], "level": row["level"]}
            if row["offset_min"]:
                step["offset_min"] = row["offset_min"]
            if row["fade_s"]:
                step["fade_s"] = row["fade_s"]
            steps.append(step)
        return {
            "name": self.name if name is None else name,
            "description": self.description or None,
            "default_level": self.default_level or "0",
            "steps": steps,
        }


def _row(anchor: str, level: str) -> dict[str, str]:
    return {"anchor": anchor, "offset_min": "0", "level": level, "fade_s": ""}


def read_draft(form: FormData) -> Draft:
    """The draft from the editor's fields (``steps.N.anchor`` ..., in N order)."""
    rows: dict[int, dict[str, str]] = {}
    for key in form:
        found = _STEP_NAME.fullmatch(key)
        if found is not None and int(found[1]) < MAX_STEPS:
            rows.setdefault(int(found[1]), dict.fromkeys(STEP_FIELDS, ""))[found[2]] = form_text(
                form, key
            )
    return Draft(
        name=form_text(form, "name"),
        description=form_text(form, "description"),
        default_level=form_text(form, "default_level"),
        steps=[rows[i] for i in sorted(rows)],
    )


def apply_edit(draft: Draft, edit: str) -> bool:
    """The no-JavaScript step buttons: ``add``, ``remove:N``, ``up:N``, ``down:N``."""
    action, _, index_text = edit.partition(":")
    if action == "add":
        if len(draft.steps) < MAX_STEPS:
            draft.steps.append(_row("", ""))
        return True
    if not index_text.isdigit() or int(index_text) >= len(draft.steps):
        return False
    i = int(index_text)
    if action == "remove":
        del draft.steps[i]
    elif action == "up" and i > 0:
        draft.steps[i - 1], draft.steps[i] = draft.steps[i], draft.steps[i - 1]
    elif action == "down" and i + 1 < len(draft.steps):
        draft.steps[i + 1], draft.steps[i] = draft.steps[i], draft.steps[i + 1]
    return action in ("remove", "up", "down")


def check_draft(draft: Draft, t: Translator, *, name: str | None = None) -> tuple[
    ProgramCreate | None, Program | None, list[dict[str, Any]]
]:  # fmt: skip
    """Validate as the API does: (body, pure program, errors named ``steps.N.field``)."""
    try:
        body = ProgramCreate.model_validate(draft.payload(name=name))
    except ValidationError as exc:
        return None, None, validation_messages(exc.errors(), t)
    try:
        pure = to_program(body.name, body.steps, body.default_level)
    except InvalidInput as exc:
        return body, None, [_in_words(p.as_dict(), t) for p in exc.errors]
    return body, pure, []


def _in_words(problem: dict[str, Any], t: Translator) -> dict[str, Any]:
    """A step field's problem in the user's language (the API's sentence counts from 0)."""
    leaf = str(problem["field"]).rpartition(".")[2]
    key = f"step_error_{leaf}"
    if str(problem["field"]).startswith("steps.") and t.has(key):
        return {**problem, "message": t(key)}
    return problem


@dataclass(frozen=True, slots=True)
class Preview:
    night: date
    chart: StepChart
    changes: list[dict[str, Any]]
    holidays: list[str]


def preview(program: Program, settings: Settings, night: date, t: Translator) -> Preview:
    """The program's night ``night`` through :func:`schedules.decision.timeline`, as the
    controller would run it from a calendar whose default it is."""
    site = settings.site.to_site()
    changes = timeline(
        night,
        site=site,
        calendar=Calendar(rules=(), default_program=PREVIEW_REF),
        programs={PREVIEW_REF: program},
        default_level=settings.schedule.default_level,
    )
    start, end = chart_window(site, night)
    evening = compute_sun_events(site, night)
    morning = compute_sun_events(site, night + timedelta(days=1))
    chart = step_chart(
        [(c.at, c.level) for c in changes],
        start,
        end,
        time_label=t.hm,
        markers={t("sunset"): evening.sunset, t("sunrise"): morning.sunrise},
    )
    rows = [
        {
            "time": t.hm(c.at),
            "level": c.level,
            "step": None if c.decision.step_index is None else step_number(c.decision.step_index),
        }
        for c in changes
    ]
    names = [h.name for h in holidays_on(night)]
    return Preview(night, chart, rows, names)


def _night(request: Request, text: str) -> date:
    settings = settings_of(request)
    try:
        chosen = date.fromisoformat(text)
    except ValueError:
        chosen = None
    if chosen is None or not NIGHT_RANGE[0] <= chosen <= NIGHT_RANGE[1]:
        return tonight_of(settings.site.to_site(), now_of(request))
    return chosen


def _year(request: Request) -> int:
    return now_of(request).astimezone(settings_of(request).site.tz).year


def _warnings(program: Program, request: Request) -> list[dict[str, Any]]:
    site = settings_of(request).site.to_site()
    return [w.model_dump() for w in scheduling.program_warnings(program, site, _year(request))]


# --- pages ---------------------------------------------------------------------------------


@router.get("/programs")
async def program_list(request: Request, session: SessionDep) -> Response:
    user = await require_user(request, session)
    programs = await scheduling.list_programs(session=session, limit=500, offset=0)
    return render(
        request,
        "programs.html",
        {"programs": programs.items, "templates": list(PROGRAM_TEMPLATES)},
        user=user,
        nav="programs",
    )


def _editor(
    request: Request,
    user: User,
    draft: Draft,
    *,
    program_id: int | None,
    night: date,
    errors: list[dict[str, Any]] | None = None,
    status: int = 200,
    unsaved: bool = False,
) -> Response:
    t = translator(request)
    settings = settings_of(request)
    _, pure, found = check_draft(draft, t, name=draft.name or "-")
    shown = preview(pure, settings, night, t) if pure is not None else None
    all_errors = errors if errors is not None else found
    return render(
        request,
        "program.html",
        {
            "draft": draft,
            "program_id": program_id,
            "action": f"/programs/{program_id}" if program_id else "/programs/new",
            "night": night,
            "preview": shown,
            "errors": all_errors,
            "error_by_field": {e["field"]: e["message"] for e in all_errors},
            "warnings": _warnings(pure, request) if pure is not None else [],
            "anchors": ANCHORS,
            "view_box": CURVE_FRAME.view_box,
            "frame_top": CURVE_FRAME.top,
            "frame_bottom": CURVE_FRAME.bottom,
            "can_write": user.principal.role in Permission.SCHEDULE_WRITE,
            "unsaved": unsaved,
            "step_number": step_number,
        },
        user=user,
        nav="programs",
        status=status,
    )


@router.get("/programs/new")
async def program_new(request: Request, session: SessionDep, template: str = "") -> Response:
    user = await require_user(request, session)
    chosen = PROGRAM_TEMPLATES.get(template)
    if chosen is not None:
        draft = Draft.of(chosen)
    else:
        draft = Draft(steps=[_row("sunset", "100"), _row("sunrise", "0")])
    night = _night(request, request.query_params.get("date", ""))
    return _editor(request, user, draft, program_id=None, night=night)


@router.get("/programs/{program_id}")
async def program_page(request: Request, session: SessionDep, program_id: Id) -> Response:
    user = await require_user(request, session)
    found = await scheduling.get_program(
        session=session,
        program_id=program_id,
        site=settings_of(request).site.to_site(),
        year=_year(request),
    )
    night = _night(request, request.query_params.get("date", ""))
    draft = Draft.of(found, found.description)
    return _editor(request, user, draft, program_id=program_id, night=night)


async def _save(request: Request, session: SessionDep, program_id: int | None) -> Response:
    user = await require_user(request, session)
    form = await read_form(request, user)
    draft = read_draft(form)
    night = _night(request, form_text(form, "night"))
    edit = form_text(form, "edit")
    if edit and apply_edit(draft, edit):
        return _editor(request, user, draft, program_id=program_id, night=night, unsaved=True)
    require_role(user, Permission.SCHEDULE_WRITE, "change schedules")
    t = translator(request)
    body, _, errors = check_draft(draft, t)
    if body is None or errors:
        return _editor(
            request, user, draft, program_id=program_id, night=night, errors=errors, status=422
        )
    site = settings_of(request).site.to_site()
    try:
        if program_id is None:
            saved = await scheduling.create_program(
                session=session, data=body, actor=user.principal, site=site, year=_year(request)
            )
        else:
            saved = await scheduling.update_program(
                session=session, program_id=program_id, actor=user.principal, site=site,
                year=_year(request), data=ProgramUpdate.model_validate(body.model_dump()),
            )  # fmt: skip
    except InvalidInput as exc:
        errors = [p.as_dict() for p in exc.errors]
        return _editor(
            request, user, draft, program_id=program_id, night=night, errors=errors, status=422
        )
    user.session.flash("ok", t("program_saved", name=saved.name))
    return redirect(f"/programs/{saved.id}?date={night.isoformat()}")


@router.post("/programs/new")
async def program_create(request: Request, session: SessionDep) -> Response:
    return await _save(request, session, None)


@router.post("/programs/preview")
async def program_preview(request: Request, session: SessionDep) -> Response:
    """The unsaved editor form evaluated for its date: curve, errors, warnings (JSON)."""
    user = await current_user(request, session)
    if user is None:
        return JSONResponse({"error": "not_authenticated"}, status_code=401)
    form = await read_form(request, user)
    t = translator(request)
    draft = read_draft(form)
    night = _night(request, form_text(form, "night"))
    _, pure, errors = check_draft(draft, t, name=draft.name or "-")
    answer: dict[str, Any] = {"night": night.isoformat(), "night_label": t.day(night),
                              "errors": errors, "warnings": [], "curve": None}  # fmt: skip
    if pure is not None:
        shown = preview(pure, settings_of(request), night, t)
        answer["warnings"] = _warnings(pure, request)
        answer["curve"] = {
            "points": shown.chart.points,
            "area": shown.chart.area,
            "x_ticks": [{"pos": k.pos, "label": k.label} for k in shown.chart.x_ticks],
            "markers": [{"x": m.x, "label": m.label} for m in shown.chart.markers],
            "changes": shown.changes,
            "holidays": shown.holidays,
        }
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


@router.post("/programs/{program_id}")
async def program_update(request: Request, session: SessionDep, program_id: Id) -> Response:
    return await _save(request, session, program_id)


@router.post("/programs/{program_id}/copy")
async def program_copy(request: Request, session: SessionDep, program_id: Id) -> Response:
    user = await require_user(request, session)
    await read_form(request, user)
    require_role(user, Permission.SCHEDULE_WRITE, "change schedules")
    t = translator(request)
    site = settings_of(request).site.to_site()
    original = await scheduling.get_program(
        session=session, program_id=program_id, site=site, year=_year(request)
    )
    taken = {p.name for p in (await scheduling.list_programs(session=session, limit=10_000,
                                                              offset=0)).items}  # fmt: skip
    name = t("program_copy_name", name=original.name)
    n = 2
    while name in taken:
        name, n = t("program_copy_name_n", name=original.name, n=n), n + 1
    copied = await scheduling.create_program(
        session=session,
        data=ProgramCreate(name=name, description=original.description, steps=original.steps,
                           default_level=original.default_level),
        actor=user.principal, site=site, year=_year(request),
    )  # fmt: skip
    user.session.flash("ok", t("program_copied", name=copied.name))
    return redirect(f"/programs/{copied.id}")


@router.post("/programs/{program_id}/delete")
async def program_delete(request: Request, session: SessionDep, program_id: Id) -> Response:
    user = await require_user(request, session)
    await read_form(request, user)
    require_role(user, Permission.SCHEDULE_WRITE, "change schedules")
    await scheduling.delete_program(session=session, program_id=program_id, actor=user.principal)
    user.session.flash("ok", translator(request)("program_deleted", id=program_id))
    return redirect("/programs")
