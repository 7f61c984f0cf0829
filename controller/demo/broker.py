"""A local MQTT broker for the demo: mosquitto when installed, else amqtt in a child process.

Production uses an external broker (a Mosquitto or EMQX cluster) from the settings.
mosquitto gets ``max_queued_messages 0``: its default of 1,000 silently drops QoS 1
messages to a subscriber that falls behind. Run as root, it is told to stay root
(``user root``): dropping to the ``mosquitto`` user would clear the PR_SET_PDEATHSIG that
stops it when the demo is killed (:mod:`controller.demo.children`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from controller.core.errors import ConfigError
from controller.demo.children import spawn, stop_child

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


@dataclass(frozen=True, slots=True)
class Broker:
    host: str
    port: int
    kind: str  # "mosquitto" or "amqtt"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the demo, the benchmarks and the tests use this one)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str | None:
    """The mosquitto binary: on the PATH, or where Debian and a source build put it."""
    return shutil.which("mosquitto") or next(
        (p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None
    )


async def wait_listening(host: str, port: int, proc: asyncio.subprocess.Process) -> None:
    """Return once ``proc`` accepts connections on ``host:port``; ConfigError if it never does."""
    for _ in range(200):
        if proc.returncode is not None:
            raise ConfigError(f"the local MQTT broker exited with code {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()
        return
    raise ConfigError(f"the local MQTT broker did not listen on {host}:{port}")


def _command(data_dir: Path, host: str, port: int, prefer: str) -> tuple[list[str], str]:
    """The broker's command line (writing mosquitto's config file when it is used)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    binary = find_mosquitto() if prefer == "mosquitto" else None
    if binary is None:
        return [
            sys.executable, "-m", "controller.demo.embedded_broker", host, str(port), "--lifeline"
        ], "amqtt"  # fmt: skip
    store = data_dir / "mosquitto"
    store.mkdir(exist_ok=True)
    conf = data_dir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} {host}\nallow_anonymous true\nmax_queued_messages 0\n"
        "set_tcp_nodelay true\n"
        f"persistence true\npersistence_location {store}/\nlog_dest none\n"
        + ("user root\n" if os.geteuid() == 0 else ""),
        encoding="utf-8",
    )
    return [binary, "-c", str(conf)], "mosquitto"


@asynccontextmanager
async def local_broker(data_dir: Path, *, prefer: str = "mosquitto") -> AsyncIterator[Broker]:
    """Start a broker on a free loopback port for the duration of the block."""
    host = "127.0.0.1"
    port = free_port(host)
    args, kind = await asyncio.to_thread(_command, data_dir, host, port, prefer)
    proc = await spawn(
        *args,
        lifeline=kind == "amqtt",  # mosquitto is tied to us by PR_SET_PDEATHSIG alone
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_listening(host, port, proc)
        yield Broker(host, port, kind)
    finally:
        await stop_child(proc, "local broker", timeout_s=5)
