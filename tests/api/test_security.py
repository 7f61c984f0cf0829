"""HTTP hardening (api/security.py): headers, the failed-authentication limit, CORS, and keys
kept out of every log."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.responses import JSONResponse, PlainTextResponse
from typer.testing import CliRunner

from api.app import create_app
from api.security import FailureWindow, SecurityMiddleware, csp_with_script_hashes
from controller.access import auth
from controller.access.schemas import Role
from controller.app.cli import app as cli_app
from controller.config.settings import SecuritySettings, Settings, load_settings
from controller.store.db import Database
from tests.conftest import free_port

API = "/api/v1"
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture
async def admin_key(sqlite_db: Database) -> str:
    async with sqlite_db.sessions() as session:
        key, _ = await auth.create_key(session=session, name="sec-admin", role=Role.ADMIN)
    return key


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(data_dir=tmp_path / "data", **overrides)


@contextlib.asynccontextmanager
async def client_for(app: FastAPI, address: str = "192.0.2.10") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
async def client(tmp_path: Path, sqlite_db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(make_settings(tmp_path), sqlite_db)) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- headers ------------------------------------------------------------------------------


def assert_hardened(response: httpx.Response) -> None:
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, f"{name} on {response.request.url}"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp or "default-src 'self'" in csp


async def test_every_kind_of_response_carries_the_security_headers(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    responses = [
        await client.get(f"{API}/health"),  # no key needed
        await client.get(f"{API}/luminaires", headers=bearer(admin_key)),  # 200
        await client.get(f"{API}/luminaires"),  # 401 without a key
        await client.get(f"{API}/luminaires", headers=bearer("sl_wrong")),  # 401
        await client.get(f"{API}/luminaires/999999", headers=bearer(admin_key)),  # 404
        await client.get(f"{API}/luminaires?limit=0", headers=bearer(admin_key)),  # 422
        await client.delete(f"{API}/health"),  # 405
        await client.get("/openapi.json"),
        await client.get("/docs"),
        await client.get("/redoc"),
        await client.get("/no/such/page"),
    ]
    assert [r.status_code for r in responses] == [
        200, 200, 401, 401, 404, 422, 405, 200, 200, 200, 404,
    ]  # fmt: skip
    for response in responses:
        assert_hardened(response)
        assert "strict-transport-security" not in response.headers  # off by default
    api_responses = [r for r in responses if r.request.url.path.startswith(API)]
    assert all(r.headers["cache-control"] == "no-store" for r in api_responses)


async def test_hsts_when_configured(tmp_path: Path, sqlite_db: Database) -> None:
    settings = make_settings(tmp_path, security={"hsts": True, "hsts_max_age_s": 600})
    async with client_for(create_app(settings, sqlite_db)) as c:
        response = await c.get(f"{API}/health")
    assert response.headers["strict-transport-security"] == "max-age=600; includeSubDomains"


async def test_a_configured_policy_replaces_the_default(
    tmp_path: Path, sqlite_db: Database
) -> None:
    policy = "default-src 'self'; img-src 'self' https://tiles.example.vn; frame-ancestors 'none'"
    settings = make_settings(tmp_path, security={"content_security_policy": policy})
    async with client_for(create_app(settings, sqlite_db)) as c:
        assert (await c.get(f"{API}/health")).headers["content-security-policy"] == policy


async def test_a_response_that_sets_its_own_policy_keeps_it() -> None:
    """The dashboard's pages set their own CSP (with the map tiles' origin): it wins."""

    async def page(scope: Any, receive: Any, send: Any) -> None:
        own = PlainTextResponse("hi", headers={"Content-Security-Policy": "img-src tiles"})
        await own(scope, receive, send)

    wrapped = SecurityMiddleware(page, settings=SecuritySettings())
    transport = httpx.ASGITransport(app=wrapped)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        response = await c.get("/")
    assert response.headers.get_list("content-security-policy") == ["img-src tiles"]
    assert response.headers["x-frame-options"] == "DENY"


# --- what the pages load: the policy must let /docs, /redoc and the dashboard work ----------


class _Resources(HTMLParser):
    """What a browser would load or run from a page, as the CSP sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []  # src of external scripts
        self.styles: list[str] = []  # href of style sheets
        self.images: list[str] = []
        self.inline_scripts: list[str] = []
        self.style_attributes = 0
        self.handlers: list[str] = []
        self._in_script = False
        self._script = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.handlers += [k for k in a if k.startswith("on")]
        self.style_attributes += "style" in a
        if tag == "script":
            if a.get("src"):
                self.scripts.append(a["src"])
            else:
                self._in_script, self._script = True, ""
        elif tag == "link" and "stylesheet" in a.get("rel", ""):
            self.styles.append(a["href"])
        elif tag == "link" and "icon" in a.get("rel", ""):
            self.images.append(a["href"])
        elif tag == "img" and a.get("src"):
            self.images.append(a["src"])

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self._script += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script:
            self._in_script = False
            self.inline_scripts.append(self._script)


def directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def allowed(url: str, sources: list[str]) -> bool:
    parts = urlsplit(url)
    if not parts.scheme:  # same origin
        return "'self'" in sources
    if parts.scheme == "data":
        return "data:" in sources
    return f"{parts.scheme}://{parts.netloc}" in sources


def blocked_by_csp(html: str, csp: str) -> list[str]:
    """What of ``html`` the policy would block (a reviewer's reading of CSP level 3)."""
    d = directives(csp)
    default = d.get("default-src", [])
    scripts, styles = d.get("script-src", default), d.get("style-src", default)
    images = d.get("img-src", default)
    page = _Resources()
    page.feed(html)
    problems = [f"script {u}" for u in page.scripts if not allowed(u, scripts)]
    problems += [f"style sheet {u}" for u in page.styles if not allowed(u, styles)]
    problems += [f"image {u}" for u in page.images if not allowed(u, images)]
    for body in page.inline_scripts:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        if f"'sha256-{digest}'" not in scripts and "'unsafe-inline'" not in scripts:
            problems.append(f"inline script {body.strip()[:40]!r}")
    if page.style_attributes and "'unsafe-inline'" not in styles:
        problems.append(f"{page.style_attributes} style attribute(s)")
    problems += [f"inline handler {h}" for h in page.handlers]
    return problems


async def test_the_docs_pages_are_allowed_what_they_load(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        response = await client.get(path)
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        # ReDoc asks for no Google Fonts (it falls back to system fonts)
        assert blocked_by_csp(response.text, csp) == [], path
        # the inline script is allowed by its hash, never by 'unsafe-inline'
        assert "'unsafe-inline'" not in directives(csp)["script-src"]


async def test_the_docs_pages_load_nothing_from_another_origin(client: httpx.AsyncClient) -> None:
    """What the lead asked about: FastAPI's /docs loaded Swagger UI from cdn.jsdelivr.net, so on
    a closed network the page stayed blank. The app serves the files itself now
    (tests/api/test_docs_offline.py), and the docs' policy names no other origin."""
    for path in ("/docs", "/redoc"):
        response = await client.get(path)
        page = _Resources()
        page.feed(response.text)
        assert all(not urlsplit(u).netloc for u in page.scripts + page.styles + page.images)
        assert "://" not in response.headers["content-security-policy"]


async def test_the_dashboard_pages_are_allowed_what_they_load(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/", follow_redirects=True)
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    csp = response.headers["content-security-policy"]
    assert blocked_by_csp(response.text, csp) == []
    for script in _scripts_of(response.text):
        assert (await client.get(script)).status_code == 200, script


def _scripts_of(html: str) -> list[str]:
    page = _Resources()
    page.feed(html)
    return [u for u in page.scripts + page.styles if not urlsplit(u).scheme]


def test_script_hashes_cover_every_inline_script() -> None:
    html = b"<script src='/a.js'></script><script>one()</script><p><script>two()</script>"
    csp = csp_with_script_hashes("default-src 'self'; script-src 'self'", html)
    for body in (b"one()", b"two()"):
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert csp_with_script_hashes("script-src 'self'", b"<p>no script</p>") == "script-src 'self'"


# --- the failed-authentication limit ------------------------------------------------------


async def test_ten_failures_from_an_address_then_429_with_retry_after(
    client: httpx.AsyncClient, admin_key: str, tmp_path: Path, sqlite_db: Database
) -> None:
    for _ in range(10):
        response = await client.get(f"{API}/luminaires", headers=bearer("sl_guess"))
        assert response.status_code == 401
    limited = await client.get(f"{API}/luminaires", headers=bearer("sl_guess"))
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["error"] == "too_many_requests"
    assert_hardened(limited)
    # the right key from that address waits too: a guesser must not learn which guess was right
    assert (await client.get(f"{API}/luminaires", headers=bearer(admin_key))).status_code == 429
    # what needs no key still answers
    assert (await client.get(f"{API}/health")).status_code == 200
    assert (await client.get("/docs")).status_code == 200


async def test_other_addresses_and_successes_are_not_limited(
    tmp_path: Path, sqlite_db: Database, admin_key: str
) -> None:
    app = create_app(make_settings(tmp_path), sqlite_db)
    async with client_for(app, "192.0.2.1") as guesser, client_for(app, "192.0.2.2") as user:
        for _ in range(9):
            assert await status(user, "sl_typo") == 401
        for _ in range(30):  # successes do not count
            assert await status(user, admin_key) == 200
        for _ in range(12):
            await status(guesser, "sl_guess")
        assert await status(guesser, admin_key) == 429
        assert await status(user, admin_key) == 200
        # the user's tenth failure reaches the limit
        assert await status(user, "sl_typo") == 401
        assert await status(user, "sl_typo") == 429


async def status(client: httpx.AsyncClient, key: str) -> int:
    """The status of a list request with ``key``."""
    return (await client.get(f"{API}/luminaires", headers=bearer(key))).status_code


async def test_requests_without_a_key_are_not_guesses(client: httpx.AsyncClient) -> None:
    for _ in range(25):
        assert (await client.get(f"{API}/luminaires")).status_code == 401
    assert (await client.get(f"{API}/luminaires", headers=bearer("sl_x"))).status_code == 401


async def test_the_dashboard_sign_in_form_counts_as_credentials(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    login = "/login"
    for _ in range(10):
        response = await client.post(login, data={"key": "sl_guess", "next": "/"})
        assert response.status_code == 401
    response = await client.post(login, data={"key": admin_key, "next": "/"})
    assert response.status_code == 429


async def test_the_limit_is_a_setting(tmp_path: Path, sqlite_db: Database) -> None:
    settings = make_settings(tmp_path, security={"auth_failures_per_minute": 3})
    async with client_for(create_app(settings, sqlite_db)) as c:
        codes = [await status(c, "sl_g") for _ in range(4)]
    assert codes == [401, 401, 401, 429]


async def test_reaching_the_limit_is_logged_once_without_the_key(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(15):
        await client.get(f"{API}/luminaires", headers=bearer("sl_secret-guess"))
    warnings = [r for r in caplog.records if r.name == "api.security"]
    assert len(warnings) == 1
    assert "192.0.2.10" in warnings[0].getMessage()
    assert "sl_secret-guess" not in caplog.text


def test_the_window_slides() -> None:
    window = FailureWindow(3, window_s=60, max_addresses=100)
    assert [window.record_failure("a", t) for t in (0.0, 10.0, 20.0)] == [False, False, True]
    assert window.retry_after_s("a", 20.0) == pytest.approx(40.0)
    assert window.retry_after_s("a", 59.0) == pytest.approx(1.0)
    assert window.retry_after_s("a", 60.0) is None  # the first failure left the window
    assert window.retry_after_s("b", 20.0) is None
    window.record_failure("a", 61.0)
    assert window.retry_after_s("a", 61.0) == pytest.approx(9.0)  # 10, 20, 61: until 70
    assert window.retry_after_s("a", 200.0) is None
    assert len(window) == 0  # an address with nothing recent is forgotten


def test_the_window_memory_is_bounded() -> None:
    window = FailureWindow(5, window_s=60, max_addresses=100)
    for i in range(10_000):
        window.record_failure(f"10.0.{i // 256}.{i % 256}", 1.0)
        window.record_failure("attacker", 1.0)  # keeps being the most recent
    assert len(window) == 100
    assert window.retry_after_s("attacker", 2.0) is not None
    assert max(len(times) for times in window._failures.values()) <= 5


async def test_the_middleware_unblocks_when_the_window_has_passed() -> None:
    now = [1000.0]

    async def deny(scope: Any, receive: Any, send: Any) -> None:
        await JSONResponse({"error": "not_authenticated"}, status_code=401)(scope, receive, send)

    settings = SecuritySettings(auth_failures_per_minute=2)
    app = SecurityMiddleware(deny, settings=settings, clock=lambda: now[0])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        codes = [(await c.get("/", headers=bearer("k"))).status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        now[0] += 59.5
        response = await c.get("/", headers=bearer("k"))
        assert (response.status_code, response.headers["retry-after"]) == (429, "1")
        now[0] += 1.0
        assert (await c.get("/", headers=bearer("k"))).status_code == 401


# --- CORS ---------------------------------------------------------------------------------

IOC = "https://ioc.dongha.gov.vn"


async def test_cors_allows_the_configured_origins_only(
    tmp_path: Path, sqlite_db: Database, admin_key: str
) -> None:
    settings = make_settings(tmp_path, api={"cors_origins": [IOC]})
    async with client_for(create_app(settings, sqlite_db)) as c:
        preflight = {"Access-Control-Request-Method": "GET",
                     "Access-Control-Request-Headers": "authorization"}  # fmt: skip
        ok = await c.options(f"{API}/luminaires", headers={"Origin": IOC, **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == IOC
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        assert_hardened(ok)
        evil = await c.options(
            f"{API}/luminaires", headers={"Origin": "https://evil.example", **preflight}
        )
        assert evil.status_code == 400
        assert "access-control-allow-origin" not in evil.headers
        simple = await c.get(f"{API}/luminaires", headers={"Origin": IOC, **bearer(admin_key)})
        assert simple.headers["access-control-allow-origin"] == IOC
        other = await c.get(
            f"{API}/luminaires", headers={"Origin": "https://evil.example", **bearer(admin_key)}
        )
        assert "access-control-allow-origin" not in other.headers


async def test_no_cors_headers_without_configured_origins(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    response = await client.get(f"{API}/luminaires", headers={"Origin": IOC, **bearer(admin_key)})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


# --- keys never logged ----------------------------------------------------------------------


async def test_requests_with_keys_leave_no_key_in_the_logs(
    client: httpx.AsyncClient,
    admin_key: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sl_" + "W" * 43
    await client.get(f"{API}/luminaires", headers=bearer(admin_key))
    await client.post(f"{API}/gateways", headers=bearer(admin_key), json={"name": ""})
    await client.get(f"{API}/luminaires", headers=bearer(wrong))
    await client.get(f"{API}/luminaires", headers={"Authorization": f"Basic {wrong}"})
    await client.post("/login", data={"key": wrong, "next": "/"})
    await client.post("/login", data={"key": admin_key, "next": "/"})
    captured = capsys.readouterr()
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for key in (admin_key, wrong, wrong[3:]):
        assert key not in logged
        assert key not in captured.out + captured.err


@contextlib.asynccontextmanager
async def uvicorn_serving(app: FastAPI) -> AsyncIterator[str]:
    """The app behind a real uvicorn (its access log on, at INFO), as `serve` runs it, but
    with the records going to the root logger (caplog) instead of uvicorn's own handlers."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, log_level="info", access_log=True
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name="uvicorn-under-test")
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_uvicorns_access_log_does_not_print_the_authorization_header(
    tmp_path: Path,
    sqlite_db: Database,
    admin_key: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from uvicorn.config import LOGGING_CONFIG
    from uvicorn.logging import AccessFormatter

    caplog.set_level(logging.INFO)
    app = create_app(make_settings(tmp_path), sqlite_db)
    async with uvicorn_serving(app) as base, httpx.AsyncClient(base_url=base) as http:
        assert (await http.get(f"{API}/luminaires", headers=bearer(admin_key))).status_code == 200
        assert (await http.get(f"{API}/gateways", headers=bearer("sl_nope"))).status_code == 401
    access = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert len(access) == 2  # the access log was on: it saw both requests
    formatter = AccessFormatter(LOGGING_CONFIG["formatters"]["access"]["fmt"], use_colors=False)
    lines = [formatter.format(r) for r in access]
    assert f'"GET {API}/luminaires HTTP/1.1" 200' in lines[0]
    captured = capsys.readouterr()
    for text in (*lines, caplog.text, captured.out, captured.err):
        assert admin_key not in text
        assert "sl_nope" not in text
        assert "Bearer" not in text


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREETLIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("STREETLIGHT_DATABASE__URL", raising=False)
    monkeypatch.delenv("STREETLIGHT_ADMIN_KEY", raising=False)
    return tmp_path


def test_apikey_create_prints_the_key_once_on_stdout_and_logs_nothing(
    cli_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    created = runner.invoke(cli_app, ["apikey", "create", "--role", "admin", "--name", "ops"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert re.fullmatch(r"sl_[A-Za-z0-9_-]{43}", key)
    assert created.stdout.count(key) == 1
    assert key not in created.stderr
    listed = runner.invoke(cli_app, ["apikey", "list"])
    assert listed.exit_code == 0
    assert key[:10] in listed.stdout  # the prefix that identifies it, not the key
    assert key not in listed.stdout
    assert key not in caplog.text
    assert all(key not in str(r.args) for r in caplog.records)
