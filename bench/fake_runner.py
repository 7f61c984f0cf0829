"""The fakes for ``bench.protocols``, in their own process.

``python -m bench.fake_runner --modbus 50 --mqtt 200 --per-gateway 64 --broker-port P``
starts N fake Modbus TCP gateways (one :class:`ModbusFront` each, unit id 1, free
loopback ports) and M fake MQTT gateways (one :class:`FakeMqttFleet`, one
connection per gateway as a real gateway has), then prints one JSON line with the
Modbus ports and MQTT gateway ids, then ``READY``.

It then reads commands on stdin, one per line, and answers each with one JSON
line on stdout:

- ``report on`` / ``report off``: the MQTT fakes publish (or not) their state after
  every command (``FakeMqttFleet.report_on_command``).
- ``stats``: request counters (Modbus reads/writes summed over all fronts, MQTT
  commands), so the benchmark can check both sides sent the same requests.

End of stdin (or SIGTERM) stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from contextlib import AsyncExitStack
from typing import Any

from controller.config.settings import MqttSettings
from controller.core.clock import SystemClock
from fake_luminaires.modbus_front import ModbusFront
from fake_luminaires.model import FakeGateway
from fake_luminaires.mqtt_front import FakeMqttFleet


def _say(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def run(args: argparse.Namespace) -> None:
    clock = SystemClock()
    start = clock.now()
    fronts = [
        ModbusFront(FakeGateway(f"mb-{i:03d}", args.per_gateway, start=start, seed=i), clock=clock)
        for i in range(args.modbus)
    ]
    fleet: FakeMqttFleet | None = None
    if args.mqtt:
        settings = MqttSettings(host="127.0.0.1", port=args.broker_port, prefix=args.prefix)
        models = [
            FakeGateway(f"mq-{i:03d}", args.per_gateway, start=start, seed=10_000 + i)
            for i in range(args.mqtt)
        ]
        fleet = FakeMqttFleet(
            models,
            settings,
            clock=clock,
            interval_s=args.state_interval,
            gateways_per_connection=args.per_connection,
            client_id_prefix=f"bench-fake-{args.prefix}",
            report_on_command=False,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with AsyncExitStack() as stack:
        for front in fronts:
            await stack.enter_async_context(front)
        if fleet is not None:
            await stack.enter_async_context(fleet)
            await fleet.wait_online(timeout_s=120.0)
        _say(
            {
                "modbus": [{"port": f.port, "unit_ids": sorted(f.units)} for f in fronts],
                "mqtt": [f"mq-{i:03d}" for i in range(args.mqtt)],
            }
        )
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        reader = await _stdin_lines()
        stopping = asyncio.create_task(stop.wait())
        while not stop.is_set():
            reading = asyncio.create_task(reader.readline())
            done, _ = await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if reading not in done:
                reading.cancel()
                break
            line = reading.result().decode().strip()
            if not line:  # EOF
                break
            if line in ("report on", "report off"):
                if fleet is not None:
                    fleet.report_on_command = line == "report on"
                _say({"report_on_command": fleet.report_on_command if fleet else None})
            elif line == "stats":
                _say(
                    {
                        "modbus_reads": sum(f.stats.reads for f in fronts),
                        "modbus_writes": sum(f.stats.writes for f in fronts),
                        "modbus_exceptions": sum(f.stats.exceptions for f in fronts),
                        "mqtt_commands": fleet.stats.commands if fleet else 0,
                        "mqtt_states": fleet.stats.states if fleet else 0,
                        "mqtt_malformed": fleet.stats.malformed if fleet else 0,
                    }
                )
            else:
                _say({"error": f"unknown command {line!r}"})
        stopping.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--modbus", type=int, default=50)
    parser.add_argument("--mqtt", type=int, default=200)
    parser.add_argument("--per-gateway", type=int, default=64)
    parser.add_argument("--broker-port", type=int, default=1883)
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--per-connection", type=int, default=1)
    parser.add_argument(
        "--state-interval", type=float, default=86_400.0, help="periodic MQTT state, s"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="fake %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
