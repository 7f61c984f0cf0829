"""deploy/: backup and restore round trips on PostgreSQL and SQLite, and checks of the files
that cannot run here (no Docker engine, no systemd as PID 1).

The scripts run as an operator runs them, in a subprocess, with streetlight's settings from
the environment; PostgreSQL is the local server (``STREETLIGHT_TEST_PG_DSN``), in a database
this test creates and drops.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from controller.access import auth
from controller.access.schemas import Role
from controller.demo.seed import seed_demo
from controller.store import migrate
from controller.store.db import connect
from tests.conftest import IN_CI, PG_ADMIN_DSN, _pg_dsn, require_service

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SHOW = 'echo "$DB_KIND|$PG_URI|$PGPASSWORD"'
"""Prints what deploy/dbenv.sh resolved."""
TABLES = ("gateway", "luminaire", "lamp_type", "api_key", "program", "calendar")


def script_env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREETLIGHT_", "PG"))}
    env["STREETLIGHT_PYTHON"] = sys.executable
    env["STREETLIGHT_DATABASE__URL"] = database_url
    env["STREETLIGHT_DATA_DIR"] = str(data_dir)
    return env


async def run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        ["bash", str(DEPLOY / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def counts(url: str) -> dict[str, Any]:
    async with connect(url) as db, db.engine.connect() as conn:
        out: dict[str, Any] = {}
        for table in TABLES:
            out[table] = (await conn.execute(text(f'SELECT count(*) FROM "{table}"'))).scalar()
        out["names"] = sorted(
            (await conn.execute(text("SELECT name FROM api_key"))).scalars().all()
        )
        out["revision"] = (
            await conn.execute(text("SELECT version_num FROM alembic_version"))
        ).scalar()
        return out


async def populate(url: str) -> None:
    async with connect(url) as db:
        await migrate.prepare(db)
        async with db.sessions() as session:
            seeded = await seed_demo(session=session)
            assert seeded is not None
            await auth.create_key(session=session, name="ops-admin", role=Role.ADMIN)


async def damage(url: str) -> None:
    """What a backup is for: data lost after it was taken."""
    async with connect(url) as db:
        async with db.sessions() as session:
            await auth.create_key(session=session, name="after-the-backup", role=Role.VIEWER)
        async with db.engine.begin() as conn:
            await conn.execute(text("DELETE FROM luminaire"))


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
async def pg_urls() -> AsyncIterator[list[str]]:
    """Two new, empty databases (asyncpg URLs), dropped afterwards."""
    import asyncpg

    names = [f"streetlight_backup_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        require_service("PostgreSQL", f"{PG_ADMIN_DSN}: {exc}")
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
        yield [_pg_dsn(name).replace("postgresql://", "postgresql+asyncpg://", 1) for name in names]
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        require_service(", ".join(missing), "not on PATH (apt-get install postgresql-client)")


@pytest.mark.postgres
async def test_postgresql_backup_and_restore_round_trip(pg_urls: list[str], tmp_path: Path) -> None:
    require_tools("pg_dump", "pg_restore")
    url, other = pg_urls
    await populate(url)
    before = await counts(url)
    assert before["luminaire"] == 500
    env = script_env(url, tmp_path / "data")

    made = await run("backup.sh", str(tmp_path / "backups"), env=env)
    assert made.returncode == 0, made.stderr
    dump = Path(made.stdout.strip().splitlines()[-1])
    assert dump.parent == tmp_path / "backups"
    assert re.fullmatch(r"streetlight-\d{8}T\d{6}Z\.dump", dump.name)
    assert (await asyncio.to_thread(dump.read_bytes))[:5] == b"PGDMP"  # pg_dump -Fc
    assert (await asyncio.to_thread(dump.stat)).st_mode & 0o077 == 0  # its owner's only

    await damage(url)
    assert (await counts(url))["luminaire"] == 0

    restored = await run("restore.sh", "-f", str(dump), env=env)
    assert restored.returncode == 0, restored.stderr
    assert "streetlight db upgrade" in restored.stdout
    assert await counts(url) == before

    # into an empty database (a new server), then migrated: nothing to do, same revision
    fresh = await run("restore.sh", "-f", str(dump), env=script_env(other, tmp_path / "data"))
    assert fresh.returncode == 0, fresh.stderr
    async with connect(other) as db:
        await migrate.upgrade(db)
        assert await migrate.current_revision(db) == migrate.head_revision()
    assert await counts(other) == before


@pytest.mark.postgres
async def test_the_database_password_reaches_pg_dump_but_not_its_command_line(
    pg_urls: list[str], tmp_path: Path
) -> None:
    """The URL's password goes to PGPASSWORD; the local server trusts, so any password works,
    and what matters is that the URI pg_dump is given has none."""
    require_tools("pg_dump")
    url = pg_urls[0].replace("postgres@", "postgres:not-on-the-command-line@", 1)
    env = script_env(url, tmp_path)
    probe = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", f'. "{DEPLOY}/dbenv.sh"; resolve_database ""; {SHOW}'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    kind, uri, password = probe.stdout.strip().split("|")
    assert kind == "postgresql"
    assert "not-on-the-command-line" not in uri
    assert uri.startswith("postgresql://postgres@")
    assert password == "not-on-the-command-line"
    made = await run("backup.sh", str(tmp_path / "b"), env=env)
    assert made.returncode == 0, made.stderr


def test_asyncpg_ssl_modes_become_libpq_sslmode(tmp_path: Path) -> None:
    env = script_env(
        "postgresql+asyncpg://sl:pw@db.internal:5433/streetlight?ssl=verify-full", tmp_path
    )
    probe = subprocess.run(
        ["bash", "-c", f'. "{DEPLOY}/dbenv.sh"; resolve_database ""; echo "$PG_URI"'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    expected = "postgresql://sl@db.internal:5433/streetlight?sslmode=verify-full"
    assert probe.stdout.strip() == expected


# --- SQLite -----------------------------------------------------------------------------------


async def test_sqlite_backup_and_restore_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "data" / "streetlight.db"
    url = f"sqlite+aiosqlite:///{path}"
    await populate(url)
    before = await counts(url)
    env = script_env("", tmp_path / "data")  # the default: SQLite under data_dir

    made = await run("backup.sh", str(tmp_path / "backups"), env=env)
    assert made.returncode == 0, made.stderr
    copy = Path(made.stdout.strip().splitlines()[-1])
    assert copy.suffix == ".db"
    assert (await asyncio.to_thread(copy.read_bytes))[:16] == b"SQLite format 3\x00"
    assert await counts(f"sqlite+aiosqlite:///{copy}") == before

    await damage(url)
    restored = await run("restore.sh", "-f", str(copy), env=env)
    assert restored.returncode == 0, restored.stderr
    assert await counts(url) == before
    kept = list(path.parent.glob("streetlight.db.before-restore-*"))
    assert len(kept) == 1
    assert (await counts(f"sqlite+aiosqlite:///{kept[0]}"))["luminaire"] == 0


async def test_restore_refuses_what_is_not_a_backup(tmp_path: Path) -> None:
    env = script_env("", tmp_path / "data")
    missing = await run("restore.sh", "-f", str(tmp_path / "nothing.db"), env=env)
    assert missing.returncode == 2
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    refused = await run("restore.sh", "-f", str(junk), env=env)
    assert refused.returncode != 0
    assert not (tmp_path / "data" / "streetlight.db").exists()  # nothing was replaced


async def test_backup_fails_on_invalid_settings(tmp_path: Path) -> None:
    env = script_env("mysql://nope", tmp_path)
    failed = await run("backup.sh", str(tmp_path / "b"), env=env)
    assert failed.returncode != 0
    assert "database.url" in failed.stderr
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


# --- the files that cannot run here -------------------------------------------------------


@pytest.mark.parametrize("script", sorted(p.name for p in DEPLOY.glob("*.sh")))
def test_shell_scripts_parse(script: str) -> None:
    result = subprocess.run(["bash", "-n", str(DEPLOY / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    if script != "dbenv.sh":
        assert os.access(DEPLOY / script, os.X_OK), f"{script} is not executable"


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        require_service("systemd-analyze", "not on PATH (apt-get install systemd)")
        return
    unit = (DEPLOY / "streetlight.service").read_text(encoding="utf-8")
    assert "ExecStart=/opt/streetlight/venv/bin/streetlight --config " in unit
    assert " serve" in unit.split("ExecStart=", 1)[1].splitlines()[0]
    for option in ("User=streetlight", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert option in unit.splitlines()
    # The venv does not exist here: point ExecStart at a real executable, keep everything else.
    copy = tmp_path / "streetlight.service"
    copy.write_text(unit.replace("/opt/streetlight/venv/bin/streetlight", "/bin/true"))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
    security = subprocess.run(
        [analyze, "security", "--offline=true", str(copy)], capture_output=True, text=True
    )
    if security.returncode == 0:
        level = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
        assert level is not None
        assert float(level.group(1)) < 2.0, security.stdout[-2000:]
    elif IN_CI:
        pytest.fail(f"systemd-analyze security failed: {security.stderr}")


def test_the_dockerfile_copies_every_package_and_runs_unprivileged() -> None:
    """`docker build` cannot run here: check what can be checked without an engine."""
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    froms = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert froms and all(f == "python:3.11-slim" for f in froms)
    copied = {
        src
        for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.MULTILINE)
        for src in line.split()[:-1]
    }
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        assert pattern.rstrip("*") in copied, f"package {pattern} is not copied into the image"
    assert "pip install -c constraints.txt ." in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and not users[-1].startswith(("root", "0"))
    assert 'ENTRYPOINT ["streetlight"]' in dockerfile
    assert 'CMD ["serve"' in dockerfile
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    for src in copied:
        assert f"!{src}" in ignore or f"!{src}/**" in ignore, f"{src} is excluded from the context"


def test_compose_runs_the_controller_postgresql_and_mosquitto_safely() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"controller", "db", "mosquitto"}
    assert services["db"]["image"] == "postgres:15"
    assert any(v.startswith("pgdata:") for v in services["db"]["volumes"])
    assert services["controller"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert all(p.startswith("127.0.0.1:") for p in services["controller"]["ports"])
    assert "ports" not in services["db"]
    assert compose["networks"]["backend"]["internal"] is True
    mounts = services["mosquitto"]["volumes"]
    for source in (m.split(":")[0] for m in mounts if m.startswith("./")):
        assert (DEPLOY / source).is_file(), f"compose mounts {source}, which is missing"
    example = (DEPLOY / "env.example").read_text(encoding="utf-8")
    for variable in set(re.findall(r"\$\{(\w+):\?", (DEPLOY / "compose.yaml").read_text())):
        assert f"\n{variable}=" in f"\n{example}", f"{variable} is not in env.example"
