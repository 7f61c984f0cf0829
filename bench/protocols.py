"""Protocol driver overhead: the drivers against bare pymodbus / aiomqtt doing the same requests.

Run: ``python -m bench.protocols`` (``--quick`` for fewer repetitions).

Setup (all on loopback): mosquitto on a free port, configured as
``controller.demo.broker.local_broker`` does (``max_queued_messages 0``) plus
``set_tcp_nodelay true`` (see :func:`bench_broker`; ``--demo-broker`` uses
``local_broker`` unchanged), and the fakes in a separate process
(``bench.fake_runner``): 50 fake Modbus TCP gateways and 200 fake MQTT gateways (one
MQTT connection each), 64 luminaires per gateway. The code being measured runs in
this process; the driver and the bare loop run against the same fake gateways,
alternately in blocks after a warm-up, so drift on the machine hits both sides
alike. The MQTT sides are connected only during their own blocks (a fresh
connection per block, then a few untimed commands), so neither receives the other's
traffic. Times are wall-clock per operation.

What each side does:

* Modbus poll: ``ModbusGateway.read()`` (decodes 64 luminaires into ``Reading``s)
  against a bare ``AsyncModbusTcpClient`` sending the requests of
  ``plan_reads(profile, 64, ...)`` (identical addresses and counts, same
  timeout/retries) and only checking ``isError()``. "status" polls read the
  every-poll block (the steady state, counters fresh); "full" polls also read the
  counters block (``counters_max_age_s=0``).
* Modbus command: ``ModbusGateway.apply(64 levels)`` against bare
  ``write_registers`` of the pre-encoded ``encode_levels(profile, levels, 0.0)``.
* MQTT command: ``MqttLink.gateway(id).apply(64 levels)`` (encodes, publishes at
  QoS 1, awaits the ack, decodes it) against a bare aiomqtt client (MQTT 5,
  TCP_NODELAY, the same message-expiry property) publishing the same
  ``encode_command`` payload, pre-encoded outside the timing, at QoS 1 and
  awaiting the ack whose id matches (the id is sliced out of the ack, not
  decoded). "report on": the fake also publishes its 64-luminaire state after
  every ack (``report_on_command``); the bare client then subscribes to the same
  four wildcards as the link, so both receive the same messages, but only the
  driver decodes them.

The fake's side is the same for both: every Modbus read re-encodes the covered
records from the luminaire model; every MQTT command is decoded, applied to the
model and acked; periodic MQTT state is off (interval one day). After every block
the fake's own request counters are read, and the table's last column shows the
requests per operation the fake saw from the driver and from the bare loop.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    nullcontext,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pymodbus.client import AsyncModbusTcpClient

from bench.machine import describe
from controller.config.settings import ModbusSettings, MqttSettings
from controller.core.values import Address, CommandSource, Level
from controller.demo.broker import Broker, find_mosquitto, free_port, local_broker, wait_listening
from protocols.modbus import ModbusGateway
from protocols.modbus_codec import ReadRequest, RegisterWrite, encode_levels, plan_reads
from protocols.mqtt import MqttLink
from protocols.mqtt_codec import Command, encode_command
from protocols.register_map import load_builtin_profile

PER_GATEWAY = 64
MODBUS_GATEWAYS = 50
MQTT_GATEWAYS = 200
PREFIX = "bench"
TARGET = 1.3
HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent

Op = Callable[[], Awaitable[Any]]


# --------------------------------------------------------------------------- the fakes


class FakeProcess:
    """``bench.fake_runner`` as a child process, asked for its counters over stdin."""

    def __init__(self, broker_port: int, modbus: int, mqtt: int) -> None:
        self.args = [
            sys.executable,
            "-m",
            "bench.fake_runner",
            "--modbus",
            str(modbus),
            "--mqtt",
            str(mqtt),
            "--per-gateway",
            str(PER_GATEWAY),
            "--broker-port",
            str(broker_port),
            "--prefix",
            PREFIX,
        ]
        self.proc: asyncio.subprocess.Process | None = None
        self.modbus: list[dict[str, Any]] = []
        self.mqtt: list[str] = []

    async def __aenter__(self) -> FakeProcess:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            limit=2**22,
        )
        try:
            async with asyncio.timeout(180):
                info = json.loads(await self._line())
                if await self._line() != "READY":
                    raise RuntimeError("fake runner did not say READY")
        except BaseException:
            await self._stop()
            raise
        self.modbus = info["modbus"]
        self.mqtt = info["mqtt"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def _line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        raw = await self.proc.stdout.readline()
        if not raw:
            raise RuntimeError(f"fake runner exited (code {self.proc.returncode})")
        return raw.decode().strip()

    async def ask(self, command: str) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        answer: dict[str, Any] = json.loads(await self._line())
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    async def _stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # EOF: the runner shuts its fakes down
        try:
            async with asyncio.timeout(15):
                await proc.wait()
        except TimeoutError:
            proc.terminate()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


# --------------------------------------------------------------------------- the broker


@asynccontextmanager
async def bench_broker(data_dir: Path, *, demo: bool) -> AsyncIterator[Broker]:
    """mosquitto as ``local_broker`` configures it, plus ``set_tcp_nodelay true``.

    Without it mosquitto leaves Nagle on for its client sockets: a QoS 1 command
    round trip then waits for the controller's delayed ACK (~40 ms on Linux) on
    both sides alike, which hides any driver overhead. ``demo`` uses
    ``controller.demo.broker.local_broker`` unchanged instead (and amqtt if there is no
    mosquitto).
    """
    binary = find_mosquitto()
    if demo or binary is None:
        async with local_broker(data_dir) as broker:
            yield broker
        return
    port = free_port(HOST)
    conf = data_dir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} {HOST}\nallow_anonymous true\nmax_queued_messages 0\n"
        "persistence false\nset_tcp_nodelay true\nlog_dest none\n",
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-c",
        str(conf),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await wait_listening(HOST, port, proc)
        yield Broker(HOST, port, "mosquitto (set_tcp_nodelay true)")
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


# --------------------------------------------------------------------------- measuring


Session = Callable[[], AbstractAsyncContextManager[Any]]


@dataclass
class Side:
    """One way of doing the operation: ``op`` runs it once.

    ``session`` (if given) is entered around every block, warm-up included: the MQTT
    sides connect only while they are measured, so neither receives (and spends CPU
    on) the other side's traffic. ``settle`` untimed operations follow each
    connection. ``prepare(n)`` runs before ``n`` operations (pre-encoding for the bare
    side), outside the timing.
    """

    op: Op
    prepare: Callable[[int], None] | None = None
    session: Session | None = None
    settle: int = 0
    times: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    """CPU time of this process spent in the timed blocks."""
    requests: int = 0
    ops: int = 0

    async def run(self, count: int) -> None:
        if self.prepare is not None:
            self.prepare(count)
        for _ in range(count):
            await self.op()


@dataclass
class Row:
    name: str
    driver: Side
    bare: Side
    counter: str  # the fake's counter that counts this operation's requests

    @property
    def ratio(self) -> float:
        return statistics.median(self.driver.times) / statistics.median(self.bare.times)


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


async def measure(
    fake: FakeProcess,
    row: Row,
    *,
    samples: int,
    block: int,
    warmup: int,
) -> Row:
    """Warm both sides up, then alternate blocks of ``block`` timed operations."""
    for side in (row.driver, row.bare):
        async with side.session() if side.session else nullcontext():
            await side.run(warmup)
    blocks = max(2, math.ceil(samples / block))
    for i in range(blocks):
        order = (row.driver, row.bare) if i % 2 == 0 else (row.bare, row.driver)
        for side in order:
            async with side.session() if side.session else nullcontext():
                if side.settle:
                    await side.run(side.settle)
                    await asyncio.sleep(0.1)  # let stray messages (retained...) drain
                if side.prepare is not None:
                    side.prepare(block)
                gc.collect()
                before = (await fake.ask("stats"))[row.counter]
                cpu_before = time.process_time()
                for _ in range(block):
                    started = time.perf_counter()
                    await side.op()
                    side.times.append(time.perf_counter() - started)
                side.cpu_s += time.process_time() - cpu_before
                side.requests += (await fake.ask("stats"))[row.counter] - before
                side.ops += block
    return row


# --------------------------------------------------------------------------- Modbus


def modbus_settings() -> ModbusSettings:
    return ModbusSettings()  # timeout 1 s, 1 retry: the driver's defaults, used by both


def bare_modbus_client(port: int, settings: ModbusSettings) -> AsyncModbusTcpClient:
    return AsyncModbusTcpClient(
        HOST,
        port=port,
        timeout=settings.timeout_s,
        retries=settings.retries,
        reconnect_delay=0,  # as the driver configures it
    )


async def bare_poll(client: AsyncModbusTcpClient, plan: Sequence[ReadRequest]) -> None:
    for request in plan:
        response = await client.read_input_registers(
            request.address, count=request.count, device_id=1
        )
        if response.isError():
            raise RuntimeError(f"bare read refused: {response}")


async def bare_write(client: AsyncModbusTcpClient, writes: Sequence[RegisterWrite]) -> None:
    for write in writes:
        response = await client.write_registers(write.address, list(write.values), device_id=1)
        if response.isError():
            raise RuntimeError(f"bare write refused: {response}")


def level_maps(count: int) -> tuple[dict[Address, Level], dict[Address, Level]]:
    return (
        {Address(i): Level(40) for i in range(count)},
        {Address(i): Level(80) for i in range(count)},
    )


class Alternate:
    """Hands out ``a``, ``b``, ``a``, ... (so every command changes the levels)."""

    def __init__(self, a: Any, b: Any) -> None:
        self.items = (a, b)
        self.i = 0

    def next(self) -> Any:
        self.i += 1
        return self.items[self.i % 2]


async def modbus_rows(fake: FakeProcess, reps: dict[str, int]) -> list[Row]:
    profile = load_builtin_profile("reference")
    settings = modbus_settings()
    ports = [int(gw["port"]) for gw in fake.modbus]
    status_plan = plan_reads(profile, PER_GATEWAY, every_poll_only=True)
    full_plan = plan_reads(profile, PER_GATEWAY)
    levels = level_maps(PER_GATEWAY)
    writes = Alternate(
        *(encode_levels(profile, {int(a): int(v) for a, v in m.items()}, 0.0) for m in levels)
    )
    rows: list[Row] = []
    async with AsyncExitStack() as stack:

        async def driver(port: int, counters_max_age_s: float) -> ModbusGateway:
            gw = ModbusGateway(
                HOST,
                port,
                unit_ids=[1],
                luminaire_count=PER_GATEWAY,
                profile=profile,
                settings=settings,
                counters_max_age_s=counters_max_age_s,
            )
            await stack.enter_async_context(gw)
            async with asyncio.timeout(10):
                await gw.wait_connected()
            return gw

        async def bare(port: int) -> AsyncModbusTcpClient:
            client = bare_modbus_client(port, settings)
            if not await client.connect():
                raise RuntimeError(f"bare client cannot connect to {port}")
            stack.callback(client.close)
            return client

        steady = [await driver(p, 3600.0) for p in ports]
        full = await driver(ports[0], 0.0)
        clients = [await bare(p) for p in ports]
        gw0, client0 = steady[0], clients[0]
        seq = {"samples": reps["seq"], "block": reps["block"], "warmup": reps["warmup"]}
        conc = {"samples": reps["rounds"], "block": 2, "warmup": 2}

        rows.append(
            await measure(
                fake,
                Row(
                    f"Modbus poll, 1 gw x {PER_GATEWAY}, status ({len(status_plan)} reads)",
                    Side(gw0.read),
                    Side(lambda: bare_poll(client0, status_plan)),
                    "modbus_reads",
                ),
                **seq,
            )
        )
        rows.append(
            await measure(
                fake,
                Row(
                    f"Modbus poll, 1 gw x {PER_GATEWAY}, full ({len(full_plan)} reads)",
                    Side(full.read),
                    Side(lambda: bare_poll(client0, full_plan)),
                    "modbus_reads",
                ),
                **seq,
            )
        )
        driver_levels = Alternate(*levels)
        rows.append(
            await measure(
                fake,
                Row(
                    f"Modbus command, 1 gw, {PER_GATEWAY} levels",
                    Side(lambda: gw0.apply(driver_levels.next())),
                    Side(lambda: bare_write(client0, writes.next())),
                    "modbus_writes",
                ),
                **seq,
            )
        )

        async def all_of(ops: Sequence[Op]) -> None:
            async with asyncio.TaskGroup() as tg:
                for op in ops:
                    tg.create_task(op())

        n = len(ports)
        rows.append(
            await measure(
                fake,
                Row(
                    f"Modbus poll, {n} gws concurrently, status",
                    Side(lambda: all_of([gw.read for gw in steady])),
                    Side(lambda: all_of([lambda c=c: bare_poll(c, status_plan) for c in clients])),
                    "modbus_reads",
                ),
                **conc,
            )
        )
        fan_levels = Alternate(*levels)
        fan_writes = Alternate(*writes.items)

        def driver_fan() -> Awaitable[None]:
            chosen = fan_levels.next()
            return all_of([lambda gw=gw: gw.apply(chosen) for gw in steady])

        def bare_fan() -> Awaitable[None]:
            chosen = fan_writes.next()
            return all_of([lambda c=c: bare_write(c, chosen) for c in clients])

        rows.append(
            await measure(
                fake,
                Row(
                    f"Modbus command, {n} gws concurrently",
                    Side(driver_fan),
                    Side(bare_fan),
                    "modbus_writes",
                ),
                **conc,
            )
        )
    return rows


# --------------------------------------------------------------------------- MQTT


def ack_id(payload: bytes) -> str:
    """The command id of an ack, sliced out: ``encode_ack`` writes ``{"id":"...`` first."""
    if payload.startswith(b'{"id":"'):
        return payload[7 : payload.index(b'"', 7)].decode()
    return str(json.loads(payload)["id"])  # another key order: parse it after all


class BareMqtt:
    """A bare aiomqtt client: publish pre-encoded commands, resolve futures by ack id."""

    def __init__(self, port: int, *, all_topics: bool, ack_timeout_s: float) -> None:
        self.port = port
        self.all_topics = all_topics
        self.ack_timeout_s = ack_timeout_s
        self.properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        # What MqttLink puts on every command (MQTT 5), so both send the same bytes.
        self.properties.MessageExpiryInterval = max(1, math.ceil(ack_timeout_s))
        self.waiting: dict[str, asyncio.Future[bytes]] = {}
        self.client: aiomqtt.Client | None = None
        self.reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BareMqtt:
        client = aiomqtt.Client(
            HOST,
            self.port,
            identifier=f"bench-bare-{uuid.uuid4().hex[:8]}",
            protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=30,
            timeout=10,
            max_inflight_messages=1000,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        client.pending_calls_threshold = 1000
        await client.__aenter__()
        self.client = client
        kinds = ("ack", "state", "events", "availability") if self.all_topics else ("ack",)
        await client.subscribe([(f"{PREFIX}/gw/+/{kind}", 1) for kind in kinds])
        self.reader = asyncio.create_task(self._read(client))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        if self.client is not None:
            await self.client.__aexit__(None, None, None)

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if not message.topic.value.endswith("/ack"):
                continue
            payload = message.payload
            assert isinstance(payload, bytes)
            future = self.waiting.pop(ack_id(payload), None)
            if future is not None and not future.done():
                future.set_result(payload)

    async def command(self, gateway_id: str, command_id: str, payload: bytes) -> None:
        assert self.client is not None
        future = asyncio.get_running_loop().create_future()
        self.waiting[command_id] = future
        # One timeout around publish + ack, as MqttLink.apply has.
        async with asyncio.timeout(self.ack_timeout_s):
            await self.client.publish(
                f"{PREFIX}/gw/{gateway_id}/cmd",
                payload,
                qos=1,
                properties=self.properties,
                timeout=math.inf,
            )
            await future


def encoded(levels: dict[Address, Level]) -> tuple[str, bytes]:
    command_id = uuid.uuid4().hex
    command = Command(command_id, CommandSource.PROGRAM, 0.0, levels, datetime.now(UTC))
    return command_id, encode_command(command)


async def mqtt_rows(fake: FakeProcess, broker_port: int, reps: dict[str, int]) -> list[Row]:
    rows: list[Row] = []
    for report in (False, True):
        await fake.ask("report on" if report else "report off")
        rows += await mqtt_rows_with(fake, broker_port, reps, report=report)
    await fake.ask("report off")
    return rows


class LinkHolder:
    """The driver side: a fresh ``MqttLink`` per block (``session``)."""

    def __init__(self, settings: MqttSettings, ack_timeout_s: float) -> None:
        self.settings = settings
        self.ack_timeout_s = ack_timeout_s
        self.link: MqttLink | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[MqttLink]:
        # session_expiry_s=0: the broker drops the session at disconnection, so it does
        # not queue the other side's messages for the next block (the link is otherwise
        # as in production: MQTT 5, clean start off, the same client options).
        link = MqttLink(
            self.settings,
            client_id=f"bench-link-{uuid.uuid4().hex[:8]}",
            ack_timeout_s=self.ack_timeout_s,
            session_expiry_s=0,
        )
        async with link:
            await link.wait_connected()
            self.link = link
            try:
                yield link
            finally:
                self.link = None
            stats = link.stats
            if stats.malformed or stats.timeouts or stats.dropped or stats.acks_unmatched:
                raise RuntimeError(f"MQTT link trouble during the benchmark: {stats}")

    def apply(self, gateway_id: str, levels: dict[Address, Level]) -> Awaitable[Any]:
        assert self.link is not None
        return self.link.gateway(gateway_id).apply(levels)


async def mqtt_rows_with(
    fake: FakeProcess, broker_port: int, reps: dict[str, int], *, report: bool
) -> list[Row]:
    """The two MQTT lines with the fake's ``report_on_command`` as given (set it first)."""
    ack_timeout_s = 30.0
    settings = MqttSettings(host=HOST, port=broker_port, prefix=PREFIX)
    gateways = fake.mqtt
    levels = level_maps(PER_GATEWAY)
    tag = "report on" if report else "report off"
    seq = {"samples": reps["mqtt_seq"], "block": reps["block"], "warmup": reps["warmup"]}
    conc = {"samples": reps["rounds"], "block": 2, "warmup": 2}
    driver = LinkHolder(settings, ack_timeout_s)
    bare: BareMqtt | None = None

    @asynccontextmanager
    async def bare_session() -> AsyncIterator[BareMqtt]:
        nonlocal bare
        async with BareMqtt(broker_port, all_topics=report, ack_timeout_s=ack_timeout_s) as bare:
            yield bare
        bare = None

    driver_levels = Alternate(*levels)
    bare_levels = Alternate(*levels)
    queue: list[tuple[str, bytes]] = []

    def prepare_seq(count: int) -> None:
        # Encoded before the block starts: the bare side's time is publish + ack only.
        queue[:] = [encoded(bare_levels.next()) for _ in range(count)]
        queue.reverse()

    async def bare_seq() -> None:
        assert bare is not None
        await bare.command(gateways[0], *queue.pop())

    rows = [
        await measure(
            fake,
            Row(
                f"MQTT command, 1 gw, {PER_GATEWAY} levels, {tag}",
                Side(
                    lambda: driver.apply(gateways[0], driver_levels.next()),
                    session=driver.session,
                    settle=2,
                ),
                Side(bare_seq, prepare_seq, session=bare_session, settle=2),
                "mqtt_commands",
            ),
            **seq,
        )
    ]

    fan: list[list[tuple[str, bytes]]] = []

    def prepare_fan(count: int) -> None:
        fan[:] = [[encoded(bare_levels.next()) for _ in gateways] for _ in range(count)]
        fan.reverse()

    async def driver_fan() -> None:
        chosen = driver_levels.next()
        async with asyncio.TaskGroup() as tg:
            for gw in gateways:
                tg.create_task(driver.apply(gw, chosen))

    async def bare_fan() -> None:
        assert bare is not None
        batch = fan.pop()
        async with asyncio.TaskGroup() as tg:
            for gw, (command_id, payload) in zip(gateways, batch, strict=True):
                tg.create_task(bare.command(gw, command_id, payload))

    rows.append(
        await measure(
            fake,
            Row(
                f"MQTT fan-out, {len(gateways)} gws x {PER_GATEWAY}, {tag}",
                Side(driver_fan, session=driver.session, settle=1),
                Side(bare_fan, prepare_fan, session=bare_session, settle=1),
                "mqtt_commands",
            ),
            **conc,
        )
    )
    return rows


# --------------------------------------------------------------------------- report


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f}"


def print_table(rows: Sequence[Row]) -> None:
    header = (
        f"{'operation':<46} {'n':>4}  {'driver ms':>8} {'p95':>8}  {'bare ms':>8} {'p95':>8}"
        f"  {'ratio':>6}  {'verdict':<7} {'cpu ms/op drv/bare':>18}  fake req/op"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        d, b = row.driver, row.bare
        verdict = "ok" if row.ratio <= TARGET else f">{TARGET}x"
        print(
            f"{row.name:<46} {len(d.times):>4}  "
            f"{fmt_ms(statistics.median(d.times))} {fmt_ms(p95(d.times))}  "
            f"{fmt_ms(statistics.median(b.times))} {fmt_ms(p95(b.times))}  "
            f"{row.ratio:>5.2f}x  {verdict:<7} "
            f"{d.cpu_s / d.ops * 1000:>8.2f} /{b.cpu_s / b.ops * 1000:>8.2f}  "
            f"{d.requests / d.ops:g}/{b.requests / b.ops:g}"
        )


NOTES = f"""\
times: wall clock per operation, median and p95; a 'round' runs the operation on every
  gateway at once and ends with the last answer. ratio = driver median / bare median,
  target <= {TARGET}x. cpu ms/op: CPU time of this (the measured) process per operation.
  fake req/op: requests per operation as the fake process counted them.
fakes: in their own process, identical for both sides; Modbus reads re-encode the records
  they cover from the luminaire model; MQTT commands are decoded, applied and acked, with
  the fake's state after each command off ('report off') or on ('report on'); no periodic
  state. The fan-out lines are bounded by the fake process and the broker sharing the
  machine's cores, so their wall-clock ratio understates the driver's cost: see the cpu
  column."""


async def main(quick: bool, demo_broker: bool) -> int:
    reps = (
        {"seq": 60, "mqtt_seq": 60, "block": 10, "warmup": 5, "rounds": 6}
        if quick
        else {"seq": 400, "mqtt_seq": 400, "block": 25, "warmup": 20, "rounds": 20}
    )
    print(f"machine: {describe()}")
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-protocols-") as tmp:
        async with (
            bench_broker(Path(tmp), demo=demo_broker) as broker,
            FakeProcess(broker.port, MODBUS_GATEWAYS, MQTT_GATEWAYS) as fake,
        ):
            pid = fake.proc.pid if fake.proc else "?"
            print(
                f"fakes: separate process (pid {pid}), {len(fake.modbus)} Modbus + "
                f"{len(fake.mqtt)} MQTT gateways x {PER_GATEWAY} luminaires; broker "
                f"{broker.kind} on {broker.host}:{broker.port}; "
                f"up in {time.perf_counter() - started:.1f} s; "
                f"{'quick' if quick else 'full'} run"
            )
            rows = await modbus_rows(fake, reps)
            rows += await mqtt_rows(fake, broker.port, reps)
    print_table(rows)
    over = [row for row in rows if row.ratio > TARGET]
    load_after = os.getloadavg()[0]
    print(
        f"{len(rows) - len(over)}/{len(rows)} lines within {TARGET}x of bare; "
        f"total {time.perf_counter() - started:.0f} s; "
        f"1-min load average {load_before:.2f} before, {load_after:.2f} after"
    )
    if load_before > 1.0:
        print(
            f"warning: the machine was busy before the run (load {load_before:.2f} on "
            f"{os.cpu_count()} cores); expect noisy figures"
        )
    print(NOTES)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about a minute)")
    parser.add_argument(
        "--demo-broker",
        action="store_true",
        help="use controller.demo.broker.local_broker as is (mosquitto with Nagle on)",
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.quick, args.demo_broker)))
