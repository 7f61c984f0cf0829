"""Request plumbing shared by the dashboard pages: who is signed in, language, rendering,
CSRF, and the mapping of domain errors to HTML pages (the API maps them to JSON)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import FormData

from api.dashboard.config import DashboardConfig
from api.dashboard.i18n import DEFAULT_LANG, Lang, Translator, parse_lang
from api.dashboard.sessions import LANG_COOKIE, SESSION_COOKIE, DashboardSession, SessionStore
from api.errors import validation_fields
from controller.access.auth import Permission, Principal, check_role
from controller.access.schemas import Role
from controller.config.settings import Settings
from controller.core.errors import (
    Conflict,
    Forbidden,
    GatewayUnavailable,
    InvalidInput,
    LightingError,
    NotAuthenticated,
    NotFound,
)
from controller.loop.runtime import Controller
from controller.store.tables import ApiKey

log = logging.getLogger(__name__)

LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600
MAX_ID = 2**31 - 1
"""Ids are INTEGER columns on PostgreSQL: larger ones are refused (422) before the database."""
MAX_PAGE = 100_000

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def parse_id(text: str | None) -> int | None:
    """An id from a free-form query value, or None (not a number, or out of range)."""
    if not text or not text.strip().isdigit():
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The dashboard's state, kept in ``app.state.dashboard``."""

    config: DashboardConfig
    templates: jinja2.Environment
    sessions: SessionStore


@dataclass(frozen=True, slots=True)
class User:
    """The signed-in browser: its session, cookie token and principal."""

    token: str
    session: DashboardSession
    principal: Principal

    @property
    def can_override(self) -> bool:
        return self.principal.role in Permission.OVERRIDE_WRITE

    @property
    def can_handle_faults(self) -> bool:
        return self.principal.role in Permission.FAULT_WRITE

    @property
    def can_import(self) -> bool:
        return self.principal.role in Permission.INVENTORY_WRITE


class LoginRequired(Exception):
    """No valid session: send the browser to the sign-in page."""


class BadCsrf(Exception):
    """A form came without this session's CSRF token."""


def dashboard_of(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def controller_of(request: Request) -> Controller | None:
    """The in-process controller once it has loaded its configuration, else None."""
    controller: Controller | None = getattr(request.app.state, "controller", None)
    if controller is None or controller.book is None:
        return None
    return controller


def now_of(request: Request) -> datetime:
    """The controller's clock (accelerated in the demo and tests), else real time."""
    clock = getattr(request.app.state, "clock", None)
    return clock.now() if clock is not None else datetime.now(UTC)


def lang_of(request: Request) -> Lang:
    """``?lang=`` wins, then the cookie, then Vietnamese."""
    return (
        parse_lang(request.query_params.get("lang"))
        or parse_lang(request.cookies.get(LANG_COOKIE))
        or DEFAULT_LANG
    )


def translator(request: Request) -> Translator:
    return Translator(lang_of(request), settings_of(request).site.tz)


async def current_user(request: Request, db: AsyncSession) -> User | None:
    """The signed-in user, re-checking the key (revoked: signed out; role: current)."""
    token = request.cookies.get(SESSION_COOKIE)
    store = dashboard_of(request).sessions
    session = store.get(token)
    if session is None or token is None:
        return None
    row = (await db.exec(select(ApiKey).where(ApiKey.key_hash == session.key_hash))).one_or_none()
    if row is None or row.revoked_at is not None:
        store.drop_key(session.key_hash)
        return None
    session.role = Role(row.role)
    session.name = row.name
    user = User(token, session, Principal(name=row.name, role=session.role))
    request.state.dashboard_user = user  # for error pages rendered after this
    return user


async def require_user(request: Request, db: AsyncSession) -> User:
    user = await current_user(request, db)
    if user is None:
        raise LoginRequired
    return user


def require_role(user: User, allowed: frozenset[Role], action: str) -> None:
    """Raise :class:`Forbidden` (a 403 page) unless the user's role may ``action``."""
    check_role(user.principal, allowed, action)


async def read_form(request: Request, user: User) -> FormData:
    """The posted form, after checking its CSRF token."""
    form = await request.form()
    token = form.get("csrf")
    if not user.session.csrf_ok(token if isinstance(token, str) else None):
        raise BadCsrf
    return form


def form_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to; anything else (other hosts, ``//x``) gives ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _lang_urls(request: Request) -> dict[str, str]:
    out = {}
    for lang in Lang:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
        params.append(("lang", lang.value))
        out[lang.value] = f"{request.url.path}?{urlencode(params)}"
    return out


def page_url(request: Request, **changes: Any) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    params = {k: v for k, v in request.query_params.items() if k != "lang"}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    query = urlencode(params)
    return f"{request.url.path}?{query}" if query else request.url.path


def _csp(config: DashboardConfig) -> str:
    """Everything from our own origin (no inline script or style), tiles from the tile server."""
    images = "'self' data:"
    if config.tile_origin:
        images += f" {config.tile_origin}"
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    user: User | None,
    status: int = 200,
    nav: str = "",
) -> HTMLResponse:
    """Render a page with the frame's context (language, user, flashes, CSRF)."""
    dashboard = dashboard_of(request)
    t = translator(request)
    settings = settings_of(request)
    flashes = user.session.take_flashes() if user is not None else []
    html = dashboard.templates.get_template(template).render(
        {
            "request": request,
            "t": t,
            "lang": t.lang.value,
            "lang_urls": _lang_urls(request),
            "user": user,
            "csrf": user.session.csrf if user is not None else "",
            "flashes": flashes,
            "nav": nav,
            "site_name": settings.site.name,
            "now": now_of(request),
            "page_url": lambda **kw: page_url(request, **kw),
            **context,
        }
    )
    response = HTMLResponse(html, status_code=status)
    _decorate(request, response, dashboard.config)
    return response


def _decorate(request: Request, response: Response, config: DashboardConfig) -> None:
    # The app's security middleware adds the site-wide headers (and a configured
    # ``security.content_security_policy`` wins); the dashboard only widens img-src
    # for a tile server, which the site-wide default does not know about.
    security = getattr(settings_of(request), "security", None)
    if getattr(security, "content_security_policy", None) is None:
        response.headers["Content-Security-Policy"] = _csp(config)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    chosen = parse_lang(request.query_params.get("lang"))
    if chosen is not None and chosen.value != request.cookies.get(LANG_COOKIE):
        response.set_cookie(
            LANG_COOKIE, chosen.value, max_age=LANG_COOKIE_MAX_AGE_S, httponly=True,
            samesite="lax", secure=request.url.scheme == "https",
        )  # fmt: skip


def error_page(
    request: Request,
    status: int,
    message: str,
    *,
    fields: list[dict[str, Any]] | None = None,
    user: User | None = None,
) -> HTMLResponse:
    t = translator(request)
    if user is None:
        user = getattr(request.state, "dashboard_user", None)
    summary = {
        403: "error_403",
        404: "error_404",
        409: "error_409",
        422: "error_422",
        503: "error_503",
    }.get(status, "error_422")
    return render(
        request,
        "error.html",
        {"status": status, "summary": t(summary), "message": message, "fields": fields or []},
        user=user,
        status=status,
    )


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    if request.method != "GET":
        target = request.headers.get("referer", "/")
        target = "/" if "://" in target else target
    response = redirect("/login?" + urlencode({"next": safe_next(target)}))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class PageRoute(APIRoute):
    """Dashboard routes answer errors with HTML pages (and a sign-in redirect), not JSON."""

    def get_route_handler(self) -> Endpoint:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except (LoginRequired, NotAuthenticated):
                return _login_redirect(request)
            except BadCsrf:
                return error_page(request, 403, translator(request)("error_csrf"))
            except Forbidden as exc:
                return error_page(request, 403, str(exc))
            except NotFound as exc:
                return error_page(request, 404, str(exc))
            except Conflict as exc:
                return error_page(request, 409, str(exc))
            except InvalidInput as exc:
                fields = [p.as_dict() for p in exc.errors]
                return error_page(request, 422, str(exc), fields=fields)
            except RequestValidationError as exc:
                fields = validation_fields(exc.errors())
                return error_page(request, 422, translator(request)("error_422"), fields=fields)
            except GatewayUnavailable as exc:
                return error_page(request, 503, str(exc))
            except LightingError as exc:
                log.warning("dashboard request failed: %s", exc)
                return error_page(request, 400, str(exc))

        return handler
