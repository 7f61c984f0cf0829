"""Bulk import of luminaires (CSV or GeoJSON), with upload progress and per-row errors.

The same importer as ``POST /api/v1/luminaires/import``: all or nothing; a refused file
lists every problem with its row. ``static/dashboard.js`` uploads with a progress bar
and swaps in the answer; without JavaScript the form posts as usual.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile

from api.dashboard.web import (
    PageRoute,
    User,
    read_form,
    redirect,
    render,
    require_role,
    require_user,
    translator,
)
from api.deps import SessionDep
from api.routers.luminaires import MAX_IMPORT_BYTES
from controller.access.auth import Permission
from controller.core.errors import InvalidInput
from controller.inventory.importer import ImportFormat, detect_format, import_inventory

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _page(
    request: Request, user: User, errors: list[dict[str, Any]] | None = None, status: int = 200
) -> Response:
    return render(
        request,
        "import.html",
        {
            "errors": errors or [],
            "formats": [f.value for f in ImportFormat],
            "max_mb": MAX_IMPORT_BYTES // (1024 * 1024),
        },
        user=user,
        nav="import",
        status=status,
    )


@router.get("/import")
async def import_form(request: Request, session: SessionDep) -> Response:
    user = await require_user(request, session)
    return _page(request, user)


@router.post("/import")
async def import_file(request: Request, session: SessionDep) -> Response:
    user = await require_user(request, session)
    form = await read_form(request, user)
    require_role(user, Permission.INVENTORY_WRITE, "import luminaires")
    t = translator(request)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _page(request, user, [{"field": "file", "message": t("import_no_file")}], 422)
    data = await upload.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        message = t("import_too_large", mb=MAX_IMPORT_BYTES // (1024 * 1024))
        return _page(request, user, [{"field": "file", "message": message}], 422)
    chosen = form.get("format")
    fmt = (
        ImportFormat(chosen)
        if isinstance(chosen, str) and chosen in {f.value for f in ImportFormat}
        else detect_format(upload.filename, upload.content_type)
    )
    try:
        result = await import_inventory(session=session, data=data, fmt=fmt, actor=user.principal)
    except InvalidInput as exc:
        errors = [p.as_dict() for p in exc.errors] or [{"field": "file", "message": str(exc)}]
        return _page(request, user, errors, 422)
    user.session.flash(
        "ok",
        t(
            "import_done", imported=result.luminaires, gw_new=result.gateways_created,
            gw_upd=result.gateways_updated, lamps=result.lamp_types_created,
        ),
    )  # fmt: skip
    return redirect("/import")
