"""Test receivers: a webhook endpoint on loopback and an MQTT alert subscriber."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from controller.alerts.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from controller.app.settings import MqttSettings
from tests.conftest import free_port


@dataclass
class WebhookReceiver:
    """Records every POST; refuses bad signatures with 401 (and counts them)."""

    secret: str
    port: int = field(default_factory=free_port)
    received: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    bad_signatures: int = 0
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
        return Response(status_code=204)

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
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = None
        self._task = None


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
