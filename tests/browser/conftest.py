"""Dashboard test fixtures: the app over HTTP in this process, signed-in clients, a browser.

``tests/browser/test_pages.py`` talks to the app in-process over ASGI (no browser, no
controller). ``tests/browser/test_dashboard.py`` drives Debian's Chromium with
Playwright against the whole system served by uvicorn on a loopback port: controller,
fake fleet and mosquitto, on an accelerated clock, as in ``tests/e2e``.

Chromium comes from Debian (``/usr/bin/chromium``; ``STREETLIGHT_TEST_CHROMIUM`` points
elsewhere); Playwright's own browser download is never used. In CI (``CI=true``) a
missing Chromium or Playwright fails the browser tests; elsewhere they skip.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from controller.access import auth
from controller.access.schemas import Role
from controller.config.settings import Settings
from controller.demo.seed import seed_demo
from controller.store.db import Database
from tests.conftest import require_service
from tests.integration.conftest import (  # noqa: F401 - pytest fixtures re-exported
    _mqtt_broker_session,
    mqtt_broker,
    mqtt_prefix,
)

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def chromium_path() -> str:
    """Debian's Chromium, or fail (CI) / skip (elsewhere) with the reason."""
    try:
        import playwright.async_api  # noqa: F401 - only checking it is installed
    except ImportError as exc:
        require_service("Playwright", f"the playwright package is not installed ({exc})")
    configured = os.environ.get("STREETLIGHT_TEST_CHROMIUM")
    path = configured or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        require_service("Chromium", f"{path} not found (apt-get install chromium)")
    return path


class Browserless:
    """A signed-in HTTP client for the dashboard (cookies kept), with its CSRF token."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.csrf = ""

    async def sign_in(self, key: str) -> httpx.Response:
        response = await self.client.post("/login", data={"key": key, "next": "/"})
        page = await self.client.get("/")
        found = _CSRF.search(page.text)
        self.csrf = found.group(1) if found else ""
        return response

    async def get(self, path: str, **kwargs: object) -> httpx.Response:
        return await self.client.get(path, **kwargs)  # type: ignore[arg-type]

    async def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post(path, data={"csrf": self.csrf, **(data or {})})


@pytest.fixture
async def seeded(db: Database) -> dict[Role, str]:
    """The demo inventory (500 luminaires, a group per ward) and one key per role."""
    async with db.sessions() as session:
        await seed_demo(session=session)
        keys = {}
        for role in Role:
            keys[role], _ = await auth.create_key(session=session, name=f"web-{role}", role=role)
    return keys


class Dash:
    """The app without a controller, and signed-in clients for it, one per role asked."""

    def __init__(self, settings: Settings, db: Database, keys: dict[Role, str]) -> None:
        self.app = create_app(settings, db)
        self.db = db
        self.keys = keys
        self._clients: list[httpx.AsyncClient] = []

    def anonymous(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://dash",
            headers={"Accept": "text/html"},
        )
        self._clients.append(client)
        return client

    async def signed_in(self, role: Role) -> Browserless:
        browser = Browserless(self.anonymous())
        response = await browser.sign_in(self.keys[role])
        assert response.status_code == 303, response.text
        return browser

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()


@pytest.fixture
async def dash(settings: Settings, db: Database, seeded: dict[Role, str]) -> AsyncIterator[Dash]:
    out = Dash(settings, db, seeded)
    try:
        yield out
    finally:
        await out.close()
