"""Test receivers: a webhook endpoint and an SMTP server on loopback, an MQTT alert subscriber."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Self

import aiomqtt
import uvicorn
from aiosmtpd.controller import Controller as SmtpController
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from controller.alerts.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from controller.config.settings import MqttSettings
from tests.conftest import free_port


@dataclass
class WebhookReceiver:
    """Records every POST; refuses bad signatures with 401 (and counts them).

    ``hold``: a valid request is recorded (``arrived`` is set), then left unanswered until
    :meth:`release`, as a slow receiver would: the sender is between delivery and its answer.
    """

    secret: str
    port: int = field(default_factory=free_port)
    received: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    hold: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        ok = verify(
            body,
            self.secret,
            signature=request.headers.get(SIGNATURE_HEADER, ""),
            timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
            now_s=time.time(),
        )
        if not ok:
            self.bad_signatures += 1
            return Response(status_code=401)
        self.keys.append(request.headers.get(IDEMPOTENCY_HEADER, ""))
        self.received.append(json.loads(body))
        self.arrived.set()
        if self.hold:
            await self._released.wait()
        return Response(status_code=204)

    def release(self) -> None:
        """Answer the held requests, and every later one at once."""
        self.hold = False
        self._released.set()

    async def start(self) -> None:
        app = Starlette(routes=[Route("/alerts", self._handle, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[sock]), name="webhook-receiver"
        )

    async def stop(self) -> None:
        self.release()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = None
        self._task = None


@dataclass(frozen=True, slots=True)
class Mail:
    """One e-mail as the SMTP server received it, and when (unix seconds)."""

    message: EmailMessage
    received_at: float

    @property
    def text(self) -> str:
        body = self.message.get_body()
        assert body is not None
        return str(body.get_content())


class SmtpInbox:
    """A real SMTP server on loopback (aiosmtpd, in its own thread) that keeps every e-mail."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mails: list[Mail] = []
        self._server = SmtpController(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append(Mail(message, time.time()))
        return "250 OK"

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.mails if address in str(m.message["To"])]

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


@dataclass
class AlertSubscriber:
    """Collects alerts published on ``{prefix}/alerts/#``."""

    settings: MqttSettings
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        async with aiomqtt.Client(
            self.settings.host, self.settings.port, identifier=f"alerts-{self.settings.prefix}"
        ) as client:
            await client.subscribe(f"{self.settings.prefix}/alerts/#", qos=1)
            self.ready.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                self.received.append((str(message.topic), json.loads(message.payload)))


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Wait until ``check()`` holds, looking every 0.2 s; fail with ``what`` after the timeout."""
    for _ in range(int(timeout_s / 0.2) + 1):
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def bundle_of(gateways: list[dict[str, Any]], sizes: dict[str, int]) -> dict[str, Any]:
    """An import bundle: ``sizes[gateway]`` luminaires (LED 100 W, Lê Duẩn) on each gateway,
    addressed from 0, in the gateway's ward."""
    wards = {g["name"]: g["ward"] for g in gateways}
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [107.1 + a * 1e-4, 16.81 + i * 1e-3]},
            "properties": {
                "name": f"{gw}-{a:02d}",
                "gateway": gw,
                "address": a,
                "lamp_type": "LED 100 W",
                "street": "Lê Duẩn",
                "ward": wards[gw],
            },
        }
        for i, (gw, n) in enumerate(sizes.items())
        for a in range(n)
    ]
    return {
        "type": "FeatureCollection",
        "lamp_types": [{"name": "LED 100 W", "rated_power_w": 100}],
        "gateways": gateways,
        "features": features,
    }
