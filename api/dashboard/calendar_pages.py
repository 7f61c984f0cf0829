"""Calendars: rules in priority order, their assignment to groups, and "what runs on date D".

Rules are edited as one form (the first matching rule wins, so order is priority); the
up/down/remove/add buttons post the form and the page comes back with the change made,
not yet saved. Saving goes through :func:`controller.scheduling.data.update_calendar`,
whose 422 names the rule (``rules.N.date``). The preview is
:func:`controller.scheduling.timeline.subject_timeline`, the one timeline function.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import FormData

from api.dashboard.charts import step_chart
from api.dashboard.i18n import validation_messages
from api.dashboard.night import chart_window
from api.dashboard.program_pages import NIGHT_RANGE
from api.dashboard.web import (
    Id,
    PageRoute,
    User,
    form_text,
    now_of,
    parse_id,
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
from controller.core.errors import FieldProblem, InvalidInput, NotFound
from controller.inventory import data as inventory
from controller.inventory.schemas import GroupUpdate
from controller.scheduling import data as scheduling
from controller.scheduling.schemas import CalendarCreate, CalendarUpdate, RuleKind
from controller.scheduling.timeline import Subject, subject_timeline
from schedules.calendar import Weekday
from schedules.holiday import HolidayKey, holidays_on
from schedules.program import step_number
from schedules.program import tonight as tonight_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)

RULE_FIELDS = ("kind", "program_id", "date", "start", "end", "holiday", "valid_from",
               "valid_until")  # fmt: skip
_RULE_NAME = re.compile(r"rules\.(\d{1,3})\.(\w+)")
MAX_RULES = 100


def read_rules(form: FormData) -> list[dict[str, Any]]:
    """The rule rows as typed: text fields, ``days`` a list, ``include_observed`` a flag."""
    rows: dict[int, dict[str, Any]] = {}
    for key in form:
        found = _RULE_NAME.fullmatch(key)
        if found is None or int(found[1]) >= MAX_RULES:
            continue
        row = rows.setdefault(
            int(found[1]), {**dict.fromkeys(RULE_FIELDS, ""), "days": [], "include_observed": False}
        )
        if found[2] == "days":
            row["days"] = [v for v in form.getlist(key) if isinstance(v, str)]
        elif found[2] == "include_observed":
            row["include_observed"] = True
        elif found[2] in RULE_FIELDS:
            row[found[2]] = form_text(form, key)
    return [rows[i] for i in sorted(rows)]


def rule_payload(row: dict[str, Any]) -> dict[str, Any]:
    """One row as the API's ``RuleIn`` (empty fields left out)."""
    out: dict[str, Any] = {k: row[k] for k in RULE_FIELDS if row.get(k)}
    if row.get("days"):
        out["days"] = row["days"]
    out["include_observed"] = bool(row.get("include_observed"))
    return out


def rule_row(rule: dict[str, Any]) -> dict[str, Any]:
    """A stored rule as a form row."""
    row: dict[str, Any] = {k: "" if rule.get(k) is None else str(rule[k]) for k in RULE_FIELDS}
    row["days"] = list(rule.get("days") or [])
    row["include_observed"] = bool(rule.get("include_observed"))
    return row


def apply_edit(rows: list[dict[str, Any]], edit: str) -> bool:
    action, _, index_text = edit.partition(":")
    if action == "add":
        if len(rows) < MAX_RULES:
            rows.insert(0, rule_row({"kind": RuleKind.HOLIDAY.value}))
        return True
    if not index_text.isdigit() or int(index_text) >= len(rows):
        return False
    i = int(index_text)
    if action == "remove":
        del rows[i]
    elif action == "up" and i > 0:
        rows[i - 1], rows[i] = rows[i], rows[i - 1]
    elif action == "down" and i + 1 < len(rows):
        rows[i + 1], rows[i] = rows[i], rows[i + 1]
    return action in ("remove", "up", "down")


async def _preview(
    request: Request, session: AsyncSession, subject_text: str, night: date
) -> dict[str, Any] | None:
    """What runs on ``night`` for ``group:N`` or ``luminaire:N`` (None: nothing chosen)."""
    kind, _, id_text = subject_text.partition(":")
    subject_id = parse_id(id_text)
    if subject_id is None or kind not in ("group", "luminaire"):
        return None
    subject = Subject.group(subject_id) if kind == "group" else Subject.luminaire(subject_id)
    settings = settings_of(request)
    t = translator(request)
    found = await subject_timeline(session=session, settings=settings, subject=subject,
                                   night=night)  # fmt: skip
    start, end = chart_window(settings.site.to_site(), night)
    chart = step_chart([(c.at, c.level) for c in found.changes], start, end, time_label=t.hm)
    programs = sorted({c.decision.program for c in found.changes if c.decision.program})
    rules = sorted({c.decision.rule_index for c in found.changes
                    if c.decision.rule_index is not None})  # fmt: skip
    return {
        "calendar": found.calendar,
        "programs": programs,
        "rules": [r + 1 for r in rules],
        "chart": chart,
        "changes": [
            {
                "at": c.at,
                "level": c.level,
                "program": c.decision.program,
                "step": None
                if c.decision.step_index is None
                else step_number(c.decision.step_index),
            }
            for c in found.changes
        ],
    }


@router.get("/calendars")
async def calendar_list(request: Request, session: SessionDep) -> Response:
    user = await require_user(request, session)
    calendars = await scheduling.list_calendars(session=session, limit=500, offset=0)
    groups = await inventory.list_groups(session=session, limit=1000, offset=0)
    return render(
        request,
        "calendars.html",
        {
            "calendars": calendars.items,
            "groups_of": {
                c.id: [g for g in groups.items if g.calendar_id == c.id] for c in calendars.items
            },
            "can_write": user.principal.role in Permission.SCHEDULE_WRITE,
        },
        user=user,
        nav="calendars",
    )


async def _editor(
    request: Request,
    session: AsyncSession,
    user: User,
    *,
    calendar_id: int | None,
    name: str,
    description: str,
    default_program_id: str,
    rows: list[dict[str, Any]],
    errors: list[dict[str, Any]] | None = None,
    unsaved: bool = False,
    status: int = 200,
) -> Response:
    programs = await scheduling.list_programs(session=session, limit=1000, offset=0)
    groups = await inventory.list_groups(session=session, limit=1000, offset=0)
    settings = settings_of(request)
    night_text = request.query_params.get("date", "")
    try:
        night = date.fromisoformat(night_text)
    except ValueError:
        night = NIGHT_RANGE[0] - timedelta(days=1)
    if not NIGHT_RANGE[0] <= night <= NIGHT_RANGE[1]:
        night = tonight_of(settings.site.to_site(), now_of(request))
    subject = request.query_params.get("subject", "")
    if not subject and calendar_id is not None:
        first = next((g for g in groups.items if g.calendar_id == calendar_id), None)
        subject = f"group:{first.id}" if first is not None else ""
    shown, preview_error = None, ""
    if calendar_id:
        try:
            shown = await _preview(request, session, subject, night)
        except (NotFound, InvalidInput) as exc:
            preview_error = str(exc)
    return render(
        request,
        "calendar.html",
        {
            "calendar_id": calendar_id,
            "action": f"/calendars/{calendar_id}" if calendar_id else "/calendars/new",
            "name": name,
            "description": description,
            "default_program_id": default_program_id,
            "rows": rows,
            "programs": programs.items,
            "groups": groups.items,
            "kinds": [k.value for k in RuleKind],
            "weekdays": [d.value for d in Weekday],
            "holiday_keys": [k.value for k in HolidayKey if k is not HolidayKey.OTHER],
            "errors": errors or [],
            "error_by_field": {e["field"]: e["message"] for e in errors or []},
            "unsaved": unsaved,
            "can_write": user.principal.role in Permission.SCHEDULE_WRITE,
            "night": night,
            "night_holidays": [h.name for h in holidays_on(night)],
            "subject": subject,
            "preview": shown,
            "preview_error": preview_error,
        },
        user=user,
        nav="calendars",
        status=status,
    )


@router.get("/calendars/new")
async def calendar_new(request: Request, session: SessionDep) -> Response:
    user = await require_user(request, session)
    return await _editor(request, session, user, calendar_id=None, name="", description="",
                         default_program_id="", rows=[])  # fmt: skip


@router.get("/calendars/{calendar_id}")
async def calendar_page(request: Request, session: SessionDep, calendar_id: Id) -> Response:
    user = await require_user(request, session)
    found = await scheduling.get_calendar(session=session, calendar_id=calendar_id)
    return await _editor(
        request, session, user, calendar_id=calendar_id, name=found.name,
        description=found.description or "",
        default_program_id=str(found.default_program_id or ""),
        rows=[rule_row(r.model_dump(mode="json")) for r in found.rules],
    )  # fmt: skip


async def _save(request: Request, session: SessionDep, calendar_id: int | None) -> Response:
    user = await require_user(request, session)
    form = await read_form(request, user)
    rows = read_rules(form)
    fields = {
        "name": form_text(form, "name"),
        "description": form_text(form, "description"),
        "default_program_id": form_text(form, "default_program_id"),
    }
    edit = form_text(form, "edit")
    if edit and apply_edit(rows, edit):
        return await _editor(request, session, user, calendar_id=calendar_id, rows=rows,
                             unsaved=True, name=fields["name"], description=fields["description"],
                             default_program_id=fields["default_program_id"])  # fmt: skip
    require_role(user, Permission.SCHEDULE_WRITE, "change schedules")
    t = translator(request)
    body = {
        "name": fields["name"],
        "description": fields["description"] or None,
        "default_program_id": fields["default_program_id"] or None,
        "rules": [rule_payload(r) for r in rows],
    }
    try:
        data = CalendarCreate.model_validate(body)
        if calendar_id is None:
            saved = await scheduling.create_calendar(
                session=session, data=data, actor=user.principal
            )
        else:
            saved = await scheduling.update_calendar(
                session=session, calendar_id=calendar_id, actor=user.principal,
                data=CalendarUpdate.model_validate(data.model_dump()),
            )  # fmt: skip
    except ValidationError as exc:
        errors = validation_messages(exc.errors(), t)
    except InvalidInput as exc:
        errors = [p.as_dict() for p in exc.errors]
    else:
        user.session.flash("ok", t("calendar_saved", name=saved.name))
        return redirect(f"/calendars/{saved.id}")
    return await _editor(request, session, user, calendar_id=calendar_id, rows=rows,
                         errors=errors, status=422, name=fields["name"],
                         description=fields["description"],
                         default_program_id=fields["default_program_id"])  # fmt: skip


@router.post("/calendars/new")
async def calendar_create(request: Request, session: SessionDep) -> Response:
    return await _save(request, session, None)


@router.post("/calendars/{calendar_id}")
async def calendar_update(request: Request, session: SessionDep, calendar_id: Id) -> Response:
    return await _save(request, session, calendar_id)


@router.post("/calendars/{calendar_id}/assign")
async def calendar_assign(request: Request, session: SessionDep, calendar_id: Id) -> Response:
    """Give a group this calendar (``group_id``), or take it back (``unassign``)."""
    user = await require_user(request, session)
    form = await read_form(request, user)
    require_role(user, Permission.SCHEDULE_WRITE, "change schedules")
    await scheduling.get_calendar(session=session, calendar_id=calendar_id)  # 404 first
    t = translator(request)
    group_id = parse_id(form_text(form, "group_id"))
    if group_id is None:
        raise InvalidInput(t("field_required"), [FieldProblem("group_id", t("field_required"))])
    unassign = form_text(form, "unassign") == "1"
    group = await inventory.update_group(
        session=session, group_id=group_id, actor=user.principal,
        data=GroupUpdate(calendar_id=None if unassign else calendar_id),
    )  # fmt: skip
    key = "calendar_unassigned" if unassign else "calendar_assigned"
    user.session.flash("ok", t(key, group=group.name))
    return redirect(f"/calendars/{calendar_id}")


@router.post("/calendars/{calendar_id}/delete")
async def calendar_delete(request: Request, session: SessionDep, calendar_id: Id) -> Response:
    user = await require_user(request, session)
    await read_form(request, user)
    require_role(user, Permission.SCHEDULE_WRITE, "change schedules")
    await scheduling.delete_calendar(session=session, calendar_id=calendar_id,
                                     actor=user.principal)  # fmt: skip
    user.session.flash("ok", translator(request)("calendar_deleted", id=calendar_id))
    return redirect("/calendars")
