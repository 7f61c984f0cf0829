"""Integration fixtures: a real MQTT broker on a free loopback port.

``mqtt_broker`` is a :class:`MqttBroker`: ``host``, ``port``, ``settings(prefix, ...)``
and ``await stop() / start() / restart()`` (same port, persistent sessions kept, for
broker-restart tests). One broker process serves the whole session; each test gets
it running (a test that stopped it does not break the next) and isolates itself
with a unique topic prefix (``mqtt_prefix``) and client ids.

The broker is the ``mosquitto`` binary with a temporary config: loopback listener,
anonymous access, ``max_queued_messages 0`` (the default 1000 silently drops QoS 1
messages for a subscriber that falls behind) and persistence on in a temporary
directory, so a restart keeps sessions and their queued messages.

Only when ``mosquitto`` is missing and ``CI`` is not set does it fall back to an
amqtt 0.12.1 broker run in its own thread and event loop: MQTT 3.1.1 only, and no
sessions across a restart, so the tests that need MQTT 5 or persistence skip on it
(``broker.require(...)``). ``STREETLIGHT_TEST_BROKER=amqtt`` forces that fallback
outside CI. In CI a missing mosquitto fails the tests (``require_service``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import pytest

from controller.config.settings import MqttSettings
from controller.core.values import Address
from fake_luminaires.model import FakeGateway
from tests.conftest import IN_CI, find_mosquitto, free_port, require_service

MqttVersion = Literal["3.1.1", "5"]

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


class MqttBroker:
    """A broker the tests can stop and restart on the same port."""

    kind: Literal["mosquitto", "amqtt"]
    protocols: frozenset[str]
    """MQTT versions it speaks: ``"3.1.1"``, ``"5"``."""
    persistent: bool
    """Whether sessions (subscriptions, queued QoS 1 messages) survive ``restart()``."""

    def __init__(self, port: int) -> None:
        self.host = HOST
        self.port = port

    def settings(
        self,
        prefix: str,
        *,
        protocol: MqttVersion | None = None,
        client_id: str | None = None,
        **overrides: Any,
    ) -> MqttSettings:
        """``MqttSettings`` for this broker: MQTT 5 unless it speaks only 3.1.1, and a client
        id unique to ``prefix``."""
        return MqttSettings(
            host=self.host,
            port=self.port,
            prefix=prefix,
            protocol=protocol or ("5" if "5" in self.protocols else "3.1.1"),
            client_id=client_id or f"ctl-{prefix}",
            **overrides,
        )

    def require(self, *, protocol: str | None = None, persistent: bool = False) -> None:
        """Skip what this broker cannot do; in CI (where mosquitto is required) fail instead."""
        if protocol is not None and protocol not in self.protocols:
            require_service(f"an MQTT {protocol} broker", f"{self.kind} does not speak it")
        if persistent and not self.persistent:
            require_service(
                "a broker with persistent sessions", f"{self.kind} forgets them on restart"
            )

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def start_sync(self) -> None:
        raise NotImplementedError

    def stop_sync(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)

    async def restart(self, *, forget_sessions: bool = False) -> None:
        """Stop and start on the same port; ``forget_sessions`` wipes what it persisted."""
        await self.stop()
        if forget_sessions:
            self.forget_sessions()
        await self.start()

    def forget_sessions(self) -> None:
        """Drop persisted sessions and retained messages (the broker must be stopped)."""

    def __repr__(self) -> str:
        return f"<{self.kind} broker {self.host}:{self.port}>"


class MosquittoBroker(MqttBroker):
    kind = "mosquitto"
    protocols = frozenset({"3.1.1", "5"})
    persistent = True

    def __init__(self, binary: str, workdir: Path) -> None:
        super().__init__(free_port())
        self.binary = binary
        self.workdir = workdir
        self.log_file = workdir / "mosquitto.log"
        self.config_file = workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            "max_queued_messages 0",
            "persistence true",
            f"persistence_location {workdir}/",
            "persistence_file mosquitto.db",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', who cannot write here
        self.config_file.write_text("\n".join(lines) + "\n")
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start_sync(self) -> None:
        with self._lock:
            if self.running:
                return
            with (self.workdir / "mosquitto.stderr").open("ab") as stderr:
                self._process = subprocess.Popen(
                    [self.binary, "-c", str(self.config_file)],
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                )
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _port_open(self.port):
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"mosquitto exited with {self._process.returncode}; see {self.log_file}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not listen on {self.port}")
                time.sleep(0.01)

    def forget_sessions(self) -> None:
        if self.running:
            raise RuntimeError("stop the broker before forgetting its sessions")
        (self.workdir / "mosquitto.db").unlink(missing_ok=True)

    def stop_sync(self) -> None:
        with self._lock:
            process, self._process = self._process, None
            if process is None or process.poll() is not None:
                return
            process.send_signal(signal.SIGTERM)  # saves the persistence file on the way out
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class AmqttBroker(MqttBroker):
    """amqtt in its own thread and event loop, so it behaves like a separate server."""

    kind = "amqtt"
    protocols = frozenset({"3.1.1"})
    persistent = False

    def __init__(self) -> None:
        super().__init__(free_port())
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start_sync(self) -> None:
        with self._lock:
            if self.running:
                return
            ready = threading.Event()
            failure: list[BaseException] = []
            self._thread = threading.Thread(
                target=self._serve, args=(ready, failure), name="amqtt-broker", daemon=True
            )
            self._thread.start()
            if not ready.wait(START_TIMEOUT_S) or failure:
                raise RuntimeError(f"amqtt broker did not start: {failure}")

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        async def main() -> None:
            from amqtt.broker import Broker

            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            broker = Broker(
                {
                    "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{self.port}"}},
                    "plugins": {
                        "amqtt.plugins.authentication.AnonymousAuthPlugin": {
                            "allow_anonymous": True
                        }
                    },
                }
            )
            try:
                await broker.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                raise
            ready.set()
            await self._stop.wait()
            await broker.shutdown()

        asyncio.run(main())

    def stop_sync(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            if self._loop is not None and self._stop is not None:
                self._loop.call_soon_threadsafe(self._stop.set)
            thread.join(timeout=10)


def _make_broker(workdir: Path) -> MqttBroker:
    forced = os.environ.get("STREETLIGHT_TEST_BROKER", "").lower()
    binary = find_mosquitto()
    if forced == "amqtt" and not IN_CI:
        return AmqttBroker()
    if binary is not None:
        return MosquittoBroker(binary, workdir)
    if IN_CI:
        require_service("mosquitto", "binary not found (apt-get install mosquitto)")
    return AmqttBroker()


@pytest.fixture(scope="session")
def _mqtt_broker_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttBroker]:
    broker = _make_broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start_sync()
    try:
        yield broker
    finally:
        broker.stop_sync()


@pytest.fixture
def mqtt_broker(_mqtt_broker_session: MqttBroker) -> MqttBroker:
    """The session's broker, running (restarted here if an earlier test left it stopped).

    The amqtt fallback is restarted for every test: its state from earlier tests
    trips its bugs (0.12.1 sends a connecting client the retained messages of every
    subscription on the broker, and that loop can fail with "dictionary changed
    size during iteration" when clients connect at once).
    """
    broker = _mqtt_broker_session
    if broker.kind == "amqtt":
        broker.stop_sync()
    if not broker.running:
        broker.start_sync()
    return broker


@pytest.fixture
def mqtt_prefix() -> str:
    """A topic prefix no other test uses."""
    return f"st-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["3.1.1", "5"])
def mqtt_protocol(request: pytest.FixtureRequest, mqtt_broker: MqttBroker) -> MqttVersion:
    """Both MQTT versions; MQTT 5 skips (outside CI) on the amqtt fallback."""
    protocol: MqttVersion = request.param
    mqtt_broker.require(protocol=protocol)
    return protocol


Stamp = TypeVar("Stamp")


@dataclass
class CommandLog(Generic[Stamp]):
    """Every level each fake luminaire accepted: (gateway, address) -> [(stamp, level)].

    ``stamp`` turns the fake's instant of the command into what a test compares (the
    simulated instant itself, or the real monotonic time it arrived)."""

    stamp: Callable[[datetime], Stamp]
    seen: dict[tuple[str, int], list[tuple[Stamp, int]]] = field(default_factory=dict)

    def wrap(self, model: FakeGateway, name: str) -> None:
        original = model.command

        def command(
            levels: Mapping[Address, int], at: datetime, fade_s: float = 0.0
        ) -> dict[Address, str]:
            rejected = original(levels, at, fade_s)
            for address, level in levels.items():
                if address not in rejected:
                    self.seen.setdefault((name, int(address)), []).append(
                        (self.stamp(at), int(level))
                    )
            return rejected

        model.command = command  # type: ignore[method-assign]
