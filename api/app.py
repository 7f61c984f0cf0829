"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.errors import install_error_handlers
from api.routers import (
    audit,
    gateways,
    groups,
    health,
    lamp_types,
    luminaires,
    overrides,
    schedules,
)
from controller.db import Database
from controller.settings import Settings
from controller.version import VERSION

DESCRIPTION = """
Smart street-lighting control for the city of {site}.

Authenticate with an API key: `Authorization: Bearer <key>`. Reads need any valid
key; writes need a role allowed for them (see the API guide, docs/api.md).
Errors share one shape: `{{"error": code, "message": text, "fields": [...]}}`.
"""


def create_app(settings: Settings, db: Database) -> FastAPI:
    """Build the API around an open database (owned by the caller)."""
    app = FastAPI(
        title="streetlight",
        version=VERSION,
        description=DESCRIPTION.format(site=settings.site.name),
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.db = db
    install_error_handlers(app)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    v1 = APIRouter(prefix="/api/v1")
    for module in (
        health, gateways, lamp_types, luminaires, groups, schedules, overrides, audit,
    ):  # fmt: skip
        v1.include_router(module.router)
    app.include_router(v1)
    return app
