"""/docs and /redoc work on a closed network: every file they load is served by the app.

FastAPI's own pages load Swagger UI and ReDoc from cdn.jsdelivr.net (and a favicon from
fastapi.tiangolo.com, fonts from Google); api/app.py serves the files that the
``fastapi-offline`` package ships, under ``/docs-assets``, and api/security.py gives the two
pages a policy that allows exactly what they load, from the app's own origin only.

The browser tests at the end open the pages in Debian's Chromium with every request that is
not to the app's loopback address refused, as on the operations centre's network.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from api.app import DOCS_ASSETS, create_app
from controller.config.settings import Settings
from controller.store.db import Database
from tests.browser.conftest import CHROMIUM_FLAGS, chromium_path
from tests.conftest import free_port

if TYPE_CHECKING:
    from playwright.async_api import Page, Route

PAGES = ("/docs", "/redoc")
ORDINARY_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""The policy of every other path, as it was before the docs were served by the app."""
KEYWORD_SOURCES = {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}


class _Page(HTMLParser):
    """The URLs a page loads (scripts, style sheets, icons) and its inline scripts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._script: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "script":
            if a.get("src"):
                self.urls.append(a["src"])
            else:
                self._script = ""
        elif tag == "link" and a.get("href"):
            self.urls.append(a["href"])
        elif tag in {"img", "iframe", "embed"} and a.get("src"):
            self.urls.append(a["src"])

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.inline_scripts.append(self._script)
            self._script = None


def directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def sha256_source(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


# --- over HTTP ------------------------------------------------------------------------------


async def test_the_docs_pages_load_only_the_apps_own_files(client: httpx.AsyncClient) -> None:
    for path in PAGES:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "cdn.jsdelivr.net" not in html
        assert "fonts.googleapis.com" not in html
        assert "fastapi.tiangolo.com" not in html
        assert "http://" not in html and "https://" not in html, path
        page = _Page(html)
        assert page.urls, path
        for url in page.urls:
            parts = urlsplit(url)
            assert (parts.scheme, parts.netloc) == ("", ""), f"{path} loads {url}"
            assert url.startswith("/docs-assets/"), f"{path} loads {url}"
        assert "/openapi.json" in html


async def test_every_file_the_pages_load_is_served(client: httpx.AsyncClient) -> None:
    urls = set()
    for path in PAGES:
        urls |= set(_Page((await client.get(path)).text).urls)
    assert {u.rsplit("/", 1)[1] for u in urls} == {
        "swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png",
    }  # fmt: skip
    for url in sorted(urls):
        response = await client.get(url)
        assert response.status_code == 200, url
        suffix = Path(url).suffix
        content_type = response.headers["content-type"].split(";")[0].strip()
        assert content_type in CONTENT_TYPES[suffix], (url, content_type)
        assert len(response.content) > (1_000 if suffix == ".png" else 100_000), url
        assert response.content == (DOCS_ASSETS / Path(url).name).read_bytes()
        # a plain file: the strict policy and nosniff, as on every other path
        assert response.headers["content-security-policy"] == ORDINARY_CSP
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_docs_policy_allows_what_the_pages_need_and_no_other_origin(
    client: httpx.AsyncClient,
) -> None:
    for path in (*PAGES, "/docs/oauth2-redirect"):
        response = await client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        d = directives(csp)
        page = _Page(response.text)
        # the files: same origin
        for directive in ("script-src", "style-src", "img-src", "connect-src"):
            assert "'self'" in d[directive], (path, directive)
        # each inline script by its hash; nothing inline beyond those, and no eval
        assert page.inline_scripts or path == "/redoc"
        for script in page.inline_scripts:
            assert sha256_source(script) in d["script-src"], path
        assert "'unsafe-inline'" not in d["script-src"]
        assert "'unsafe-eval'" not in csp
        # no remote origin anywhere: only keywords, 'self', data:, blob: and the hashes
        for sources in d.values():
            for source in sources:
                assert source in KEYWORD_SOURCES or source.startswith("'sha256-"), (path, source)
        assert "://" not in csp
        assert d["frame-ancestors"] == ["'none'"]
        assert d["object-src"] == ["'none'"]


async def test_an_ordinary_route_keeps_the_strict_policy(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/health", "/openapi.json", "/docs-assets/swagger-ui-bundle.js"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == ORDINARY_CSP, path


async def test_the_docs_pages_are_not_in_the_schema(client: httpx.AsyncClient) -> None:
    paths = set((await client.get("/openapi.json")).json()["paths"])
    assert not {p for p in paths if p.startswith(("/docs", "/redoc"))}


async def test_behind_a_root_path_the_pages_load_their_files_under_it(
    settings: Settings, sqlite_db: Database
) -> None:
    """A reverse proxy that mounts the API under /streetlight (uvicorn ``--root-path``): the
    pages' URLs carry the prefix, and the docs' policy still applies."""
    app = create_app(settings, sqlite_db)
    transport = httpx.ASGITransport(app=app, root_path="/streetlight")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        for path in PAGES:
            response = await c.get(f"/streetlight{path}")
            assert response.status_code == 200, path
            page = _Page(response.text)
            assert all(u.startswith("/streetlight/docs-assets/") for u in page.urls), page.urls
            assert "'/streetlight/openapi.json'" in response.text or (
                'spec-url="/streetlight/openapi.json"' in response.text
            )
            for script in page.inline_scripts:
                assert sha256_source(script) in response.headers["content-security-policy"]
            for url in page.urls:
                assert (await c.get(url)).status_code == 200, url
        assert "/streetlight/docs/oauth2-redirect" in (await c.get("/streetlight/docs")).text


# --- in a browser, with only the app reachable ---------------------------------------------


@contextlib.asynccontextmanager
async def serving(settings: Settings, db: Database) -> AsyncIterator[str]:
    """The app behind uvicorn on a free loopback port."""
    port = free_port()
    app = create_app(settings, db)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve(), name="uvicorn-docs")
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def offline_page(
    base_url: str, elsewhere: list[str], console: list[str]
) -> AsyncIterator[Page]:
    """A Chromium page that reaches only ``base_url``: any other request is refused and
    recorded in ``elsewhere``; console errors and page errors go to ``console``."""
    path = chromium_path()
    from playwright.async_api import async_playwright

    async def only_the_app(route: Route) -> None:
        if route.request.url.startswith(f"{base_url}/"):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort("internetdisconnected")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=path, headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            context = await browser.new_context(base_url=base_url)
            await context.route("**/*", only_the_app)
            page = await context.new_page()
            page.set_default_timeout(15_000)
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(f"page error: {e}"))
            yield page
        finally:
            await browser.close()


@pytest.mark.slow
async def test_swagger_ui_renders_the_operations_offline(
    settings: Settings, sqlite_db: Database
) -> None:
    elsewhere: list[str] = []
    console: list[str] = []
    async with (
        serving(settings, sqlite_db) as base,
        offline_page(base, elsewhere, console) as page,
    ):
        await page.goto("/docs")
        await page.wait_for_selector(".opblock")
        operations = await page.locator(".opblock").count()
        async with httpx.AsyncClient(base_url=base) as http:
            schema = (await http.get("/openapi.json")).json()
        expected = sum(
            1 for item in schema["paths"].values() for method in item if method != "parameters"
        )
        assert operations == expected
        assert await page.locator(".swagger-ui .info .title").inner_text() != ""
    assert elsewhere == []
    assert console == []  # no CSP violation, no script error


@pytest.mark.slow
async def test_redoc_renders_offline(settings: Settings, sqlite_db: Database) -> None:
    elsewhere: list[str] = []
    console: list[str] = []
    async with (
        serving(settings, sqlite_db) as base,
        offline_page(base, elsewhere, console) as page,
    ):
        await page.goto("/redoc")
        await page.wait_for_selector(".api-content h2")
        assert await page.locator("[role=menuitem]").count() > 10
    assert elsewhere == []
    # ReDoc's "API docs by Redocly" badge wants its logo from Redocly's CDN: the policy
    # blocks it before any request is made (so ``elsewhere`` stays empty); nothing else.
    assert [m for m in console if "cdn.redoc.ly/redoc/logo-mini.svg" not in m] == []
