"""Sign in with an API key, sign out."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.dashboard.sessions import SESSION_COOKIE
from api.dashboard.web import (
    PageRoute,
    current_user,
    dashboard_of,
    form_text,
    read_form,
    redirect,
    render,
    safe_next,
    translator,
)
from api.deps import SessionDep
from controller.access import audit
from controller.access.auth import authenticate, hash_key
from controller.core.errors import NotAuthenticated

router = APIRouter(route_class=PageRoute, include_in_schema=False)

DASHBOARD_ENTITY = "dashboard"
SIGN_IN = "sign_in"
"""Each sign-in is an audit entry (entity ``dashboard``, id the key's name): /keys lists them."""


def _login_page(request: Request, next_url: str, error: str = "", status: int = 200) -> Response:
    return render(
        request,
        "login.html",
        {"next": next_url, "error": error, "bye": request.query_params.get("bye") == "1"},
        user=None,
        status=status,
    )


@router.get("/login")
async def login_form(request: Request, session: SessionDep, next: str = "/") -> Response:
    target = safe_next(next)
    if await current_user(request, session) is not None:
        return redirect(target)
    return _login_page(request, target)


@router.post("/login")
async def login(request: Request, session: SessionDep) -> Response:
    t = translator(request)
    form = await request.form()
    target = safe_next(form_text(form, "next"))
    key = form_text(form, "key")
    if not key:
        return _login_page(request, target, t("login_missing"), status=422)
    try:
        principal = await authenticate(session=session, key=key)
    except NotAuthenticated:
        return _login_page(request, target, t("login_failed"), status=401)
    audit.record(
        session=session, actor=principal, action=SIGN_IN, entity=DASHBOARD_ENTITY,
        entity_id=principal.name, extra={"client": request.client.host if request.client else None},
    )  # fmt: skip
    await session.commit()
    token, dash_session = dashboard_of(request).sessions.create(
        key_hash=hash_key(key), name=principal.name, role=principal.role
    )
    dash_session.flash("ok", t("welcome", name=principal.name))
    response = redirect(target)
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="lax", path="/",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    user = await current_user(request, session)
    if user is not None:
        await read_form(request, user)
        dashboard_of(request).sessions.drop(user.token)
    response = redirect("/login?bye=1")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
