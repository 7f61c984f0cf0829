"""API test fixtures: the app on a real database, an HTTP client, one key per role."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from controller.access import auth
from controller.access.schemas import Role
from controller.config.settings import Settings
from controller.store.db import Database, open_database


@pytest.fixture
async def keys(db: Database) -> dict[Role, str]:
    out: dict[Role, str] = {}
    async with db.sessions() as session:
        for role in Role:
            key, _ = await auth.create_key(session=session, name=f"test-{role.value}", role=role)
            out[role] = key
    return out


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


class Api:
    """A small helper: requests as a given role, asserting the status code."""

    def __init__(self, client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
        self.client = client
        self.keys = keys

    async def call(
        self,
        method: str,
        path: str,
        *,
        role: Role | None = Role.ADMIN,
        expect: int | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if role is not None:
            headers["Authorization"] = f"Bearer {self.keys[role]}"
        response = await self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)
        if expect is not None:
            assert response.status_code == expect, (
                f"{method} {path}: {response.status_code} {response.text}"
            )
        return response

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        expect = {"POST": 201, "DELETE": 204}.get(method, 200)
        kwargs.setdefault("expect", expect)
        response = await self.call(method, path, **kwargs)
        return None if response.status_code == 204 else response.json()


@pytest.fixture
def api(client: httpx.AsyncClient, keys: dict[Role, str]) -> Api:
    return Api(client, keys)


MODBUS_GW = {
    "name": "gw-test-1",
    "protocol": "modbus",
    "host": "127.0.0.1",
    "port": 1502,
    "unit_ids": [1, 2],
    "ward": "Phường 1",
}
LAMP = {"name": "LED 100 W", "rated_power_w": 100}


def luminaire(n: int, gateway_id: int, lamp_type_id: int, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"P1-LD-{n:03d}",
        "gateway_id": gateway_id,
        "address": n,
        "lamp_type_id": lamp_type_id,
        "latitude": 16.8163 + n * 1e-4,
        "longitude": 107.1003,
        "street": "Lê Duẩn",
        "ward": "Phường 1",
    }
    body.update(extra)
    return body


@pytest.fixture
async def base(api: Api) -> dict[str, int]:
    """One Modbus gateway (128 addresses) and one lamp type."""
    gw = await api.ok("POST", "/gateways", json=MODBUS_GW)
    lamp = await api.ok("POST", "/lamp-types", json=LAMP)
    return {"gateway_id": gw["id"], "lamp_type_id": lamp["id"]}


@pytest.fixture
async def sqlite_db(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Database]:
    """One SQLite database, for tests about HTTP rather than storage."""
    path = tmp_path / "streetlight.db"
    shutil.copyfile(sqlite_template, path)
    database = open_database(f"sqlite+aiosqlite:///{path}")
    try:
        yield database
    finally:
        await database.dispose()
