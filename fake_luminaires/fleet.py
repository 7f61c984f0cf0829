"""A fleet of fake gateways of both protocols, in one process, with a control interface.

Used by ``streetlight fake-fleet`` (its own process, for the demo and benchmarks)
and in-process by the end-to-end tests. The fleet either invents an inventory
(``--modbus-gateways N --mqtt-gateways M --per-gateway K``) or serves an existing
one (an import bundle: GeoJSON with ``gateways`` and ``lamp_types``); either way it
listens on free loopback ports and writes the inventory it serves, in the import
format, with the real ports, so the controller can adopt the fleet.

Control interface (HTTP on loopback, JSON):

- ``GET  /gateways``: every gateway with its protocol, port, faults and luminaire count
- ``POST /faults`` ``{"gateway": name, "fault": "lamp_failure", "address": 3}``: inject
- ``DELETE /faults`` with the same body: clear
- ``GET  /gateways/{name}/energy``: each luminaire's exact energy counter (Wh) now
- ``GET  /gateways/{name}/levels``: each luminaire's commanded level (%)
- ``POST /gateways/{name}/reset``: its luminaires restart at their power-on level (0 %)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from controller.core.clock import Clock
from controller.core.values import Address, ProtocolKind
from fake_luminaires.modbus_front import ModbusFront
from fake_luminaires.model import FakeGateway, GatewayFault, LuminaireFault
from fake_luminaires.mqtt_front import FakeMqttFleet
from protocols.mqtt_client import MqttConnection

log = logging.getLogger(__name__)

DONG_HA = (16.8163, 107.1003)


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    """One gateway to simulate: its name, protocol, luminaires and their rated power."""

    name: str
    protocol: ProtocolKind
    count: int
    rated_power_w: float = 100.0
    mqtt_id: str | None = None
    unit_ids: tuple[int, ...] = ()


def synthetic_bundle(modbus: int, mqtt: int, per_gateway: int) -> dict[str, Any]:
    """An import bundle for N Modbus and M MQTT gateways of K luminaires on a grid."""
    gateways: list[dict[str, Any]] = []
    features: list[dict[str, Any]] = []
    specs = [("mb", ProtocolKind.MODBUS, i) for i in range(modbus)] + [
        ("mq", ProtocolKind.MQTT, i) for i in range(mqtt)
    ]
    units = max(1, -(-per_gateway // 64))
    for g, (kind, protocol, i) in enumerate(specs):
        name = f"fake-{kind}-{i + 1:04d}"
        gw: dict[str, Any] = {"name": name, "protocol": protocol.value, "ward": "Phường 1"}
        if protocol is ProtocolKind.MODBUS:
            gw |= {"host": "127.0.0.1", "port": 502, "unit_ids": list(range(1, units + 1))}
        else:
            gw["mqtt_id"] = name
        gateways.append(gw)
        for a in range(per_gateway):
            features.append(
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "Point",
                        "coordinates": [
                            round(DONG_HA[1] + (a % 100) * 2e-4, 6),
                            round(DONG_HA[0] + (g * (per_gateway // 100 + 1) + a // 100) * 2e-4, 6),
                        ],
                    },
                    "properties": {
                        "name": f"{name}-{a:03d}",
                        "gateway": name,
                        "address": a,
                        "lamp_type": "LED 100 W",
                        "street": f"Fake street {g + 1}",
                        "ward": "Phường 1",
                    },
                }
            )
    return {
        "type": "FeatureCollection",
        "lamp_types": [{"name": "LED 100 W", "rated_power_w": 100.0}],
        "gateways": gateways,
        "features": features,
    }


def specs_from_bundle(bundle: Mapping[str, Any]) -> list[GatewaySpec]:
    """The gateways of an import bundle, with how many addresses each must serve."""
    rated = {t["name"]: float(t.get("rated_power_w", 100.0)) for t in bundle.get("lamp_types", [])}
    counts: dict[str, int] = {}
    power: dict[str, float] = {}
    for feature in bundle.get("features", []):
        props = feature["properties"]
        gw = props["gateway"]
        counts[gw] = max(counts.get(gw, 0), int(props["address"]) + 1)
        power.setdefault(gw, rated.get(props.get("lamp_type", ""), 100.0))
    return [
        GatewaySpec(
            name=g["name"],
            protocol=ProtocolKind(g["protocol"]),
            count=counts.get(g["name"], 0),
            rated_power_w=power.get(g["name"], 100.0),
            mqtt_id=g.get("mqtt_id"),
            unit_ids=tuple(g.get("unit_ids", ())),
        )
        for g in bundle.get("gateways", [])
    ]


class FaultRequest(BaseModel):
    gateway: str
    fault: str
    address: int | None = None


class Fleet:
    """Fake gateways of both protocols; an async context manager owning their servers."""

    def __init__(
        self,
        specs: list[GatewaySpec],
        *,
        clock: Clock,
        mqtt: MqttConnection | None,
        seed: int = 0,
        state_interval_s: float = 10.0,
        mqtt_gateways_per_connection: int = 1,
        host: str = "127.0.0.1",
    ) -> None:
        start = clock.now()
        self.clock = clock
        self.host = host
        self.specs = {s.name: s for s in specs}
        self.models: dict[str, FakeGateway] = {
            s.name: FakeGateway(
                s.mqtt_id or s.name, s.count, start=start, seed=seed * 100_003 + i,
                rated_power_w=s.rated_power_w,
            )
            for i, s in enumerate(specs)
        }  # fmt: skip
        self.modbus: dict[str, ModbusFront] = {}
        self.mqtt: FakeMqttFleet | None = None
        mqtt_models = [self.models[s.name] for s in specs if s.protocol is ProtocolKind.MQTT]
        if mqtt_models:
            if mqtt is None:
                raise ValueError("MQTT gateways need broker settings")
            self.mqtt = FakeMqttFleet(
                mqtt_models,
                mqtt,
                clock=clock,
                interval_s=state_interval_s,
                gateways_per_connection=mqtt_gateways_per_connection,
                client_id_prefix=f"fake-{mqtt.prefix}-{seed}",
            )
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        await stack.__aenter__()
        self._stack = stack
        try:
            for name, spec in self.specs.items():
                if spec.protocol is ProtocolKind.MODBUS:
                    front = ModbusFront(
                        self.models[name],
                        clock=self.clock,
                        unit_ids=spec.unit_ids or None,
                        host=self.host,
                    )
                    self.modbus[name] = await stack.enter_async_context(front)
            if self.mqtt is not None:
                await stack.enter_async_context(self.mqtt)
                await self.mqtt.wait_online(timeout_s=30.0)
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        await self._stack.__aexit__(exc_type, exc, tb)
        self._stack = None

    def _fault(self, fault: str) -> LuminaireFault | GatewayFault:
        for kind in (LuminaireFault, GatewayFault):
            try:
                return kind(fault)
            except ValueError:
                continue
        raise ValueError(f"unknown fault {fault!r}")

    async def inject(self, gateway: str, fault: str, address: int | None = None) -> None:
        await self._change(gateway, fault, address, inject=True)

    async def clear(self, gateway: str, fault: str, address: int | None = None) -> None:
        await self._change(gateway, fault, address, inject=False)

    async def _change(self, gateway: str, fault: str, address: int | None, *, inject: bool) -> None:
        if gateway not in self.specs:
            raise KeyError(gateway)
        kind = self._fault(fault)
        addr = None if address is None else Address(address)
        if isinstance(kind, LuminaireFault) and addr is None:
            raise ValueError(f"{fault} needs an address")
        spec = self.specs[gateway]
        if spec.protocol is ProtocolKind.MODBUS:
            front = self.modbus[gateway]
            await (front.inject(kind, addr) if inject else front.clear(kind, addr))
        else:
            assert self.mqtt is not None
            gw_id = spec.mqtt_id or gateway
            (self.mqtt.inject if inject else self.mqtt.clear)(gw_id, kind, addr)

    def inventory(self, bundle: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The import bundle with the gateways' real ports (and the luminaires, if given)."""
        gateways = []
        source = {g["name"]: g for g in (bundle or {}).get("gateways", [])}
        for name, spec in self.specs.items():
            gw = dict(source.get(name, {"name": name, "protocol": spec.protocol.value}))
            if spec.protocol is ProtocolKind.MODBUS:
                front = self.modbus[name]
                gw |= {"host": self.host, "port": front.port, "unit_ids": sorted(front.units)}
            else:
                gw["mqtt_id"] = spec.mqtt_id or name
            gateways.append(gw)
        out = dict(bundle or {"type": "FeatureCollection", "features": []})
        out["gateways"] = gateways
        return out

    def energy_wh(self, gateway: str) -> dict[int, float]:
        """Exact energy counters of a gateway's luminaires, advanced to now."""
        model = self.models[gateway]
        now = self.clock.now()
        out = {}
        for address, lum in model.luminaires.items():
            lum.reading(now)
            out[int(address)] = lum.energy_wh_exact
        return out

    def control_app(self) -> FastAPI:
        app = FastAPI(title="streetlight fake fleet control", docs_url=None, redoc_url=None)

        @app.get("/gateways")
        async def gateways() -> list[dict[str, Any]]:
            return [
                {
                    "name": name,
                    "protocol": spec.protocol.value,
                    "port": self.modbus[name].port if name in self.modbus else None,
                    "mqtt_id": spec.mqtt_id,
                    "luminaires": spec.count,
                    "faults": sorted(f.value for f in self.models[name].faults),
                }
                for name, spec in self.specs.items()
            ]

        @app.post("/faults", status_code=204)
        async def inject(body: FaultRequest) -> None:
            await self._http_change(body, inject=True)

        @app.delete("/faults", status_code=204)
        async def clear(body: FaultRequest) -> None:
            await self._http_change(body, inject=False)

        @app.get("/gateways/{name}/levels")
        async def levels(name: str) -> dict[int, int]:
            if name not in self.models:
                raise HTTPException(404, f"no gateway {name!r}")
            return {int(a): lum.commanded_level for a, lum in self.models[name].luminaires.items()}

        @app.post("/gateways/{name}/reset", status_code=204)
        async def reset(name: str) -> None:
            """The gateway's luminaires restart at their power-on level (0 %)."""
            if name not in self.models:
                raise HTTPException(404, f"no gateway {name!r}")
            model = self.models[name]
            model.command(dict.fromkeys(model.luminaires, 0), self.clock.now())

        @app.get("/gateways/{name}/energy")
        async def energy(name: str) -> dict[int, float]:
            if name not in self.models:
                raise HTTPException(404, f"no gateway {name!r}")
            return self.energy_wh(name)

        return app

    async def _http_change(self, body: FaultRequest, *, inject: bool) -> None:
        try:
            await self._change(body.gateway, body.fault, body.address, inject=inject)
        except KeyError as exc:
            raise HTTPException(404, f"no gateway {body.gateway!r}") from exc
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc


class _ControlServer(uvicorn.Server):
    """uvicorn without its signal handlers: the process running the fleet stops it in order
    (uvicorn would raise SIGTERM again after its own shutdown, ending the process mid-unwind)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_fleet(
    fleet: Fleet,
    *,
    bundle: Mapping[str, Any] | None,
    inventory_out: Path | None,
    control_port: int,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the fleet and its control API until cancelled; write the inventory once up."""
    async with fleet:
        config = uvicorn.Config(
            fleet.control_app(), host="127.0.0.1", port=control_port, log_level="warning"
        )
        server = _ControlServer(config)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", control_port))
        sock.listen(128)
        port = sock.getsockname()[1]
        async with asyncio.TaskGroup() as tg:
            serving = tg.create_task(server.serve(sockets=[sock]), name="fleet-control")
            inventory = fleet.inventory(bundle)
            inventory["fleet"] = {"control_url": f"http://127.0.0.1:{port}"}
            if inventory_out is not None:
                tmp = inventory_out.with_suffix(".tmp")
                tmp.write_text(json.dumps(inventory, ensure_ascii=False), encoding="utf-8")
                tmp.replace(inventory_out)
            log.info(
                "fleet up: %d modbus, %d mqtt gateways; control at http://127.0.0.1:%d",
                len(fleet.modbus),
                len(fleet.specs) - len(fleet.modbus),
                port,
            )
            if ready is not None:
                ready.set()
            try:
                await asyncio.shield(serving)
            except asyncio.CancelledError:  # stop the control API gracefully, then unwind
                server.should_exit = True
                await serving
                raise
