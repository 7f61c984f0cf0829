"""The ``streetlight`` command line: the composition root of the system."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from controller.errors import ConfigError, LightingError
from controller.schemas import Role
from controller.settings import Settings, load_settings

T = TypeVar("T")

app = typer.Typer(
    help="streetlight: open smart street-lighting control (Modbus TCP, MQTT, schedules, API).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
key_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(db_app, name="db", help="Database schema migrations (upgrade, current).")
app.add_typer(key_app, name="apikey", help="API keys: create (printed once), list, revoke.")


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _settings(ctx: typer.Context, **overrides: Any) -> Settings:
    config: Path | None = ctx.obj.get("config") if ctx.obj else None
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        raise fail(str(exc)) from exc


def _run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(coro_fn())
    except LightingError as exc:
        raise fail(str(exc), 1) from exc


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML settings file", envvar="STREETLIGHT_CONFIG"),
    ] = None,
) -> None:
    """Settings come from --config (TOML), then STREETLIGHT_* environment variables."""
    ctx.obj = {"config": config}


async def _with_db(settings: Settings, work: Callable[..., Awaitable[T]]) -> T:
    from controller import migrate
    from controller.db import connect

    async with connect(settings.database_url, echo=settings.database.echo) as db:
        await migrate.upgrade(db)
        return await work(db)


# --- db ------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply schema migrations up to REVISION (default: the newest)."""
    from controller import migrate
    from controller.db import connect

    settings = _settings(ctx)

    async def work() -> str | None:
        async with connect(settings.database_url) as db:
            await migrate.upgrade(db, revision)
            return await migrate.current_revision(db)

    current = _run(work)
    typer.echo(f"database at revision {current} ({_redact(settings.database_url)})")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the schema revision of the database and the newest available."""
    from controller import migrate
    from controller.db import connect

    settings = _settings(ctx)

    async def work() -> str | None:
        async with connect(settings.database_url) as db:
            return await migrate.current_revision(db)

    typer.echo(f"current: {_run(work)}  head: {migrate.head_revision()}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- inventory -----------------------------------------------------------------------------


@app.command("import")
def import_file(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or geojson (default: from the name)")
    ] = None,
) -> None:
    """Import luminaires from a CSV or GeoJSON file (all rows or none)."""
    from controller.auth import Principal
    from controller.errors import InvalidInput
    from controller.importer import ImportFormat, detect_format, import_inventory

    settings = _settings(ctx)
    chosen = ImportFormat(fmt) if fmt else detect_format(file.name, None)
    data = file.read_bytes()

    async def work(db: Any) -> Any:
        async with db.sessions() as session:
            return await import_inventory(
                session=session,
                data=data,
                fmt=chosen,
                actor=Principal(name="cli", role=Role.ADMIN),
            )

    try:
        result = asyncio.run(_with_db(settings, work))
    except InvalidInput as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        for problem in exc.errors:
            where = f"row {problem.row}: " if problem.row is not None else ""
            typer.echo(f"  {where}{problem.field}: {problem.message}", err=True)
        raise typer.Exit(1) from exc
    except LightingError as exc:
        raise fail(str(exc), 1) from exc
    typer.echo(
        f"imported {result.luminaires} luminaire(s); gateways created "
        f"{result.gateways_created}, updated {result.gateways_updated}; lamp types created "
        f"{result.lamp_types_created}"
    )


@app.command("seed-demo")
def seed_demo_cmd(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option(help="Seed even if luminaires exist")] = False,
) -> None:
    """Load the synthetic Đông Hà inventory (9 wards, 10 gateways, 500 luminaires)."""
    from controller.demo_seed import seed_demo

    settings = _settings(ctx)

    async def work(db: Any) -> Any:
        async with db.sessions() as session:
            return await seed_demo(session=session, force=force)

    result = _run(lambda: _with_db(settings, work))
    if result is None:
        typer.echo("inventory already present; nothing seeded (use --force to add anyway)")
    else:
        typer.echo(f"seeded {result.luminaires} luminaires on {result.gateways_created} gateways")


# --- api keys ------------------------------------------------------------------------------


@key_app.command("create")
def key_create(
    ctx: typer.Context,
    role: Annotated[Role, typer.Option(help="admin, operator, maintenance or viewer")],
    name: Annotated[str, typer.Option(help="A unique name, e.g. the person or system")],
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from controller import auth

    settings = _settings(ctx)

    async def work(db: Any) -> tuple[str, Any]:
        async with db.sessions() as session:
            return await auth.create_key(session=session, name=name, role=role)

    key, public = _run(lambda: _with_db(settings, work))
    typer.echo(key)
    typer.echo(f"created key {public.name!r} ({public.role.value}); store it now", err=True)


@key_app.command("list")
def key_list(ctx: typer.Context) -> None:
    """List keys (name, role, prefix, created, revoked)."""
    from controller import auth

    settings = _settings(ctx)

    async def work(db: Any) -> list[Any]:
        async with db.sessions() as session:
            return await auth.list_keys(session=session)

    for k in _run(lambda: _with_db(settings, work)):
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        typer.echo(f"{k.id:>4}  {k.name:<24} {k.role.value:<12} {k.prefix}…  {state}")


@key_app.command("revoke")
def key_revoke(
    ctx: typer.Context, key: Annotated[str, typer.Argument(help="The key's name or id")]
) -> None:
    """Revoke a key by name or id."""
    from controller import auth

    settings = _settings(ctx)

    async def work(db: Any) -> Any:
        async with db.sessions() as session:
            return await auth.revoke_key(session=session, name_or_id=key)

    public = _run(lambda: _with_db(settings, work))
    typer.echo(f"revoked {public.name!r}")


# --- running -------------------------------------------------------------------------------


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings)")] = None,
) -> None:
    """Production mode: the API on the configured database."""
    from controller.main import run_service

    settings = _settings(ctx)
    _run(lambda: run_service(settings, host=host, port=port))


@app.command("demo")
def demo(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    host: Annotated[str, typer.Option(help="Bind address")] = "127.0.0.1",
    admin_key: Annotated[
        str | None,
        typer.Option(
            help="Use this admin key (else STREETLIGHT_ADMIN_KEY, else a generated one)",
            envvar="STREETLIGHT_ADMIN_KEY",
        ),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the demo keeps its data")] = None,
) -> None:
    """Everything on embedded defaults: SQLite, the seeded Đông Hà inventory, the API."""
    from controller.main import run_demo

    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = _settings(ctx, **overrides)
    _run(lambda: run_demo(settings, host=host, port=port, admin_key=admin_key))


def entrypoint() -> None:  # pragma: no cover - console script shim
    sys.exit(app())
