"""Signals and child processes: ``streetlight demo`` and ``serve`` run as a service manager
runs them, and stop as it stops them.

SIGTERM (systemd, ``docker stop``) and SIGINT (Ctrl-C) unwind in order: the API, the
controller, then the demo's fake fleet and local broker, each waited for, exit code 0.
SIGKILL runs no cleanup at all, so the children must notice on their own: every one is
gone within 5 s. Processes are found and checked through /proc (Linux), by pid.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, require_service

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc"),
]

GONE_WITHIN_S = 5.0
STARTUP_S = 120.0
SHUTDOWN_ORDER = (
    "stopping on ",
    "API stopped",
    "controller stopped",
    "fake fleet stopped",
    "local broker stopped",
)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it no longer exists."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Running: present and not a zombie (an exited child nobody has reaped yet)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in {"Z", "X"}


def children_of(pid: int) -> dict[int, str]:
    """The living direct children of ``pid``, with their command lines."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is None or stat[1] != pid or not alive(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[int(entry.name)] = cmdline
    return out


def kind(cmdline: str) -> str:
    if "fake-fleet" in cmdline:
        return "fleet"
    if "mosquitto" in cmdline or "embedded_broker" in cmdline:
        return "broker"
    return cmdline


async def wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Wait until none of ``pids`` runs; return those still running at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.05)


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    out: Path
    err: Path

    def messages(self) -> list[str]:
        """The log messages (JSON lines on stderr, as when not on a terminal)."""
        found = []
        for line in self.err.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                found.append(str(json.loads(line)["message"]))
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def output(self) -> str:
        return (
            self.out.read_text(encoding="utf-8", errors="replace")
            + self.err.read_text(encoding="utf-8", errors="replace")[-4000:]
        )


async def launch(tmp_path: Path, *args: str, ready: str, env: dict[str, str]) -> Running:
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller", *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            env={**os.environ, **env},
        )  # fmt: skip
    running = Running(proc, out, err)
    deadline = time.monotonic() + STARTUP_S
    while ready not in running.output():
        if proc.returncode is not None or time.monotonic() > deadline:
            await stop(running)
            raise AssertionError(f"not ready ({proc.returncode}):\n{running.output()}")
        await asyncio.sleep(0.2)
    return running


async def start_demo(tmp_path: Path) -> Running:
    from controller.demo.broker import find_mosquitto

    if find_mosquitto() is None:
        require_service("mosquitto", "binary not found (apt-get install mosquitto)")
    port = free_port()
    return await launch(
        tmp_path,
        "demo", "--port", str(port), "--data-dir", str(tmp_path / "data"),
        ready="Uvicorn running",
        env={"STREETLIGHT_ADMIN_KEY": ""},
    )  # fmt: skip


async def stop(running: Running, children: dict[int, str] | None = None) -> None:
    """Kill what a failed test left running: the process and the children it had."""
    if running.proc.returncode is None:
        running.proc.kill()
        await running.proc.wait()
    kill_left(children or {})


def kill_left(children: dict[int, str]) -> None:
    for pid in children:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def assert_in_order(messages: list[str], expected: tuple[str, ...]) -> None:
    where = []
    for prefix in expected:
        hits = [i for i, m in enumerate(messages) if m.startswith(prefix)]
        assert hits, f"no log line {prefix!r} in {messages[-30:]}"
        where.append(hits[0])
    assert where == sorted(where), f"out of order: {list(zip(expected, where, strict=True))}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_demo_unwinds_in_order_on(sig: signal.Signals, tmp_path: Path) -> None:
    demo = await start_demo(tmp_path)
    kids = children_of(demo.proc.pid)
    try:
        assert sorted(kind(c) for c in kids.values()) == ["broker", "fleet"], kids
        began = time.monotonic()
        demo.proc.send_signal(sig)
        left = await wait_gone([demo.proc.pid, *kids], GONE_WITHIN_S)
        took = time.monotonic() - began
        assert not left, f"still running {GONE_WITHIN_S} s after {sig.name}: {left}"
        assert await demo.proc.wait() == 0, demo.output()
        messages = demo.messages()
        assert_in_order(messages, SHUTDOWN_ORDER)
        assert f"stopping on {sig.name}" in messages
        # each child stopped by itself on the parent's request, not killed
        assert any(m.startswith("fake fleet stopped (exit code 0)") for m in messages), messages
        assert any(m.startswith("local broker stopped (exit code 0)") for m in messages), messages
        print(f"{sig.name}: demo and its children gone in {took:.1f} s")
    finally:
        await stop(demo, kids)


async def test_sigkill_of_the_demo_leaves_no_child(tmp_path: Path) -> None:
    demo = await start_demo(tmp_path)
    kids = children_of(demo.proc.pid)
    try:
        assert sorted(kind(c) for c in kids.values()) == ["broker", "fleet"], kids
        demo.proc.send_signal(signal.SIGKILL)
        await demo.proc.wait()
        left = await wait_gone(list(kids), GONE_WITHIN_S)
        assert not left, f"children outlived a SIGKILLed demo: {[kids[p] for p in left]}"
    finally:
        await stop(demo, kids)


BROKER_HOLDER = """
import asyncio, sys
from pathlib import Path
from controller.demo.broker import local_broker

async def main() -> None:
    async with local_broker(Path(sys.argv[1]), prefer=sys.argv[2]) as broker:
        print("READY", broker.kind, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.mark.parametrize("prefer", ["mosquitto", "amqtt"])
async def test_sigkill_of_its_parent_stops_the_local_broker(prefer: str, tmp_path: Path) -> None:
    """Both brokers the demo may start: mosquitto (a foreign binary) and amqtt (ours)."""
    from controller.demo.broker import find_mosquitto

    if prefer == "mosquitto" and find_mosquitto() is None:
        require_service("mosquitto", "binary not found (apt-get install mosquitto)")
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BROKER_HOLDER, str(tmp_path), prefer,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    kids: dict[int, str] = {}
    try:
        assert holder.stdout is not None
        async with asyncio.timeout(60):
            line = (await holder.stdout.readline()).decode()
        assert line.split() == ["READY", prefer], line
        kids.update(children_of(holder.pid))
        assert [kind(c) for c in kids.values()] == ["broker"], kids
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        left = await wait_gone(list(kids), GONE_WITHIN_S)
        assert not left, f"the {prefer} broker outlived its SIGKILLed parent"
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        kill_left(kids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serve_unwinds_in_order_on(sig: signal.Signals, tmp_path: Path) -> None:
    env = {
        "STREETLIGHT_DATA_DIR": str(tmp_path),
        "STREETLIGHT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "STREETLIGHT_SECURITY__ALLOW_SQLITE": "true",
        "STREETLIGHT_ALERTS__MQTT": "false",
        "STREETLIGHT_SECURITY__ALLOW_ANONYMOUS_BROKER": "true",
    }
    serve = await launch(
        tmp_path, "serve", "--port", str(free_port()), ready="Uvicorn running", env=env
    )
    try:
        serve.proc.send_signal(sig)
        left = await wait_gone([serve.proc.pid], GONE_WITHIN_S)
        assert not left, f"serve still running {GONE_WITHIN_S} s after {sig.name}"
        assert await serve.proc.wait() == 0, serve.output()
        assert_in_order(serve.messages(), SHUTDOWN_ORDER[:3])
    finally:
        await stop(serve)


@pytest.mark.parametrize("child", ["fake fleet", "amqtt broker"])
async def test_our_children_stop_in_order_when_their_lifeline_closes(child: str) -> None:
    """The lifeline alone (no PR_SET_PDEATHSIG here): EOF on stdin stops them, exit code 0."""
    port = free_port()
    args = {
        "fake fleet": ["-m", "controller", "fake-fleet", "--lifeline", "--modbus-gateways", "1",
                       "--per-gateway", "2", "--control-port", str(port)],
        "amqtt broker": ["-m", "controller.demo.embedded_broker", "127.0.0.1", str(port),
                         "--lifeline"],
    }[child]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:  # both listen on ``port`` once up
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert proc.returncode is None and time.monotonic() < deadline, "not up"
                await asyncio.sleep(0.1)
                continue
            writer.close()
            await writer.wait_closed()
            break
        assert proc.stdin is not None
        proc.stdin.close()  # what the kernel does when the parent dies
        async with asyncio.timeout(GONE_WITHIN_S):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
