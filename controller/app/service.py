"""Process entry points (the composition root): wire settings, database, broker, fleet,
controller and API.

Everything runs under one TaskGroup and unwinds in a fixed order on SIGTERM or Ctrl-C
(:class:`~controller.core.shutdown.Shutdown`): the API stops accepting requests, the
controller loops are cancelled (the telemetry writer flushes), then the demo's fake fleet
and local broker are stopped and waited for; the command exits 0. The demo's children
also stop when the demo is killed outright (:mod:`controller.demo.children`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime

import uvicorn

from api.app import create_app
from controller.access import auth
from controller.access.schemas import Role
from controller.app import logs
from controller.app import startup_checks as production
from controller.config.settings import Settings
from controller.core.clock import AcceleratedClock, Clock, SystemClock
from controller.core.shutdown import QuietServer, Shutdown
from controller.demo.broker import local_broker
from controller.demo.fleet_process import fake_fleet_process
from controller.demo.seed import seed_demo
from controller.export.publisher import NgsiPublisher
from controller.inventory.importer import ImportFormat, export_bundle, import_inventory
from controller.loop.runtime import Controller
from controller.store import migrate
from controller.store.db import Database, connect

log = logging.getLogger(__name__)


def configure_logging() -> None:
    logs.configure()


async def serve_api(
    settings: Settings,
    db: Database,
    controller: Controller | None,
    host: str,
    port: int,
    shutdown: Shutdown,
) -> None:
    """Serve the API until ``shutdown`` stops it; returns when uvicorn has shut down."""
    app = create_app(settings, db, controller=controller)
    config = uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="on")
    server = QuietServer(config)
    with shutdown.serving(server):
        await server.serve()
    log.info("API stopped")


async def run_with_api(
    settings: Settings,
    db: Database,
    controller: Controller,
    host: str,
    port: int,
    shutdown: Shutdown,
) -> None:
    """The controller, the IOC push and the API side by side; the API's exit ends them all."""
    push = NgsiPublisher(
        settings,
        db,
        live=controller.luminaire_state,
        mqtt=lambda: controller.mqtt_link,
        leadership=controller,
    )
    try:
        async with asyncio.TaskGroup() as tg:
            loops = tg.create_task(controller.run(), name="controller")
            await controller.wait_ready()
            pushing = tg.create_task(push.run(), name="ngsi-publisher")  # returns if [ioc] is off
            await serve_api(settings, db, controller, host, port, shutdown)
            pushing.cancel()
            loops.cancel()
    finally:
        log.info("controller stopped")


async def run_service(settings: Settings, *, host: str | None, port: int | None) -> None:
    """Production: the configured database, broker and gateways, real time."""
    configure_logging()
    async with Shutdown() as shutdown:
        await _serve(settings, host=host, port=port, shutdown=shutdown)


async def _serve(
    settings: Settings, *, host: str | None, port: int | None, shutdown: Shutdown
) -> None:
    await production.check_service(settings, api_host=host or settings.api.host)
    async with connect(settings.database_url, echo=settings.database.echo) as db:
        await migrate.prepare(db)
        controller = Controller(settings, db, SystemClock())
        await run_with_api(
            settings, db, controller, host or settings.api.host, port or settings.api.port,
            shutdown,
        )  # fmt: skip


async def run_demo(
    settings: Settings,
    *,
    host: str,
    port: int,
    admin_key: str | None,
    start: datetime | None = None,
    speed: float = 1.0,
) -> None:
    """Everything on embedded defaults, in one process tree."""
    configure_logging()
    async with Shutdown() as shutdown:
        await _demo(
            settings,
            host=host,
            port=port,
            admin_key=admin_key,
            start=start,
            speed=speed,
            shutdown=shutdown,
        )


async def _demo(
    settings: Settings,
    *,
    host: str,
    port: int,
    admin_key: str | None,
    start: datetime | None,
    speed: float,
    shutdown: Shutdown,
) -> None:
    clock: Clock = (
        SystemClock()
        if start is None and speed == 1.0
        else AcceleratedClock(start or SystemClock().now(), speed, time.time())
    )
    data_dir = settings.data_dir
    async with connect(settings.database_url) as db:
        await migrate.prepare(db)
        async with db.sessions() as session:
            seeded = await seed_demo(session=session)
            if admin_key:
                await auth.ensure_key(
                    session=session, name="demo-admin", role=Role.ADMIN, key=admin_key
                )
                key = admin_key
            else:
                key, _ = await auth.create_key(
                    session=session, name=f"demo-admin-{auth.generate_key()[3:9]}", role=Role.ADMIN
                )
            bundle = await export_bundle(session=session)
        if seeded is not None:
            print(f"Seeded {seeded.luminaires} luminaires on {seeded.gateways_created} gateways.")
        bundle_path = data_dir / "demo-inventory.geojson"
        await asyncio.to_thread(
            bundle_path.write_text, json.dumps(bundle, ensure_ascii=False), encoding="utf-8"
        )
        async with local_broker(data_dir) as broker:
            settings = settings.model_copy(
                update={
                    "mqtt": settings.mqtt.model_copy(
                        update={"host": broker.host, "port": broker.port, "username": None,
                                "password": None, "tls": False,
                                "protocol": "5" if broker.kind == "mosquitto" else "3.1.1"}
                    )
                }
            )  # fmt: skip
            out = data_dir / "fleet-inventory.geojson"
            async with fake_fleet_process(settings, bundle_path, out, clock) as served:
                # the fleet listens on free ports: point the gateways at them
                gateways_only = {"type": "FeatureCollection", "features": [],
                                 "gateways": served["gateways"]}  # fmt: skip
                async with db.sessions() as session:
                    await import_inventory(
                        session=session,
                        data=json.dumps(gateways_only).encode(),
                        fmt=ImportFormat.GEOJSON,
                        actor=auth.Principal(name="demo", role=Role.ADMIN),
                    )
                base = f"http://{host}:{port}"
                when = clock.now().astimezone(settings.site.tz).strftime("%Y-%m-%d %H:%M")
                print(
                    f"\nstreetlight demo for {settings.site.name}\n"
                    f"  Dashboard:     {base}/   (sign in with the admin key)\n"
                    f"  API:           {base}/api/v1   (docs: {base}/docs)\n"
                    f"  Admin key:     {key}\n"
                    f"  Try:           curl -H 'Authorization: Bearer {key}' "
                    f"{base}/api/v1/state/summary\n"
                    f"  Broker:        {broker.kind} on {broker.host}:{broker.port}\n"
                    f"  Fake fleet:    {len(served['gateways'])} gateways, control at "
                    f"{served['fleet']['control_url']}\n"
                    f"  Clock:         {when} local, x{clock.speed:g}\n"
                    f"  Data:          {data_dir.resolve()}\n"
                    "  Stop with Ctrl-C.\n",
                    flush=True,
                )
                controller = Controller(settings, db, clock)
                await run_with_api(settings, db, controller, host, port, shutdown)
