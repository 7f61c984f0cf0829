"""Process entry points: wire settings, database and API, run until stopped."""

from __future__ import annotations

import logging

import uvicorn

from api.app import create_app
from controller import auth, migrate
from controller.db import Database, connect
from controller.demo_seed import seed_demo
from controller.schemas import Role
from controller.settings import Settings

log = logging.getLogger(__name__)


async def _serve_api(settings: Settings, db: Database, host: str, port: int) -> None:
    app = create_app(settings, db)
    config = uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="on")
    server = uvicorn.Server(config)
    await server.serve()


async def run_service(settings: Settings, *, host: str | None, port: int | None) -> None:
    """Production: migrate, then serve the API on the configured database."""
    async with connect(settings.database_url, echo=settings.database.echo) as db:
        await migrate.prepare(db)
        await _serve_api(settings, db, host or settings.api.host, port or settings.api.port)


async def run_demo(settings: Settings, *, host: str, port: int, admin_key: str | None) -> None:
    """The demo: SQLite under the data directory, seeded inventory, an admin key, the API."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
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
        if seeded is not None:
            print(f"Seeded {seeded.luminaires} luminaires on {seeded.gateways_created} gateways.")
        base = f"http://{host}:{port}"
        print(
            f"\nstreetlight demo for {settings.site.name}\n"
            f"  API:       {base}/api/v1   (docs: {base}/docs)\n"
            f"  Admin key: {key}\n"
            f"  Try:       curl -H 'Authorization: Bearer {key}' {base}/api/v1/luminaires?limit=3\n"
            f"  Data:      {settings.data_dir.resolve()}\n"
            "  Stop with Ctrl-C.\n",
            flush=True,
        )
        await _serve_api(settings, db, host, port)
