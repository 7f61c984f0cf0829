"""Suite-wide fixtures: leaked-task guard and service availability rules.

In CI (``CI=true``) a missing service (PostgreSQL, mosquitto) is a failure,
never a skip. On a laptop without them, the tests that need them skip with a
visible reason or fall back as documented next to the fixture.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from controller.config.settings import Settings
    from controller.store.db import Database

from controller.demo.broker import find_mosquitto, free_port

__all__ = ["IN_CI", "find_mosquitto", "free_port", "require_service", "run_blocking"]

T = TypeVar("T")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


async def stop_processes(procs: list[asyncio.subprocess.Process], timeout_s: float = 15) -> None:
    """SIGTERM every process still running, then wait; SIGKILL what outlives ``timeout_s``."""
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
    for proc in procs:
        try:
            async with asyncio.timeout(timeout_s):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


def require_service(name: str, reason: str) -> None:
    """Fail in CI, skip elsewhere, when a service the test needs is missing."""
    message = f"{name} unavailable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services are required)", pytrace=False)
    pytest.skip(message)


TASK_DUMP_AFTER_S = float(os.environ.get("STREETLIGHT_TEST_TASK_DUMP_S", "240"))


async def _dump_tasks_later() -> None:
    """Print every task's stack if the test is still running (hang diagnosis)."""
    await asyncio.sleep(TASK_DUMP_AFTER_S)
    print(f"\n--- asyncio tasks after {TASK_DUMP_AFTER_S:g} s ---", file=sys.stderr)
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            print(f"* {task.get_name()}", file=sys.stderr)
            task.print_stack(limit=8, file=sys.stderr)


@pytest.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    watchdog = asyncio.get_running_loop().create_task(_dump_tasks_later(), name="test-watchdog")
    try:
        yield
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
    current = asyncio.current_task()
    for _ in range(3):  # let cancellations that are already in flight finish
        await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if leftover:
        names = ", ".join(sorted(t.get_name() for t in leftover))
        for task in leftover:
            task.cancel()
        pytest.fail(f"test left {len(leftover)} task(s) running: {names}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("asyncio") is not None and isinstance(item, pytest.Function):
            item.fixturenames.insert(0, "_no_leaked_tasks")


# --- databases ------------------------------------------------------------------------------
# Store and API tests run on SQLite and on PostgreSQL. PostgreSQL gets a fresh database per
# test run (created here, dropped at the end); each test starts from empty tables.

PG_ADMIN_DSN = os.environ.get(
    "STREETLIGHT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


def _pg_dsn(database: str) -> str:
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a fresh loop in a worker thread.

    Session fixtures may be first requested from inside a test's running loop,
    where ``asyncio.run`` is not allowed.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


async def _migrated(url: str) -> None:
    from controller.store import migrate
    from controller.store.db import connect

    async with connect(url) as db:
        await migrate.upgrade(db)


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this run (asyncpg URL)."""
    import asyncpg

    name = f"streetlight_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    try:
        run_blocking(create)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        require_service("PostgreSQL", f"{PG_ADMIN_DSN}: {exc}")
    url = _pg_dsn(name).replace("postgresql://", "postgresql+asyncpg://", 1)
    run_blocking(lambda: _migrated(url))
    yield url

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    run_blocking(drop)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is faster)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    run_blocking(lambda: _migrated(f"sqlite+aiosqlite:///{path}"))
    return path


async def _truncate_all(db: Database) -> None:
    from sqlalchemy import text
    from sqlmodel import SQLModel

    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty, migrated database: once on SQLite, once on PostgreSQL."""
    from controller.store.db import open_database

    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "streetlight.db"
        shutil.copyfile(template, path)
        database = open_database(f"sqlite+aiosqlite:///{path}")
    else:
        url: str = request.getfixturevalue("pg_database_url")
        database = open_database(url)
        await _truncate_all(database)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    from controller.config.settings import load_settings

    return load_settings(data_dir=tmp_path / "data")
