"""FastAPI dependencies, as ``Annotated`` aliases: every one the routers and pages use.

Settings, database and session; the principal (and :func:`require` for a role); the
in-process controller; the clock (the controller's, which runs fast in the demo and the
tests, else the system clock) and ``now`` read from it, so no route reads the wall clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.access.auth import Principal, authenticate, check_role
from controller.access.schemas import Role
from controller.config.settings import Settings
from controller.core.changes import forward_changes
from controller.core.clock import Clock, SystemClock
from controller.core.errors import FieldProblem, GatewayUnavailable, InvalidInput
from controller.loop.runtime import Controller
from controller.store.db import Database

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_session(
    request: Request, db: Annotated[Database, Depends(get_database)]
) -> AsyncIterator[AsyncSession]:
    """A session per request; the changes its data functions committed go to a running
    controller when the request is done (:mod:`controller.core.changes`)."""
    async with db.sessions() as session:
        try:
            yield session
        finally:
            forward_changes(session, getattr(request.app.state, "controller", None))


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]

_SYSTEM_CLOCK = SystemClock()


def get_clock(request: Request) -> Clock:
    """The app's clock: the controller's (possibly accelerated) or, without one, real time."""
    clock: Clock | None = getattr(request.app.state, "clock", None)
    return clock if clock is not None else _SYSTEM_CLOCK


ClockDep = Annotated[Clock, Depends(get_clock)]


def get_now(clock: ClockDep) -> datetime:
    """The instant of this request on the app's clock (aware, UTC)."""
    return clock.now()


NowDep = Annotated[datetime, Depends(get_now)]


def get_controller(request: Request) -> Controller:
    """The controller running in this process, once it has loaded its configuration (503)."""
    controller: Controller | None = getattr(request.app.state, "controller", None)
    if controller is None or controller.book is None:
        raise GatewayUnavailable("the controller is not running in this process")
    return controller


ControllerDep = Annotated[Controller, Depends(get_controller)]


async def get_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    key = credentials.credentials if credentials is not None else None
    return await authenticate(session=session, key=key)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(allowed: frozenset[Role], action: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates and then checks the role."""

    async def dependency(principal: PrincipalDep) -> Principal:
        check_role(principal, allowed, action)
        return principal

    return dependency


@dataclass(frozen=True, slots=True)
class Pagination:
    limit: int
    offset: int


def get_pagination(
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, description="Page size")] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip")] = 0,
) -> Pagination:
    if limit > settings.api.page_size_max:
        raise InvalidInput(
            "page too large",
            [FieldProblem("limit (query)", f"must be at most {settings.api.page_size_max}")],
        )
    return Pagination(limit=limit, offset=offset)


PageDep = Annotated[Pagination, Depends(get_pagination)]

MAX_ID = 2**31 - 1
"""Ids are 32-bit integers in the database: larger ones are refused at the edge (422)."""
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
