"""Scale benchmarks: the system next to the bare limit, in one run.

Run: ``python -m bench.scale ingest|fanout|modbus|footprint|all [--quick]``.

* ingest: readings/s stored through ``TelemetrySink`` (raw rows + energy rollups,
  its writer task running as in the controller) into SQLite and PostgreSQL, vs a
  bare SQLAlchemy core executemany of the same row dicts into the same ``reading``
  table, in batches of the same size. Targets: >= 0.5x bare and >= 20,000/s.
* fanout: 100,000 luminaires behind 1,000 fake MQTT gateways (fleet in its own
  process, real mosquitto via ``local_broker``), the controller in this process;
  time from a step instant (a change for every luminaire scheduled ahead, as a
  program step is) until every gateway acked it, vs one bare aiomqtt client
  publishing the same 1,000 commands at QoS 1 and awaiting the acks. Targets:
  <= 1.5x bare and < 5 s. Also printed: an override for everything from the API
  call (create, reload of 100,000 luminaires, fan-out).
* modbus: one telemetry cycle of ``ModbusGateway.read()`` on 200 fake gateways x 64
  luminaires at once vs bare pymodbus reads of ``plan_reads``. Target <= 1.3x.
* footprint: controller RSS at 100,000 luminaires after convergence (< 500 MB) and
  CPU at rest over 30 s (< 5 % of one core); runs with the fan-out setup.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from bench.machine import describe
from controller.access.auth import Principal
from controller.access.schemas import Role
from controller.config.settings import SiteSettings
from controller.core.values import Address, DeviceFlag, Reading
from controller.inventory.importer import ImportFormat, import_inventory
from controller.loop.telemetry import _READING, LuminaireRef, TelemetrySink, _reading_row
from controller.store import migrate
from controller.store.db import Database, connect
from controller.store.tables import Luminaire
from fake_luminaires.fleet import synthetic_bundle

ACTOR = Principal(name="bench", role=Role.ADMIN)
ROOT = Path(__file__).resolve().parent.parent
PG_DSN = os.environ.get("STREETLIGHT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
COMMAND = "python -m bench.scale " + " ".join(sys.argv[1:])
RESULTS: list[tuple[str, str, str]] = []  # (name, value, verdict)


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def record(name: str, value: str, ok: bool | None) -> None:
    RESULTS.append((name, value, "-" if ok is None else verdict(ok)))


# --------------------------------------------------------------------------- databases


@contextlib.asynccontextmanager
async def fresh_db(kind: str, tmp: Path) -> Any:
    """A migrated, empty database: a new SQLite file or a new PostgreSQL database."""
    if kind == "sqlite":
        async with connect(f"sqlite+aiosqlite:///{tmp / f'{uuid.uuid4().hex[:8]}.db'}") as db:
            await migrate.upgrade(db)
            yield db
        return
    import asyncpg

    name = f"streetlight_scale_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_DSN, timeout=5)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = f"{PG_DSN.rpartition('/')[0]}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        async with connect(url) as db:
            await migrate.upgrade(db)
            yield db
    finally:
        conn = await asyncpg.connect(PG_DSN, timeout=5)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def pg_reachable() -> bool:
    try:
        import asyncpg

        conn = await asyncpg.connect(PG_DSN, timeout=5)
        await conn.close()
        return True
    except Exception:
        return False


async def import_bundle(db: Database, bundle: dict[str, Any]) -> None:
    async with db.sessions() as session:
        await import_inventory(
            session=session,
            data=json.dumps(bundle).encode(),
            fmt=ImportFormat.GEOJSON,
            actor=ACTOR,
        )


# --------------------------------------------------------------------------- 1. ingest

INGEST_BATCH = 5_000


def make_rounds(
    refs: Sequence[tuple[LuminaireRef, int]], rounds: int
) -> list[list[tuple[LuminaireRef, Reading]]]:
    """``rounds`` readings of every luminaire, 10 s apart (as MQTT state arrives)."""
    t0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    out = []
    for k in range(rounds):
        at = t0 + timedelta(seconds=10 * k)
        batch = []
        for ref, addr in refs:
            batch.append(
                (
                    ref,
                    Reading(
                        address=Address(addr),
                        at=at,
                        lamp_on=True,
                        level_pct=80,
                        power_w=80.0 + (ref.luminaire_id % 7),
                        voltage_v=230.0,
                        current_ma=350,
                        power_factor=0.95,
                        energy_wh=1000 + k * 2,
                        operating_hours=100 + k // 360,
                        switch_on_count=10,
                        temperature_c=35.0,
                        flags=frozenset({DeviceFlag.OVER_TEMPERATURE})
                        if ref.luminaire_id % 100 == 0
                        else frozenset(),
                    ),
                )
            )
        out.append(batch)
    return out


async def ingest_setup(db: Database, luminaires: int) -> list[tuple[LuminaireRef, int]]:
    await import_bundle(db, synthetic_bundle(0, luminaires // 100, 100))
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(Luminaire.id, Luminaire.ward, Luminaire.gateway_id, Luminaire.address)  # type: ignore[call-overload]
            )
        ).all()
    return [(LuminaireRef(r[0], r[1], r[2]), r[3]) for r in rows]


async def count_readings(db: Database) -> int:
    from sqlalchemy import func

    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(_READING))).scalar_one())


async def ingest_system(db: Database, rounds: list[list[tuple[LuminaireRef, Reading]]]) -> float:
    """The sink as the controller runs it: writer task + offers per round."""
    total = sum(len(r) for r in rounds)
    sink = TelemetrySink(
        db, site=SiteSettings().to_site(), capacity=max(200_000, total),
        batch_size=INGEST_BATCH,
    )  # fmt: skip
    gc.collect()
    started = time.perf_counter()
    writer = asyncio.create_task(sink.run())
    for batch in rounds:
        sink.offer_readings(batch)
        await asyncio.sleep(0)
    while sink.stats.written_readings < total:
        await asyncio.sleep(0.001)
    await sink.flush()  # the rollups still in the ledger
    elapsed = time.perf_counter() - started
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    assert sink.stats.dropped == 0, sink.stats
    assert await count_readings(db) == total
    return elapsed


async def ingest_bare(db: Database, rounds: list[list[tuple[LuminaireRef, Reading]]]) -> float:
    """The same dicts, executemany into ``reading`` in batches of the same size."""
    rows = [_reading_row(ref, r) for batch in rounds for ref, r in batch]
    stmt = insert(_READING)
    gc.collect()
    started = time.perf_counter()
    for i in range(0, len(rows), INGEST_BATCH):
        async with db.engine.begin() as conn:
            await conn.execute(stmt, rows[i : i + INGEST_BATCH])
    elapsed = time.perf_counter() - started
    assert await count_readings(db) == len(rows)
    return elapsed


async def bench_ingest(quick: bool) -> None:
    luminaires = 2_000
    rounds_n = 25 if quick else 100
    repeats = 1 if quick else 2
    total = luminaires * rounds_n
    print(
        f"\n== ingest: {total:,} readings of {luminaires:,} luminaires, batch {INGEST_BATCH:,}, "
        f"{repeats} run(s) per side, alternating, fresh database per run"
    )
    kinds = ["sqlite"] + (["postgresql"] if await pg_reachable() else [])
    if "postgresql" not in kinds:
        print(f"   PostgreSQL not reachable at {PG_DSN}: skipped")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for kind in kinds:
            sys_t: list[float] = []
            bare_t: list[float] = []
            for rep in range(repeats):
                for side in ("bare", "system") if rep % 2 == 0 else ("system", "bare"):
                    async with fresh_db(kind, Path(tmp)) as db:
                        refs = await ingest_setup(db, luminaires)
                        rounds = make_rounds(refs, rounds_n)
                        if side == "system":
                            sys_t.append(await ingest_system(db, rounds))
                        else:
                            bare_t.append(await ingest_bare(db, rounds))
            s, b = total / statistics.median(sys_t), total / statistics.median(bare_t)
            ratio = s / b
            ok = ratio >= 0.5 and s >= 20_000
            print(
                f"   {kind:<10} TelemetrySink {s:>9,.0f} readings/s (runs "
                + ", ".join(f"{t:.2f}s" for t in sys_t)
                + f")   bare executemany {b:>9,.0f} readings/s (runs "
                + ", ".join(f"{t:.2f}s" for t in bare_t)
                + f")   system/bare {ratio:.2f}  [{verdict(ok)}: >=0.5 and >=20,000/s]"
            )
            record(f"ingest {kind}", f"{s:,.0f}/s, {ratio:.2f}x of bare", ok)


# --------------------------------------------------------------------------- fleet process


class FleetProcess:
    """``python -m controller fake-fleet ...`` in its own process; READY, then the inventory."""

    def __init__(self, args: list[str], tmp: Path) -> None:
        self.inventory_path = tmp / f"fleet-{uuid.uuid4().hex[:6]}.json"
        self.log_path = tmp / "fleet.log"
        self.args = [
            sys.executable, "-m", "controller", "fake-fleet", *args,
            "--inventory-out", str(self.inventory_path),
        ]  # fmt: skip
        self.proc: asyncio.subprocess.Process | None = None
        self.inventory: dict[str, Any] = {}

    async def __aenter__(self) -> FleetProcess:
        self.log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, stdout=asyncio.subprocess.PIPE, stderr=self.log, cwd=ROOT,
            env={**os.environ, "STREETLIGHT_DATA_DIR": str(self.inventory_path.parent)},
        )  # fmt: skip
        try:
            async with asyncio.timeout(600):
                assert self.proc.stdout is not None
                while True:
                    line = await self.proc.stdout.readline()
                    if not line:
                        raise RuntimeError(f"fake fleet exited; see {self.log_path}")
                    if line.strip() == b"READY":
                        break
        except BaseException:
            await self.__aexit__()
            raise
        self.inventory = json.loads(self.inventory_path.read_text(encoding="utf-8"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self.log.close()


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    out = {}
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) / 1024
    return out["VmRSS"], out["VmHWM"]


# --------------------------------------------------------------------------- 2+4. fan-out, footprint

FAN_GATEWAYS = 1_000
FAN_PER_GATEWAY = 100
FAN_PREFIX = "bench"


def gateway_done(state: Any, level: int | None) -> bool:
    """Every luminaire of this gateway acked its current target (or ``level``)."""
    if not state.addresses or len(state.targets) < len(state.addresses):
        return False
    for addr in state.addresses:
        tracked = state.tracked.get(addr)
        want = level if level is not None else int(state.targets[addr].level)
        if tracked is None or tracked.acked is None or int(tracked.acked) != want:
            return False
    return True


async def wait_converged(ctrl: Any, level: int | None, timeout_s: float) -> float:
    """Seconds until every gateway acked; ``inf`` (and a progress line) on timeout.

    Checked every 20 ms, and a gateway once done is not looked at again (cheap: the
    check must not steal the controller's CPU; a level, once acked, stays).
    """
    started = time.perf_counter()
    pending = set(ctrl.gateways)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while True:
                pending = {g for g in pending if not gateway_done(ctrl.gateways[g], level)}
                if not pending and ctrl.gateways:
                    return time.perf_counter() - started
                await asyncio.sleep(0.02)
    offline = sum(1 for s in ctrl.gateways.values() if s.online is False)
    print(
        f"   !! not converged after {timeout_s:g} s: {len(ctrl.gateways) - len(pending)}/"
        f"{len(ctrl.gateways)} gateways acked, {offline} marked offline; "
        f"log: {LOG_COUNTS.summary()}; link: {ctrl.mqtt_link.stats if ctrl.mqtt_link else None}"
    )
    return float("inf")


class LogCounter(logging.Handler):
    """Counts the controller's log records (instead of printing 1,000s of lines)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = {}
        self.examples: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        key = f"{record.levelname} {record.name}: " + (
            "not acknowledged within" if "not acknowledged within" in msg else
            "not reachable yet" if "not reachable yet" in msg else
            "back online" if "back online" in msg else msg[:60]
        )  # fmt: skip
        self.counts[key] = self.counts.get(key, 0) + 1
        self.examples.setdefault(key, msg[:160])

    def summary(self) -> str:
        if not self.counts:
            return "no warnings"
        return "; ".join(
            f"{n}x [{k}]" for k, n in sorted(self.counts.items(), key=lambda kv: -kv[1])
        )

    def reset(self) -> None:
        self.counts.clear()


LOG_COUNTS = LogCounter()


async def bench_fanout(quick: bool, *, footprint: bool, fanout: bool) -> None:
    from controller.config.settings import ControllerSettings, MqttSettings, Settings
    from controller.core.clock import SystemClock
    from controller.demo.broker import local_broker
    from controller.loop.runtime import Controller
    from controller.scheduling.overrides import OverrideCreate, OverrideTargets, create_override

    gateways = FAN_GATEWAYS
    print(
        f"\n== fan-out/footprint: {gateways * FAN_PER_GATEWAY:,} luminaires behind {gateways:,} "
        f"MQTT fake gateways (20 per connection, state every 600 s; own process), mosquitto via "
        f"local_broker, controller in this process on SQLite, store_raw_readings=false"
    )
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        async with local_broker(tmp / "broker") as broker:
            fleet_args = [
                "--mqtt-gateways", str(gateways), "--per-gateway", str(FAN_PER_GATEWAY),
                "--mqtt-per-connection", "20", "--state-interval", "600",
                "--broker", f"mqtt://{broker.host}:{broker.port}", "--prefix", FAN_PREFIX,
            ]  # fmt: skip
            async with FleetProcess(fleet_args, tmp) as fleet:
                fleet_pid = fleet.proc.pid if fleet.proc else "?"
                print(
                    f"   broker {broker.kind} {broker.host}:{broker.port}; fleet pid {fleet_pid} "
                    f"up in {time.perf_counter() - t0:.1f} s"
                )
                db_url = f"sqlite+aiosqlite:///{tmp / 'ctrl.db'}"
                t1 = time.perf_counter()
                # migrate + import in a child process, so this process's RSS is the controller's
                child = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.scale", "_import", db_url,
                    str(fleet.inventory_path), cwd=ROOT,
                )  # fmt: skip
                if await child.wait() != 0:
                    raise RuntimeError("inventory import failed")
                print(
                    f"   inventory migrated+imported in a child process in {time.perf_counter() - t1:.1f} s"
                )
                gateway_ids = ctrl_gateway_ids(fleet.inventory)
                fleet.inventory = {}  # 100k features: not the controller's memory
                async with connect(db_url) as db:
                    settings = Settings(
                        data_dir=tmp,
                        mqtt=MqttSettings(host=broker.host, port=broker.port, prefix=FAN_PREFIX),
                        controller=ControllerSettings(store_raw_readings=False),
                    )
                    gc.collect()
                    rss_before, _ = rss_mb()
                    ctrl = Controller(settings, db, SystemClock())
                    task = asyncio.create_task(ctrl.run(), name="controller")
                    try:
                        await asyncio.wait_for(ctrl.wait_ready(), 120)
                        conv = await wait_converged(ctrl, None, 300)
                        print(
                            f"   controller converged (every gateway acked its current target) "
                            f"{conv:.1f} s after start; log: {LOG_COUNTS.summary()}"
                        )
                        LOG_COUNTS.reset()
                        t_reload = time.perf_counter()
                        await ctrl.reload()
                        print(
                            f"   a full reload (inventory, schedules, overrides of 100,000 "
                            f"luminaires) took {time.perf_counter() - t_reload:.2f} s"
                        )
                        if footprint:
                            await measure_footprint(ctrl, quick, rss_before)
                        if fanout:
                            ctrl_times, now_times = await fanout_controller(
                                ctrl, db, 1 if quick else 3,
                                OverrideCreate, OverrideTargets, create_override,
                            )  # fmt: skip
                    finally:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                if fanout:
                    bare_times = await fanout_bare(broker.port, gateway_ids, 1 if quick else 3)
                    c, b = statistics.median(ctrl_times), statistics.median(bare_times)
                    n = statistics.median(now_times)
                    ratio = c / b
                    ok = ratio <= 1.5 and c < 5.0
                    print(
                        f"   fan-out to {gateways:,} gateways: controller median {c:.3f} s from "
                        f"the step instant (runs " + ", ".join(f"{t:.3f}" for t in ctrl_times)
                        + f"), bare aiomqtt median {b:.3f} s (runs "
                        + ", ".join(f"{t:.3f}" for t in bare_times)
                        + f"), ratio {ratio:.2f}  [{verdict(ok)}: <=1.5x and <5 s]; an override "
                        f"for all from the API call: median {n:.3f} s (runs "
                        + ", ".join(f"{t:.3f}" for t in now_times) + ")"
                    )  # fmt: skip
                    record(
                        "fan-out 100k luminaires", f"{c:.2f} s vs bare {b:.2f} s = {ratio:.3f}x", ok
                    )
                    record("override now, 100k (context)", f"{n:.2f} s from the API call", None)


def ctrl_gateway_ids(inventory: dict[str, Any]) -> list[str]:
    return [g["mqtt_id"] for g in inventory["gateways"] if g.get("mqtt_id")]


async def measure_footprint(ctrl: Any, quick: bool, rss_before: float) -> None:
    gc.collect()
    rss, hwm = rss_mb()
    ok = rss < 500
    print(
        f"   footprint: VmRSS {rss:.0f} MB after convergence (peak VmHWM {hwm:.0f} MB; "
        f"{rss_before:.0f} MB before the controller started)  [{verdict(ok)}: <500 MB]"
    )
    record("footprint RSS @100k", f"{rss:.0f} MB (peak {hwm:.0f} MB)", ok)
    # At rest: after the start-up burst (states owed after the first commands, their
    # telemetry) has passed: no command and nothing buffered for 5 s in a row.
    settled_at = time.perf_counter()
    quiet_since, last = time.perf_counter(), -1
    while time.perf_counter() - settled_at < 120:
        now_commands = sum(s.commands for s in ctrl.gateways.values())
        if now_commands != last or ctrl.sink.depth:
            quiet_since, last = time.perf_counter(), now_commands
        elif time.perf_counter() - quiet_since >= 5.0:
            break
        await asyncio.sleep(0.5)
    print(
        f"   at rest (no command, telemetry written, for 5 s) after {time.perf_counter() - settled_at:.1f} s"
    )
    window = 15.0 if quick else 30.0
    cycles0 = sum(s.cycles for s in ctrl.gateways.values())
    commands0 = sum(s.commands for s in ctrl.gateways.values())
    written0 = ctrl.sink.stats.received
    profiler = None
    if os.environ.get("SCALE_PROFILE_REST"):  # pyinstrument on sys.path (not the venv)
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
    c0, w0 = cpu_s(), time.perf_counter()
    await asyncio.sleep(window)
    c1, w1 = cpu_s(), time.perf_counter()
    if profiler is not None:
        profiler.stop()
        Path(os.environ["SCALE_PROFILE_REST"]).write_text(
            profiler.output_text(unicode=False, color=False), encoding="utf-8"
        )
        print(f"   (profile of the rest window written to {os.environ['SCALE_PROFILE_REST']})")
    cycles = sum(s.cycles for s in ctrl.gateways.values()) - cycles0
    commands = sum(s.commands for s in ctrl.gateways.values()) - commands0
    received = ctrl.sink.stats.received - written0
    pct = 100 * (c1 - c0) / (w1 - w0)
    ok = pct < 5.0
    print(
        f"   CPU at rest: {c1 - c0:.2f} s CPU over {w1 - w0:.1f} s wall = {pct:.1f} % of one core "
        f"({cycles:,} gateway cycles, {commands:,} commands sent, {received:,} telemetry "
        f"items offered, mqtt_read_interval_s="
        f"{ctrl.settings.controller.mqtt_read_interval_s:g})  [{verdict(ok)}: <5 %]"
    )
    record("CPU at rest @100k", f"{pct:.1f} % of one core", ok)


async def settle(ctrl: Any, quiet_s: float = 2.0, limit_s: float = 60.0) -> float:
    """Wait until the last step's aftermath is over: no MQTT message in for ``quiet_s`` and
    the telemetry buffer empty (the fleet publishes 1,000 states after a fan-out and the
    controller takes them in); a run must not start inside the previous one's tail."""
    started = time.perf_counter()
    link = ctrl.mqtt_link
    last, since = -1, time.perf_counter()
    while time.perf_counter() - started < limit_s:
        seen = link.stats.messages_in if link is not None else 0
        if seen != last or ctrl.sink.depth:
            last, since = seen, time.perf_counter()
        elif time.perf_counter() - since >= quiet_s:
            break
        await asyncio.sleep(0.2)
    return time.perf_counter() - started


class SendWatch:
    """When every gateway's command of a run had been published (the controller's share of
    a fan-out), and how many gateways were not online when it began."""

    def __init__(self, ctrl: Any, since: float) -> None:
        self.ctrl, self.since = ctrl, since
        self.offline = sum(1 for g in ctrl.gateways.values() if g.online is not True)
        self.sent0 = ctrl.mqtt_link.stats.commands_sent
        self.published: float | None = None
        self.task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        link, n = self.ctrl.mqtt_link, len(self.ctrl.gateways)
        while link.stats.commands_sent - self.sent0 < n:
            await asyncio.sleep(0.05)
        self.published = time.perf_counter() - self.since

    def report(self) -> None:
        self.task.cancel()
        stats = self.ctrl.mqtt_link.stats
        sent = (
            f"{len(self.ctrl.gateways)} commands published by {self.published:.2f} s"
            if self.published is not None
            else "not every command published"
        )
        print(
            f"   ({self.offline} gateways not online at the start; {sent}; link totals: "
            f"{stats.commands_sent} sent, {stats.acks_matched} acked, {stats.acks_late} late, "
            f"{stats.timeouts} timeouts)"
        )


SCHEDULE_LEAD_S = 8.0
"""The scheduled change is created this far ahead (time for the reload it needs)."""


async def fanout_controller(
    ctrl: Any, db: Database, runs: int, OverrideCreate: Any, OverrideTargets: Any, create: Any
) -> tuple[list[float], list[float]]:
    """Per run: (a) a change scheduled ahead, timed from its instant, as a program step is
    (the controller already holds it; its scheduler wakes every gateway at the instant);
    (b) an override for everything starting now, timed from the API call (create, reload,
    fan-out). Returns (scheduled times, immediate times)."""
    scheduled, immediate = [], []
    for i in range(runs):
        level = 37 + 11 * i
        print(f"   (settled for {await settle(ctrl):.1f} s before run {i + 1})")
        gc.collect()
        async with db.sessions() as session:
            start = ctrl.clock.now() + timedelta(seconds=SCHEDULE_LEAD_S)
            await create(
                session=session,
                data=OverrideCreate(
                    targets=OverrideTargets(all=True),
                    level=level,
                    start=start,
                    duration_min=120,
                    reason=f"bench scheduled step {i}",
                ),
                actor=ACTOR,
                now=ctrl.clock.now(),
            )
        before = ctrl.book
        ctrl.request_reload(overrides_only=True)  # as the API does after an override
        async with asyncio.timeout(60):  # on a loaded machine it can miss the lead: then the
            while ctrl.book is before:  # time from the instant includes the rest of the reload
                await asyncio.sleep(0.05)
        step_at = time.perf_counter() + (start - ctrl.clock.now()).total_seconds()
        await asyncio.sleep(max(0.0, step_at - time.perf_counter() - 0.5))
        LOG_COUNTS.reset()
        profiler = None
        if os.environ.get("SCALE_PROFILE") and i == 0:  # pyinstrument on sys.path (not the venv)
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.001, async_mode="disabled")
            profiler.start()
        watch = SendWatch(ctrl, step_at)
        took = await wait_converged(ctrl, level, 45)
        elapsed = time.perf_counter() - step_at if took != float("inf") else float("inf")
        watch.report()
        if profiler is not None:
            profiler.stop()
            Path(os.environ["SCALE_PROFILE"]).write_text(
                profiler.output_text(unicode=False, color=False, show_all=False), encoding="utf-8"
            )
            print(f"   (profile of scheduled step 1 written to {os.environ['SCALE_PROFILE']})")
        print(
            f"   controller run {i + 1}a: step to {level} % for all at a set instant -> "
            + (
                f"every gateway acked {elapsed:.3f} s after the instant"
                if elapsed != float("inf")
                else "NOT every gateway acked within 45 s (counted as inf)"
            )
            + f"; log: {LOG_COUNTS.summary()}"
        )
        scheduled.append(elapsed)
        await settle(ctrl)

        level += 1
        gc.collect()
        started = time.perf_counter()
        async with db.sessions() as session:
            await create(
                session=session,
                data=OverrideCreate(
                    targets=OverrideTargets(all=True),
                    level=level,
                    duration_min=120,
                    reason=f"bench override now {i}",
                ),
                actor=ACTOR,
                now=ctrl.clock.now(),
            )
        created = time.perf_counter()
        ctrl.request_reload(overrides_only=True)
        LOG_COUNTS.reset()
        watch = SendWatch(ctrl, started)
        took = await wait_converged(ctrl, level, 45)
        elapsed = time.perf_counter() - started if took != float("inf") else float("inf")
        watch.report()
        print(
            f"   controller run {i + 1}b: override to {level} % for all, now -> "
            + (
                f"every gateway acked in {elapsed:.3f} s (create_override "
                f"{created - started:.3f} s, reload+send+acks {elapsed - (created - started):.3f} s)"
                if elapsed != float("inf")
                else "NOT every gateway acked within 45 s (counted as inf)"
            )
            + f"; log: {LOG_COUNTS.summary()}"
        )
        immediate.append(elapsed)
    return scheduled, immediate


BARE_PAUSE_S = 8.0


async def fanout_bare(port: int, gateway_ids: list[str], runs: int) -> list[float]:
    from bench.protocols import BareMqtt
    from controller.core.values import CommandSource, Level
    from protocols.mqtt_codec import Command, encode_command

    times = []
    async with BareMqtt(port, all_topics=False, ack_timeout_s=30.0) as bare:
        for i in range(runs):
            level = Level(60 + 7 * i)
            cmds = []
            for gw in gateway_ids:
                cid = uuid.uuid4().hex
                levels = {Address(a): level for a in range(FAN_PER_GATEWAY)}
                cmds.append(
                    (
                        gw,
                        cid,
                        encode_command(
                            Command(cid, CommandSource.OVERRIDE, 0.0, levels, datetime.now(UTC))
                        ),
                    )
                )
            gc.collect()
            started = time.perf_counter()
            async with asyncio.TaskGroup() as tg:
                for gw, cid, payload in cmds:
                    tg.create_task(bare.command(gw, cid, payload))
            elapsed = time.perf_counter() - started
            print(
                f"   bare run {i + 1}: {len(cmds):,} commands published at QoS 1, all acked in {elapsed:.3f} s"
            )
            times.append(elapsed)
            await asyncio.sleep(BARE_PAUSE_S)  # the fleet's states after the burst go first
    return times


MODBUS_GATEWAYS = 200
MODBUS_PER_GATEWAY = 64


async def bench_modbus(quick: bool) -> None:
    from bench.protocols import bare_modbus_client, bare_poll
    from controller.config.settings import ModbusSettings
    from protocols.modbus import ModbusGateway
    from protocols.modbus_codec import plan_reads
    from protocols.register_map import load_builtin_profile

    cycles = 6 if quick else 20
    print(
        f"\n== modbus: one telemetry cycle = read all {MODBUS_GATEWAYS} fake Modbus gateways x "
        f"{MODBUS_PER_GATEWAY} luminaires concurrently (fleet in its own process); {cycles} "
        f"cycles per side, alternating, after one warm-up cycle each"
    )
    settings = ModbusSettings()
    profile = load_builtin_profile("reference")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        args = ["--modbus-gateways", str(MODBUS_GATEWAYS), "--per-gateway", str(MODBUS_PER_GATEWAY)]
        async with FleetProcess(args, tmp) as fleet, contextlib.AsyncExitStack() as stack:
            gws = [g for g in fleet.inventory["gateways"] if g["protocol"] == "modbus"]
            print(
                f"   fleet pid {fleet.proc.pid if fleet.proc else '?'} up in {time.perf_counter() - t0:.1f} s"
            )
            drivers = []
            for g in gws:
                # as Controller._open_modbus opens it (default counters_max_age_s=60)
                gw = ModbusGateway(
                    g["host"], int(g["port"]), unit_ids=g["unit_ids"],
                    luminaire_count=MODBUS_PER_GATEWAY, profile=profile, settings=settings,
                    name=g["name"],
                )  # fmt: skip
                await stack.enter_async_context(gw)
                drivers.append(gw)
            async with asyncio.timeout(30):
                for gw in drivers:
                    await gw.wait_connected()
            clients = []
            for g in gws:
                client = bare_modbus_client(int(g["port"]), settings)
                if not await client.connect():
                    raise RuntimeError(f"bare client cannot connect to {g['port']}")
                stack.callback(client.close)
                clients.append(client)
            status_plan = plan_reads(profile, MODBUS_PER_GATEWAY, every_poll_only=True)
            full_plan = plan_reads(profile, MODBUS_PER_GATEWAY)

            async def driver_cycle() -> None:
                results = await asyncio.gather(*(gw.read() for gw in drivers))
                assert all(len(r.luminaires) == MODBUS_PER_GATEWAY for r in results)

            async def bare_cycle(plan: Any) -> None:
                await asyncio.gather(*(bare_poll(c, plan) for c in clients))

            # warm-up: the driver's first read also fetches the counters block
            await driver_cycle()
            await bare_cycle(full_plan)
            d_t: list[float] = []
            b_t: list[float] = []
            d_cpu = b_cpu = 0.0
            d_req = 0
            for i in range(cycles):
                for side in ("d", "b") if i % 2 == 0 else ("b", "d"):
                    gc.collect()
                    req0 = sum(gw.stats.requests for gw in drivers)
                    c0, w0 = cpu_s(), time.perf_counter()
                    if side == "d":
                        await driver_cycle()
                        d_t.append(time.perf_counter() - w0)
                        d_cpu += cpu_s() - c0
                        d_req += sum(gw.stats.requests for gw in drivers) - req0
                    else:
                        await bare_cycle(status_plan)
                        b_t.append(time.perf_counter() - w0)
                        b_cpu += cpu_s() - c0
            d, b = statistics.median(d_t), statistics.median(b_t)
            ratio = d / b
            ok = ratio <= 1.3
            print(
                f"   driver ModbusGateway.read() x{len(drivers)}: median {d * 1000:.1f} ms "
                f"(min {min(d_t) * 1000:.1f}, max {max(d_t) * 1000:.1f}; CPU {d_cpu / cycles * 1000:.0f} ms/cycle; "
                f"{d_req / cycles / len(drivers):g} requests/gateway/cycle)"
            )
            print(
                f"   bare pymodbus plan_reads x{len(clients)}: median {b * 1000:.1f} ms "
                f"(min {min(b_t) * 1000:.1f}, max {max(b_t) * 1000:.1f}; CPU {b_cpu / cycles * 1000:.0f} ms/cycle; "
                f"{len(status_plan)} requests/gateway/cycle)"
            )
            print(f"   ratio driver/bare {ratio:.3f}  [{verdict(ok)}: <=1.3x]")
            record(
                "modbus cycle 200x64",
                f"{d * 1000:.0f} ms vs bare {b * 1000:.0f} ms = {ratio:.3f}x",
                ok,
            )


# --------------------------------------------------------------------------- main


async def main(which: str, quick: bool) -> int:
    logging.getLogger().addHandler(LOG_COUNTS)
    logging.getLogger().setLevel(logging.INFO)
    print(f"machine: {describe()}")
    print(f"command: {COMMAND}")
    started = time.perf_counter()
    if which in ("ingest", "all"):
        await bench_ingest(quick)
    if which in ("fanout", "footprint", "all"):
        await bench_fanout(
            quick, footprint=which in ("footprint", "all"), fanout=which != "footprint"
        )
    if which in ("modbus", "all"):
        await bench_modbus(quick)
    print(f"\n== summary ({time.perf_counter() - started:.0f} s; machine: {describe()})")
    for name, value, v in RESULTS:
        print(f"   {name:<34} {value:<52} {v}")
    return 0


async def import_child(url: str, path: str) -> None:
    async with connect(url) as db:
        await migrate.upgrade(db)
        inv = json.loads(Path(path).read_text(encoding="utf-8"))
        inv.pop("fleet", None)
        await import_bundle(db, inv)


if __name__ == "__main__" and sys.argv[1:2] == ["_import"]:
    asyncio.run(import_child(sys.argv[2], sys.argv[3]))
    sys.exit(0)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=["ingest", "fanout", "modbus", "footprint", "all"])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.which, args.quick)))
