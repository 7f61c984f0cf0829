"""Webhook signing, retry schedule, and delivery against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.alerts.webhook import (
    IDEMPOTENCY_HEADER,
    MAX_ATTEMPTS,
    REPLAY_WINDOW_S,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryResult,
    backoff_s,
    classify_status,
    deliver,
    retry_delay_s,
    sign,
    signed_headers,
    verify,
)
from tests.conftest import free_port

SECRET = "s3cr3t-đông-hà"
BODY = json.dumps(
    {"type": "lampFailure", "message_vi": "Đèn không sáng"}, ensure_ascii=False
).encode()
TS = 1_782_041_520  # 2026-06-21T11:32:00Z


# --- signing ---------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_hex() -> None:
    # RFC 4231, test case 2
    assert sign(b"what do ya want for nothing?", "Jefe") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_the_header_signature_covers_timestamp_and_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, SECRET, TS) == expected
    headers = signed_headers(BODY, SECRET, timestamp_s=TS, idempotency_key="k1")
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert headers[TIMESTAMP_HEADER] == str(TS)
    assert headers[IDEMPOTENCY_HEADER] == "k1"
    assert headers["Content-Type"] == "application/json; charset=utf-8"


def _headers() -> dict[str, str]:
    return signed_headers(BODY, SECRET, timestamp_s=TS, idempotency_key="k1")


@pytest.mark.parametrize(
    ("body", "secret", "signature", "timestamp", "now_s", "ok"),
    [
        (BODY, SECRET, None, None, TS, True),
        (BODY, SECRET, None, None, TS + REPLAY_WINDOW_S, True),  # the edge of the window
        (BODY, SECRET, None, None, TS - REPLAY_WINDOW_S, True),
        (BODY, SECRET, None, None, TS + REPLAY_WINDOW_S + 1, False),  # a replay
        (BODY + b" ", SECRET, None, None, TS, False),  # tampered body
        (BODY, "other", None, None, TS, False),
        (BODY, SECRET, None, str(TS + 1), TS, False),  # a fresh timestamp on an old signature
        (BODY, SECRET, "md5=abc", None, TS, False),
        (BODY, SECRET, None, "yesterday", TS, False),
    ],
)
def test_verify(
    body: bytes, secret: str, signature: str | None, timestamp: str | None, now_s: float, ok: bool
) -> None:
    h = _headers()
    assert (
        verify(
            body,
            secret,
            signature=signature or h[SIGNATURE_HEADER],
            timestamp=timestamp or h[TIMESTAMP_HEADER],
            now_s=now_s,
        )
        is ok
    )


# --- retry schedule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 7.5, 10.0), (2, 15.0, 20.0), (3, 30.0, 40.0), (9, 1920.0, 2560.0), (10, 2700.0, 3600.0)],
)
def test_backoff_is_exponential_with_bounded_jitter(attempt: int, low: float, high: float) -> None:
    assert low <= backoff_s(attempt, "k") <= high


@given(st.integers(1, 10_000), st.text(max_size=20))
def test_backoff_is_deterministic_and_capped(attempt: int, key: str) -> None:
    delay = backoff_s(attempt, key)
    assert delay == backoff_s(attempt, key)
    assert 0.75 * min(3600.0, 10.0 * 2.0 ** min(attempt - 1, 20)) <= delay <= 3600.0


def test_backoff_jitter_spreads_keys() -> None:
    delays = {backoff_s(3, f"alert-{i}") for i in range(50)}
    assert len(delays) > 40


@pytest.mark.parametrize(
    "kwargs", [{"attempt": 0}, {"attempt": 1, "jitter": 1.0}, {"attempt": 1, "base_s": 0.0}]
)
def test_backoff_refuses_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"attempt|base_s"):
        backoff_s(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [
        (200, True, False), (202, True, False), (204, True, False),
        (301, False, False), (400, False, False), (401, False, False), (404, False, False),
        (408, False, True), (409, False, True), (429, False, True),
        (500, False, True), (502, False, True), (503, False, True),
    ],
)  # fmt: skip
def test_classify_status(status: int, ok: bool, retryable: bool) -> None:
    assert classify_status(status) == (ok, retryable)


def test_retry_delay() -> None:
    failed = DeliveryResult(False, 503, "HTTP 503", retryable=True)
    assert retry_delay_s(failed, 1, "k") == backoff_s(1, "k")
    assert retry_delay_s(failed, MAX_ATTEMPTS, "k") is None
    assert retry_delay_s(DeliveryResult(True, 200, None, False), 1) is None
    assert retry_delay_s(DeliveryResult(False, 404, "HTTP 404", False), 1) is None
    slow = DeliveryResult(False, 429, "HTTP 429", retryable=True, retry_after_s=600.0)
    assert retry_delay_s(slow, 1, "k") == 600.0


# --- delivery against a real server ----------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A tiny HTTP/1.1 server on loopback: records requests, answers what ``respond`` says."""

    respond: Callable[[Received], tuple[int, dict[str, str]]] = lambda r: (200, {})
    hang: bool = False
    received: list[Received] = field(default_factory=list)
    handlers: set[asyncio.Task[Any]] = field(default_factory=set)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/streetlight"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = Received(method, path, headers, body)
            self.received.append(request)
            if self.hang:
                await reader.read()  # until the client gives up and closes
                return
            status, extra = self.respond(request)
            lines_out = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Content-Length: 0"]
            lines_out += [f"{k}: {v}" for k, v in extra.items()]
            lines_out.append("Connection: close")
            writer.write(("\r\n".join(lines_out) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(server: Server) -> AsyncIterator[Server]:
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = srv.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        srv.close()
        await srv.wait_closed()
        pending = {t for t in server.handlers if not t.done()}
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        for task in pending:
            task.cancel()


async def post(url: str, *, timeout_s: float = 5.0) -> DeliveryResult:
    async with httpx.AsyncClient() as client:
        return await deliver(
            client, url, BODY, SECRET, timestamp_s=TS, idempotency_key="idem-1", timeout_s=timeout_s
        )


async def test_delivered_and_verifiable_by_the_receiver() -> None:
    async with serving(Server()) as server:
        result = await post(server.url)
    assert result == DeliveryResult(True, 200, None, retryable=False)
    [request] = server.received
    assert (request.method, request.path, request.body) == ("POST", "/hooks/streetlight", BODY)
    assert request.headers["idempotency-key"] == "idem-1"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert verify(
        request.body,
        SECRET,
        signature=request.headers["x-streetlight-signature"],
        timestamp=request.headers["x-streetlight-timestamp"],
        now_s=TS + 2,
    )


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (404, False), (401, False), (302, False)]
)
async def test_http_failures_are_results(status: int, retryable: bool) -> None:
    extra = {"Location": "http://elsewhere.invalid/"} if status == 302 else {}
    async with serving(Server(respond=lambda r: (status, extra))) as server:
        result = await post(server.url)
    assert (result.ok, result.status, result.retryable) == (False, status, retryable)
    assert result.error is not None and str(status) in result.error
    assert len(server.received) == 1  # a redirect is not followed


@pytest.mark.parametrize(
    ("retry_after", "seconds"),
    [
        ("120", 120.0),
        (
            format_datetime(datetime.fromtimestamp(TS, UTC) + timedelta(seconds=90), usegmt=True),
            90.0,
        ),
        ("soon", None),
    ],
)
async def test_retry_after_is_reported(retry_after: str, seconds: float | None) -> None:
    async with serving(Server(respond=lambda r: (429, {"Retry-After": retry_after}))) as server:
        result = await post(server.url)
    assert (result.status, result.retryable, result.retry_after_s) == (429, True, seconds)


async def test_connection_refused_is_retryable() -> None:
    port = free_port()  # nobody listens there
    result = await post(f"http://127.0.0.1:{port}/hook")
    assert (result.ok, result.status, result.retryable) == (False, None, True)
    assert result.error


async def test_a_receiver_that_does_not_answer_times_out() -> None:
    async with serving(Server(hang=True)) as server:
        result = await post(server.url, timeout_s=0.3)
    assert (result.ok, result.status, result.retryable) == (False, None, True)
    assert result.error is not None and "timeout" in result.error.lower()


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "http://", "not a url"])
async def test_a_bad_url_is_a_permanent_failure(url: str) -> None:
    result = await post(url)
    assert (result.ok, result.retryable) == (False, False)
    assert result.error is not None and "URL" in result.error
