"""The ``streetlight`` command line: the composition root of the system."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from controller.access.schemas import Role
from controller.config.settings import Settings, SiteSettings, load_settings
from controller.core.errors import ConfigError, LightingError

T = TypeVar("T")

app = typer.Typer(
    help="streetlight: open smart street-lighting control (Modbus TCP, MQTT, schedules, API).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
key_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(
    db_app, name="db", help="Database schema migrations (upgrade, current), energy rollup."
)
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
    from controller.store import migrate
    from controller.store.db import connect

    async with connect(settings.database_url, echo=settings.database.echo) as db:
        await migrate.prepare(db)
        return await work(db)


# --- db ------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply schema migrations up to REVISION (default: the newest)."""
    from controller.store import migrate
    from controller.store.db import connect

    settings = _settings(ctx)

    async def work() -> str | None:
        async with connect(settings.database_url) as db:
            await migrate.upgrade(db, revision)
            if revision == "head":
                await migrate.prepare(db)
            return await migrate.current_revision(db)

    current = _run(work)
    typer.echo(f"database at revision {current} ({_redact(settings.database_url)})")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the schema revision of the database and the newest available."""
    from controller.store import migrate
    from controller.store.db import connect

    settings = _settings(ctx)

    async def work() -> str | None:
        async with connect(settings.database_url) as db:
            return await migrate.current_revision(db)

    typer.echo(f"current: {_run(work)}  head: {migrate.head_revision()}")


@db_app.command("rollup")
def db_rollup(
    ctx: typer.Context,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild", help="Rebuild every month, e.g. after energy_daily was changed by hand"
        ),
    ] = False,
) -> None:
    """Sum energy_daily into energy_monthly now (the controller does it every night)."""
    from controller.energy.rollup import RollupRun, close_months

    settings = _settings(ctx)

    async def work(db: Any) -> RollupRun:
        return await close_months(
            db=db, site=settings.site.to_site(), now=datetime.now(UTC), rebuild=rebuild
        )

    run = _run(lambda: _with_db(settings, work))
    months = ", ".join(m.strftime("%Y-%m") for m in run.months) or "none, all current"
    typer.echo(f"months rebuilt: {months} ({run.rows} rows, {run.seconds:.1f} s)")


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
    from controller.access.auth import Principal
    from controller.core.errors import InvalidInput
    from controller.inventory.importer import ImportFormat, detect_format, import_inventory

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
    from controller.demo.seed import seed_demo

    settings = _settings(ctx)

    async def work(db: Any) -> Any:
        async with db.sessions() as session:
            return await seed_demo(session=session, force=force)

    result = _run(lambda: _with_db(settings, work))
    if result is None:
        typer.echo("inventory already present; nothing seeded (use --force to add anyway)")
    else:
        typer.echo(f"seeded {result.luminaires} luminaires on {result.gateways_created} gateways")


# --- schedules -----------------------------------------------------------------------------


class SunFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    TABLE = "table"


@app.command("sun")
def sun_cmd(
    ctx: typer.Context,
    start: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First date (default today, local)"),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=3660, help="How many days")] = 1,
    lat: Annotated[float | None, typer.Option(help="Latitude (default from settings)")] = None,
    lon: Annotated[float | None, typer.Option(help="Longitude (default from settings)")] = None,
    tz: Annotated[str | None, typer.Option(help="IANA time zone (default from settings)")] = None,
    elevation: Annotated[float | None, typer.Option(help="Observer height, m")] = None,
    horizon_dip: Annotated[
        bool | None,
        typer.Option(help="Lower sunrise/sunset's horizon by the dip seen from the height"),
    ] = None,
    fmt: Annotated[
        SunFormat, typer.Option("--format", help="csv, json or table")
    ] = SunFormat.TABLE,
) -> None:
    """Sunrise, sunset, civil and nautical twilight for the site (local time)."""
    from schedules.almanac import format_csv, format_json, format_text, tabulate_sun_events

    settings = _settings(ctx)
    overrides = {
        k: v
        for k, v in {
            "latitude": lat,
            "longitude": lon,
            "timezone": tz,
            "elevation_m": elevation,
            "horizon_dip": horizon_dip,
        }.items()
        if v is not None
    }
    try:
        site_settings = SiteSettings.model_validate(settings.site.model_dump() | overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise fail(f"--{err['loc'][0]}: {err['msg']}") from exc
    site = site_settings.to_site()
    first = start.date() if start is not None else datetime.now(site_settings.tz).date()
    rows = tabulate_sun_events(site, first, days)
    formatter = {
        SunFormat.CSV: format_csv,
        SunFormat.JSON: format_json,
        SunFormat.TABLE: format_text,
    }
    typer.echo(formatter[fmt](rows), nl=False)


@app.command("timeline")
def timeline_cmd(
    ctx: typer.Context,
    group: Annotated[str | None, typer.Option(help="Group name or id")] = None,
    luminaire: Annotated[str | None, typer.Option(help="Luminaire (pole) name or id")] = None,
    night: Annotated[
        datetime | None,
        typer.Option("--date", formats=["%Y-%m-%d"], help="The night's date (default tonight)"),
    ] = None,
) -> None:
    """The night's level changes for a group or luminaire: local time, level, source."""
    from controller.scheduling.timeline import SubjectKind, find_subject, subject_timeline
    from schedules.program import step_number, tonight

    if (group is None) == (luminaire is None):
        raise fail("give exactly one of --group or --luminaire")
    settings = _settings(ctx)
    site = settings.site.to_site()
    the_night = night.date() if night is not None else tonight(site, datetime.now(site.tzinfo))
    kind = SubjectKind.GROUP if group is not None else SubjectKind.LUMINAIRE
    name_or_id = group if group is not None else luminaire
    assert name_or_id is not None

    async def work(db: Any) -> tuple[str, Any]:
        async with db.sessions() as session:
            subject, name = await find_subject(session=session, kind=kind, name_or_id=name_or_id)
            found = await subject_timeline(
                session=session, settings=settings, subject=subject, night=the_night
            )
            calendar = found.calendar or "none"
            return f"{kind.value} {name}, night of {the_night}, calendar {calendar}", found.changes

    title, changes = _run(lambda: _with_db(settings, work))
    typer.echo(title)
    for change in changes:
        d = change.decision
        why = d.source.value
        if d.program is not None:
            step = f" step {step_number(d.step_index)}" if d.step_index is not None else ""
            why += f" {d.program}{step}"
        if d.override_id is not None:
            why += f" #{d.override_id}"
        typer.echo(f"  {change.at.strftime('%Y-%m-%d %H:%M:%S%z')}  {change.level:>3} %  {why}")


# --- fake fleet ----------------------------------------------------------------------------


@app.command("fake-fleet")
def fake_fleet(
    ctx: typer.Context,
    broker: Annotated[str, typer.Option(help="mqtt://HOST:PORT of the broker")] = "",
    modbus_gateways: Annotated[int, typer.Option(min=0, help="Modbus gateways to invent")] = 0,
    mqtt_gateways: Annotated[int, typer.Option(min=0, help="MQTT gateways to invent")] = 0,
    per_gateway: Annotated[int, typer.Option(min=1, max=256, help="Luminaires per gateway")] = 64,
    inventory: Annotated[
        Path | None, typer.Option(help="Serve this import bundle instead of inventing one")
    ] = None,
    inventory_out: Annotated[
        Path | None, typer.Option(help="Write the served inventory (real ports) here")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated devices")] = 0,
    speed: Annotated[
        float, typer.Option(min=0.001, help="Clock speed (600 = a night in ~80 s)")
    ] = 1.0,
    start: Annotated[
        datetime | None, typer.Option(help="Simulated start instant (ISO, with offset)")
    ] = None,
    origin: Annotated[
        float | None, typer.Option(help="Wall-clock epoch of --start (to share a clock)")
    ] = None,
    control_port: Annotated[int, typer.Option(help="Control API port (0 = free)")] = 0,
    state_interval: Annotated[float, typer.Option(help="MQTT state every N clock s")] = 10.0,
    mqtt_per_connection: Annotated[
        int, typer.Option(min=1, help="MQTT gateways multiplexed per connection")
    ] = 1,
    prefix: Annotated[str | None, typer.Option(help="MQTT topic prefix")] = None,
    lifeline: Annotated[
        bool, typer.Option(help="Also stop when stdin closes (the parent process is gone)")
    ] = False,
) -> None:
    """Run simulated gateways (Modbus TCP servers, MQTT clients) with a fault-control API.

    Stops in order on SIGTERM or Ctrl-C.
    """
    import json
    from urllib.parse import urlparse

    from controller.core.shutdown import before_exit
    from controller.demo.fleet_process import configure_logging, invent_bundle, run_fake_fleet

    settings = _settings(ctx)
    configure_logging()
    if inventory is not None:
        bundle = json.loads(inventory.read_text(encoding="utf-8"))
    elif modbus_gateways + mqtt_gateways > 0:
        bundle = invent_bundle(modbus_gateways, mqtt_gateways, per_gateway)
    else:
        raise fail("give --inventory FILE or --modbus-gateways/--mqtt-gateways")
    mqtt_settings = settings.mqtt
    if broker:
        url = urlparse(broker)
        if url.scheme not in {"mqtt", "tcp"} or not url.hostname:
            raise fail(f"--broker must look like mqtt://HOST:PORT, got {broker!r}")
        mqtt_settings = mqtt_settings.model_copy(
            update={"host": url.hostname, "port": url.port or 1883}
        )
    if prefix:
        mqtt_settings = mqtt_settings.model_copy(update={"prefix": prefix})
    clock = make_clock(start, speed, origin)
    _run(
        lambda: run_fake_fleet(
            bundle,
            clock=clock,
            mqtt=mqtt_settings,
            seed=seed,
            state_interval_s=state_interval,
            mqtt_gateways_per_connection=mqtt_per_connection,
            control_port=control_port,
            inventory_out=inventory_out,
            lifeline=lifeline,
        )
    )
    before_exit()


def make_clock(start: datetime | None, speed: float, origin: float | None) -> Any:
    """The real clock, or an accelerated one when a start or a speed is given."""
    from controller.core.clock import AcceleratedClock, SystemClock

    if start is None and speed == 1.0:
        return SystemClock()
    if start is not None and start.tzinfo is None:
        raise fail("--start needs a UTC offset, e.g. 2026-06-21T17:30:00+07:00")
    return AcceleratedClock(start or datetime.now(UTC), speed, origin)


# --- api keys ------------------------------------------------------------------------------


@key_app.command("create")
def key_create(
    ctx: typer.Context,
    role: Annotated[Role, typer.Option(help="admin, operator, maintenance or viewer")],
    name: Annotated[str, typer.Option(help="A unique name, e.g. the person or system")],
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from controller.access import auth

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
    from controller.access import auth

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
    from controller.access import auth

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
    """Production mode: controller and API on the configured database, broker and gateways."""
    from controller.app.service import run_service
    from controller.core.shutdown import before_exit

    settings = _settings(ctx)
    _run(lambda: run_service(settings, host=host, port=port))
    before_exit()


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
    start: Annotated[
        datetime | None,
        typer.Option(help="Simulated start, e.g. 2026-06-21T17:30:00+07:00 (time-lapse)"),
    ] = None,
    speed: Annotated[
        float, typer.Option(min=0.01, help="Clock speed; 600 plays a night in about 80 s")
    ] = 1.0,
) -> None:
    """Everything on embedded defaults: SQLite, a local broker, a fake fleet, controller, API."""
    from controller.app.service import run_demo
    from controller.core.shutdown import before_exit

    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = _settings(ctx, **overrides)
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=settings.site.tz)
    _run(
        lambda: run_demo(
            settings, host=host, port=port, admin_key=admin_key, start=start, speed=speed
        )
    )
    before_exit()


def entrypoint() -> None:  # pragma: no cover - console script shim
    sys.exit(app())
