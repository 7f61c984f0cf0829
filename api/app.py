"""The FastAPI application factory."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles

from api.dashboard import install_dashboard
from api.errors import ERROR_RESPONSES, install_error_handlers
from api.routers import (
    audit,
    energy,
    faults,
    gateways,
    groups,
    health,
    lamp_types,
    luminaires,
    metrics,
    ngsi,
    overrides,
    schedules,
    state,
    work_orders,
)
from api.security import install_security
from controller.app.version import VERSION
from controller.config.settings import Settings
from controller.core.clock import Clock
from controller.loop.runtime import Controller
from controller.store.db import Database

DESCRIPTION = """
Smart street-lighting control for the city of {site}.

Authenticate with an API key: `Authorization: Bearer <key>`. Reads need any valid
key; writes need a role allowed for them (see the API guide, docs/api.md).
Errors share one shape: `{{"error": code, "message": text, "fields": [...]}}`.
"""


OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
DOCS_ASSETS_URL = "/docs-assets"
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
"""Swagger UI's and ReDoc's files as the ``fastapi-offline`` package ships them
(swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png): only its files are
used, not its ``FastAPIOffline`` factory."""


def create_app(
    settings: Settings,
    db: Database,
    *,
    controller: Controller | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the API around an open database (owned by the caller).

    With a ``controller`` (running in the same process) the state endpoints answer
    and every committed change to inventory, schedules or overrides makes the
    controller reload at once, so devices follow within seconds (the data functions
    note the change on the request's session: :mod:`controller.core.changes`).
    """
    app = FastAPI(
        title="streetlight",
        version=VERSION,
        description=DESCRIPTION.format(site=settings.site.name),
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served by install_docs, from the app instead of a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.controller = controller
    app.state.clock = clock or (controller.clock if controller is not None else None)
    install_error_handlers(app)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    docs_paths = install_docs(app)
    # after every add_middleware: it must be outermost
    install_security(app, settings, docs_paths=docs_paths)
    v1 = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
    routers = (health, gateways, lamp_types, luminaires, groups, schedules, overrides, state)
    for module in (*routers, faults, audit):
        v1.include_router(module.router)
    v1.include_router(energy.router)
    v1.include_router(work_orders.router)
    app.include_router(v1)
    app.include_router(metrics.router)
    app.include_router(ngsi.router, prefix="/ngsi-ld/v1")
    install_dashboard(app)
    return app


def install_docs(app: FastAPI) -> frozenset[str]:
    """Serve ``/docs`` (Swagger UI) and ``/redoc`` with their files from the app itself.

    FastAPI's own pages load them from ``cdn.jsdelivr.net`` (and the favicon from
    fastapi.tiangolo.com, ReDoc's fonts from Google), so on a closed network, such as an
    operations centre's, they stay blank. Here every URL the pages load is on the app's own
    origin, under ``DOCS_ASSETS_URL``, behind any ``root_path`` a proxy mounts the app under.
    Returns the pages' paths: they get the docs' Content-Security-Policy (api/security.py).
    """
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    async def swagger_ui(request: Request) -> Response:
        prefix = root(request)
        assets = prefix + DOCS_ASSETS_URL
        return get_swagger_ui_html(
            openapi_url=prefix + OPENAPI_URL,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            oauth2_redirect_url=prefix + OAUTH2_REDIRECT_URL,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def oauth2_redirect(request: Request) -> Response:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> Response:
        prefix = root(request)
        assets = prefix + DOCS_ASSETS_URL
        return get_redoc_html(
            openapi_url=prefix + OPENAPI_URL,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
    return frozenset({DOCS_URL, OAUTH2_REDIRECT_URL, REDOC_URL})
