"""The operators' dashboard: server-rendered pages served by the API at ``/``.

Plain HTML from Jinja2 templates, a little JavaScript (map pan/zoom and live marker
colours, upload progress), no build step and nothing fetched from the Internet: the
IOC network may be closed. Sign-in takes an API key; the session lives in memory
(:mod:`api.dashboard.sessions`). docs/dashboard.md has the pages and the settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.dashboard import (
    account,
    admin_pages,
    calendar_pages,
    energy_pages,
    fault_pages,
    import_page,
    pages,
    program_pages,
    work_pages,
)
from api.dashboard.config import load_config
from api.dashboard.sessions import SessionStore
from api.dashboard.web import Dashboard, error_page, translator

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
NOT_PAGES = ("/api/", "/ngsi-ld/", "/docs", "/redoc", "/openapi.json", "/static/")
"""Unknown paths under these keep the API's JSON 404."""


def make_templates() -> jinja2.Environment:
    """The template environment, every template loaded now (no disk reads per request)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
        cache_size=-1,
    )
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)
    return env


def install_dashboard(app: FastAPI) -> None:
    """Mount the dashboard's pages and static assets on ``app``.

    Reads its options (map tiles, session lifetimes) from the environment now: see
    :mod:`api.dashboard.config`. Invalid values raise :class:`ConfigError`.
    """
    settings = app.state.settings
    config = load_config(os.environ, getattr(settings, "dashboard", None))
    app.state.dashboard = Dashboard(
        config=config,
        templates=make_templates(),
        sessions=SessionStore(
            idle_s=config.session_idle_s,
            max_age_s=config.session_max_s,
            max_sessions=config.max_sessions,
        ),
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="dashboard-static")
    for module in (account, pages, fault_pages, energy_pages, import_page, program_pages,
                   calendar_pages, admin_pages):  # fmt: skip
        app.include_router(module.router)
    app.include_router(work_pages.router)
    _html_not_found(app)


def _html_not_found(app: FastAPI) -> None:
    """A browser asking for an unknown page gets an HTML 404; API clients keep JSON."""
    original = app.exception_handlers.get(StarletteHTTPException)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        wants_html = "text/html" in request.headers.get("accept", "")
        if exc.status_code == 404 and wants_html and not path.startswith(NOT_PAGES):
            return error_page(request, 404, translator(request)("error_404"))
        if original is None:
            raise exc
        result: Any = original(request, exc)
        response: Response = await result
        return response

    app.add_exception_handler(StarletteHTTPException, on_http)
