"""HTTP hardening: security headers on every response, and failed authentication rate-limited.

``install_security(app, settings)`` adds one pure ASGI middleware, outermost, so its headers
are on every response the application gives: routes, errors, CORS preflights, the
dashboard, ``/docs``. A response that sets one of these headers itself keeps its own (the
dashboard's pages set a Content-Security-Policy that allows their map-tile server). An
unhandled exception's bare 500 comes from Starlette's own outermost error middleware and
carries none.

**Content-Security-Policy.** By default everything from the API's own origin, no inline
script, no framing (``security.content_security_policy`` replaces it). The docs pages
(``/docs``, ``/redoc``, Swagger UI's OAuth2 redirect) get their own, :data:`DOCS_CSP`: still
nothing from another origin (the app serves Swagger UI's and ReDoc's files itself, under
``/docs-assets``, so the pages work on a closed network), the page's one inline script
allowed by its SHA-256, not by ``'unsafe-inline'``, and inline styles.

**Failed authentication.** A request that presents credentials (an ``Authorization``
header, or a POST of the dashboard's sign-in form, :data:`LOGIN_PATHS`) and gets 401 counts
as a failure of its client address. After
``security.auth_failures_per_minute`` failures within 60 s, that address's requests that
present credentials get 429 with ``Retry-After`` (seconds until the oldest failure leaves
the window), without reaching the application, so guessing goes no faster than the limit.
Requests without credentials (``/health``, ``/docs``, the dashboard's pages) still pass, and
a request without a key is not a guess, so its 401 does not count. Successful requests never
count. While an address is limited, a right key from it is refused too: letting it through
would tell a guesser which of its guesses was right.

The client address is the ASGI ``client``: behind a reverse proxy, uvicorn replaces it with
the proxy's ``X-Forwarded-For`` when the proxy is in ``FORWARDED_ALLOW_IPS`` (default
loopback), so every client behind the proxy is not one address (docs/operations.md).

Memory is bounded: at most ``limit`` timestamps per address and
``security.auth_tracked_addresses`` addresses (least recently failed forgotten first).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from fastapi import FastAPI

from controller.config.settings import SecuritySettings, Settings

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WINDOW_S = 60.0

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""Everything from the API's own origin; no inline script, no framing."""

LOGIN_PATHS = frozenset({"/login"})
"""Where a POST carries a key in a form (the dashboard's sign-in): credentials, like an
``Authorization`` header."""

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL | re.IGNORECASE)


class FailureWindow:
    """Failed authentications per client address in a sliding window; bounded memory.

    Time is an argument (monotonic seconds), so the window is tested without waiting.
    """

    def __init__(self, limit: int, *, window_s: float = WINDOW_S, max_addresses: int) -> None:
        if limit < 1 or window_s <= 0 or max_addresses < 1:
            raise ValueError("need limit >= 1, window_s > 0 and max_addresses >= 1")
        self.limit = limit
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """Addresses remembered."""
        return len(self._failures)

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def retry_after_s(self, address: str, now: float) -> float | None:
        """Seconds until ``address`` may try again, or ``None`` if it is not limited."""
        times = self._recent(address, now)
        if times is None or len(times) < self.limit:
            return None
        return times[0] + self.window_s - now

    def record_failure(self, address: str, now: float) -> bool:
        """Count a failure; True when this one reached the limit (the moment to log)."""
        times = self._recent(address, now)
        if times is None:
            times = self._failures[address] = deque(maxlen=self.limit)
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(address)
        times.append(now)
        return len(times) == self.limit


def csp_with_script_hashes(base: str, html: bytes) -> str:
    """``base`` with ``'sha256-...'`` sources for each inline ``<script>`` of ``html``.

    Swagger UI's page starts the UI with one inline script; allowing exactly that script by
    its hash keeps ``'unsafe-inline'`` out of the policy.
    """
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    ]
    if not hashes:
        return base
    return base.replace("script-src ", "script-src " + " ".join(hashes) + " ", 1)


DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
"""The policy of the interactive docs pages, before their inline scripts' hashes are added.

Why not :data:`DEFAULT_CSP` there: Swagger UI's page starts the UI with one inline script,
which :func:`csp_with_script_hashes` allows by its SHA-256 per response (exactly that script:
no ``'unsafe-inline'`` and no ``'unsafe-eval'`` for scripts, so an injected script still does
not run). Swagger UI and ReDoc style their elements at run time (``style`` attributes, ReDoc's
``<style>`` elements), hence ``'unsafe-inline'`` for styles only; ReDoc's search runs in a
``blob:`` worker. No remote origin anywhere: the pages' script, style sheet and favicon come
from the app itself (``/docs-assets``, api/app.py), and ReDoc's Google Fonts are not asked for.
Every other path keeps the strict default."""


def security_headers(settings: SecuritySettings, csp: str) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"geolocation=(), camera=(), microphone=()"),
        (b"content-security-policy", csp.encode("latin-1")),
    ]
    if settings.hsts:
        value = f"max-age={settings.hsts_max_age_s}; includeSubDomains"
        headers.append((b"strict-transport-security", value.encode()))
    return headers


def _presents_credentials(scope: Scope) -> bool:
    if scope.get("method") == "POST" and scope.get("path") in LOGIN_PATHS:
        return True
    return any(name.lower() == b"authorization" for name, _ in scope.get("headers", ()))


def _route_path(scope: Scope) -> str:
    """The path without the ``root_path`` a server mounted the app under (uvicorn's
    ``--root-path`` puts it in front of ``path``), as the app's routes see it."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


def _merge(existing: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]) -> list[Any]:
    """``existing`` plus each of ``extra`` whose name it does not have (a route's own wins)."""
    names = {name.lower() for name, _ in existing}
    return [*existing, *((n, v) for n, v in extra if n not in names)]


class SecurityMiddleware:
    """Security headers on every response; 429 for an address that failed authentication
    too often (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: SecuritySettings,
        docs_paths: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.settings = settings
        self.docs_paths = docs_paths
        self.clock = clock
        self.failures = FailureWindow(
            settings.auth_failures_per_minute, max_addresses=settings.auth_tracked_addresses
        )
        self._csp = settings.content_security_policy or DEFAULT_CSP

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        presented = _presents_credentials(scope)
        if presented:
            retry_after = self.failures.retry_after_s(address, self.clock())
            if retry_after is not None:
                await self._too_many(send, retry_after)
                return
        if _route_path(scope) in self.docs_paths:
            await self.app(scope, receive, self._docs_sender(send))
            return
        extra = security_headers(self.settings, self._csp)
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                if presented and message["status"] == 401:
                    self._failed(address)
                message["headers"] = _merge(list(message.get("headers", [])), extra)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _failed(self, address: str) -> None:
        if self.failures.record_failure(address, self.clock()):
            log.warning(
                "API: %d failed authentications from %s within %.0f s; its credentials are "
                "refused (429) until the oldest leaves the window",
                self.failures.limit,
                address,
                self.failures.window_s,
            )

    def _docs_sender(self, send: Send) -> Send:
        """Hold the docs page until its end, then allow its inline script by hash."""
        start: Message | None = None
        body = bytearray()

        async def send_docs(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            csp = csp_with_script_hashes(DOCS_CSP, bytes(body))
            start["headers"] = _merge(
                list(start.get("headers", [])), security_headers(self.settings, csp)
            )
            await send(start)
            await send({"type": "http.response.body", "body": bytes(body)})

        return send_docs

    async def _too_many(self, send: Send, retry_after_s: float) -> None:
        seconds = max(1, math.ceil(retry_after_s))
        body = json.dumps(
            {
                "error": "too_many_requests",
                "message": f"too many failed authentications from this address; retry in "
                f"{seconds} s",
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(seconds).encode()),
            (b"cache-control", b"no-store"),
            *security_headers(self.settings, self._csp),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def install_security(app: FastAPI, settings: Settings, *, docs_paths: Iterable[str] = ()) -> None:
    """Add :class:`SecurityMiddleware` as the outermost middleware of ``app``.

    Call it after every other ``add_middleware`` (CORS included) so that it stays outermost.
    ``docs_paths`` are the app's own docs pages (api/app.py serves them itself, with FastAPI's
    ``docs_url`` and ``redoc_url`` off); FastAPI's, if on, count too. They get
    :data:`DOCS_CSP`.
    """
    docs = set(docs_paths) | {p for p in (app.docs_url, app.redoc_url) if p}
    if app.docs_url and app.swagger_ui_oauth2_redirect_url:
        docs.add(app.swagger_ui_oauth2_redirect_url)
    app.add_middleware(
        SecurityMiddleware,
        settings=settings.security,
        docs_paths=frozenset(docs),
    )
