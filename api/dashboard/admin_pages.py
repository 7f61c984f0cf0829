"""The administrator's pages: the audit trail (who changed what) and API keys.

Both read and write through :mod:`controller.access.audit` and
:mod:`controller.access.auth`, the functions the API and ``streetlight keys`` use.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from api.dashboard.account import DASHBOARD_ENTITY, SIGN_IN
from api.dashboard.web import (
    Id,
    PageNumber,
    PageRoute,
    form_text,
    read_form,
    redirect,
    render,
    require_role,
    require_user,
    settings_of,
    translator,
)
from api.deps import SessionDep
from controller.access import audit, auth
from controller.access.auth import Permission
from controller.access.schemas import Role
from controller.core.errors import Conflict, FieldProblem, InvalidInput

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
ENTITIES = ("program", "calendar", "group", "override", "luminaire", "gateway", "lamp_type",
            "fault", "api_key", DASHBOARD_ENTITY)  # fmt: skip
SIGN_INS_SHOWN = 50


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One leaf of an entity that differs: ``steps.1.level``: 70 -> 30."""

    path: str
    before: str | None
    after: str | None


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts and lists as ``path -> text`` (``steps.0.level``)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {prefix: json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value}


IGNORED = frozenset({"updated_at", "created_at"})


def field_diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[FieldChange]:
    """Every leaf added, removed or changed between two snapshots, in path order.

    Timestamps that change on every write (``updated_at``) are left out."""
    old, new = flatten(before or {}), flatten(after or {})
    changes = []
    for path in sorted(old.keys() | new.keys()):
        if path in IGNORED or old.get(path) == new.get(path):
            continue
        changes.append(FieldChange(path, old.get(path), new.get(path)))
    return changes


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@router.get("/audit")
async def audit_page(
    request: Request,
    session: SessionDep,
    actor: str = "",
    entity: str = "",
    entity_id: str = "",
    since: str = "",
    until: str = "",
    page: PageNumber = 1,
) -> Response:
    user = await require_user(request, session)
    require_role(user, Permission.AUDIT_READ, "read the audit trail")
    tz = settings_of(request).site.tz
    first, last = _day(since), _day(until)
    result = await audit.list_entries(
        session=session,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        actor=actor.strip() or None,
        entity=entity.strip() or None,
        entity_id=entity_id.strip() or None,
        since=datetime.combine(first, time(), tzinfo=tz) if first else None,
        until=datetime.combine(last + timedelta(days=1), time(), tzinfo=tz) if last else None,
    )
    keys = await auth.list_keys(session=session)
    return render(
        request,
        "audit.html",
        {
            "entries": [(e, field_diff(e.before, e.after)) for e in result.items],
            "total": result.total,
            "page": page,
            "pages": max(1, math.ceil(result.total / PAGE_SIZE)),
            "actor": actor,
            "entity": entity,
            "entity_id": entity_id,
            "since": first.isoformat() if first else "",
            "until": last.isoformat() if last else "",
            "actors": sorted({k.name for k in keys}),
            "entities": ENTITIES,
        },
        user=user,
        nav="audit",
    )


async def _keys_page(
    request: Request,
    session: SessionDep,
    *,
    new_key: str | None = None,
    form: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> Response:
    user = await require_user(request, session)
    require_role(user, Permission.KEYS_ADMIN, "manage API keys")
    sign_ins = await audit.list_entries(session=session, limit=SIGN_INS_SHOWN, offset=0,
                                        entity=DASHBOARD_ENTITY, action=SIGN_IN)  # fmt: skip
    return render(
        request,
        "keys.html",
        {
            "keys": await auth.list_keys(session=session),
            "roles": [r.value for r in Role],
            "new_key": new_key,
            "form": form or {},
            "errors": errors or [],
            "sign_ins": sign_ins.items,
        },
        user=user,
        nav="keys",
        status=status,
    )


@router.get("/keys")
async def keys_page(request: Request, session: SessionDep) -> Response:
    return await _keys_page(request, session)


@router.post("/keys")
async def key_create(request: Request, session: SessionDep) -> Response:
    """Create a key and show it once (this answer is the only place it appears)."""
    user = await require_user(request, session)
    form = await read_form(request, user)
    require_role(user, Permission.KEYS_ADMIN, "manage API keys")
    t = translator(request)
    values = {"name": form_text(form, "name"), "role": form_text(form, "role")}
    errors = []
    if not values["name"]:
        errors.append({"field": "name", "message": t("field_required")})
    if values["role"] not in {r.value for r in Role}:
        errors.append({"field": "role", "message": t("field_required")})
    if errors:
        return await _keys_page(request, session, form=values, errors=errors, status=422)
    try:
        clear, public = await auth.create_key(session=session, name=values["name"],
                                              role=Role(values["role"]))  # fmt: skip
    except Conflict as exc:
        errors = [{"field": "name", "message": str(exc)}]
        return await _keys_page(request, session, form=values, errors=errors, status=409)
    audit.record(session=session, actor=user.principal, action="create", entity="api_key",
                 entity_id=public.id, after=public)  # fmt: skip
    await session.commit()
    return await _keys_page(request, session, new_key=clear)


@router.post("/keys/{key_id}/revoke")
async def key_revoke(request: Request, session: SessionDep, key_id: Id) -> Response:
    user = await require_user(request, session)
    await read_form(request, user)
    require_role(user, Permission.KEYS_ADMIN, "manage API keys")
    before = await auth.list_keys(session=session)
    old = next((k for k in before if k.id == key_id), None)
    if old is not None and old.name == user.principal.name and old.revoked_at is None:
        raise InvalidInput(
            "an administrator cannot revoke the key they are signed in with",
            [FieldProblem("key", "this is your own key")],
        )
    public = await auth.revoke_key(session=session, name_or_id=str(key_id))
    if old is not None and old.revoked_at is None:
        audit.record(session=session, actor=user.principal, action="revoke", entity="api_key",
                     entity_id=key_id, before=old, after=public)  # fmt: skip
        await session.commit()
    user.session.flash("ok", translator(request)("key_revoked", name=public.name))
    return redirect("/keys")
