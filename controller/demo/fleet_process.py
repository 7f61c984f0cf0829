"""The fake fleet as a process: ``streetlight fake-fleet`` and the demo's child running it.

The only place in ``controller/`` that imports :mod:`fake_luminaires` (the CLI reaches
it lazily, through :func:`run_fake_fleet`). :func:`fake_fleet_process` is the demo's
side: the child is tied to the demo by a lifeline on its stdin and PR_SET_PDEATHSIG
(:mod:`controller.demo.children`), so it never outlives it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from controller.config.settings import MqttSettings, Settings
from controller.core.clock import AcceleratedClock, Clock
from controller.core.errors import ConfigError
from controller.core.shutdown import Shutdown
from controller.demo.children import spawn, stop_child

READY = b"READY"


def invent_bundle(modbus_gateways: int, mqtt_gateways: int, per_gateway: int) -> dict[str, Any]:
    """An import bundle of N Modbus and M MQTT gateways of K luminaires (see fake_luminaires)."""
    from fake_luminaires.fleet import synthetic_bundle

    return synthetic_bundle(modbus_gateways, mqtt_gateways, per_gateway)


async def run_fake_fleet(
    bundle: Mapping[str, Any],
    *,
    clock: Clock,
    mqtt: MqttSettings,
    seed: int,
    state_interval_s: float,
    mqtt_gateways_per_connection: int,
    control_port: int,
    inventory_out: Path | None,
    lifeline: bool,
) -> None:
    """Serve ``bundle``'s gateways until SIGTERM, SIGINT or (``lifeline``) the end of stdin.

    Prints ``READY`` on stdout once every gateway listens and ``inventory_out`` is written.
    """
    from fake_luminaires.fleet import Fleet, serve_fleet, specs_from_bundle

    fleet = Fleet(
        specs_from_bundle(bundle),
        clock=clock,
        mqtt=mqtt,
        seed=seed,
        state_interval_s=state_interval_s,
        mqtt_gateways_per_connection=mqtt_gateways_per_connection,
    )
    async with Shutdown(lifeline=lifeline):
        ready = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                serve_fleet(
                    fleet,
                    bundle=bundle,
                    inventory_out=inventory_out,
                    control_port=control_port,
                    ready=ready,
                ),
                name="fleet",
            )
            await ready.wait()
            print(READY.decode(), flush=True)


@asynccontextmanager
async def fake_fleet_process(
    settings: Settings, bundle_path: Path, out_path: Path, clock: Clock
) -> AsyncIterator[dict[str, Any]]:
    """``streetlight fake-fleet`` in a child process; yields the inventory it serves."""
    args = [
        sys.executable, "-m", "controller", "fake-fleet", "--lifeline",
        "--inventory", str(bundle_path), "--inventory-out", str(out_path),
        "--broker", f"mqtt://{settings.mqtt.host}:{settings.mqtt.port}",
        "--prefix", settings.mqtt.prefix, "--state-interval", "10",
    ]  # fmt: skip
    if isinstance(clock, AcceleratedClock):
        args += [
            "--start", clock.start.isoformat(), "--speed", str(clock.speed),
            "--origin", repr(clock.origin),
        ]  # fmt: skip
    proc = await spawn(*args, lifeline=True, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    raise ConfigError("the fake fleet exited before it was ready")
                if line.strip() == READY:
                    break
        yield json.loads(await asyncio.to_thread(out_path.read_text, encoding="utf-8"))
    finally:
        await stop_child(proc, "fake fleet", timeout_s=10)


def configure_logging() -> None:
    """Plain lines: the fleet is a tool, its output is read by people."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
