"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware

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
)
from api.security import install_security
from controller.clock import Clock
from controller.db import Database
from controller.runtime import Controller
from controller.settings import Settings
from controller.version import VERSION

DESCRIPTION = """
Smart street-lighting control for the city of {site}.

Authenticate with an API key: `Authorization: Bearer <key>`. Reads need any valid
key; writes need a role allowed for them (see the API guide, docs/api.md).
Errors share one shape: `{{"error": code, "message": text, "fields": [...]}}`.
"""


RELOAD_PREFIXES = tuple(
    f"/api/v1/{p}"
    for p in (
        "gateways",
        "lamp-types",
        "luminaires",
        "groups",
        "programs",
        "calendars",
        "overrides",
    )
)


def create_app(
    settings: Settings,
    db: Database,
    *,
    controller: Controller | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the API around an open database (owned by the caller).

    With a ``controller`` (running in the same process) the state endpoints answer
    and every successful change to inventory, schedules or overrides makes the
    controller reload at once, so devices follow within seconds.
    """
    app = FastAPI(
        title="streetlight",
        version=VERSION,
        description=DESCRIPTION.format(site=settings.site.name),
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.db = db
    app.state.controller = controller
    app.state.clock = clock or (controller.clock if controller is not None else None)
    if controller is not None:

        @app.middleware("http")
        async def reload_on_change(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            response = await call_next(request)
            if (
                request.method in {"POST", "PATCH", "PUT", "DELETE"}
                and response.status_code < 300
                and request.url.path.startswith(RELOAD_PREFIXES)
            ):
                controller.request_reload(
                    overrides_only=request.url.path.startswith("/api/v1/overrides")
                )
            return response

    install_error_handlers(app)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    install_security(app, settings)  # after every add_middleware: it must be outermost
    v1 = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
    routers = (health, gateways, lamp_types, luminaires, groups, schedules, overrides, state)
    for module in (*routers, faults, audit):
        v1.include_router(module.router)
    v1.include_router(energy.router)
    app.include_router(v1)
    app.include_router(metrics.router)
    app.include_router(ngsi.router, prefix="/ngsi-ld/v1")
    install_dashboard(app)
    return app
