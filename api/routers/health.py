"""Liveness and database reachability (no key needed)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel

from api.deps import DatabaseDep, SettingsDep
from controller.app.version import VERSION

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unreachable"]
    version: str
    site: str


@router.get("/health", summary="Service health; 503 when the database is unreachable")
async def health(db: DatabaseDep, settings: SettingsDep, response: Response) -> Health:
    ok = await db.ping()
    if not ok:
        response.status_code = 503
    return Health(
        status="ok" if ok else "degraded",
        database="ok" if ok else "unreachable",
        version=VERSION,
        site=settings.site.name,
    )
