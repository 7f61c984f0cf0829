"""Bulk import benchmark: 10,000 CSV rows through the real importer, SQLite and PostgreSQL.

Run: ``make bench-import`` (or ``python -m bench.import_bench --rows 10000``).
PostgreSQL is measured when reachable at STREETLIGHT_TEST_PG_DSN (default
postgresql://postgres@127.0.0.1:5432/test); a fresh database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.machine import describe
from controller.access.auth import Principal
from controller.access.schemas import Role
from controller.inventory.importer import ImportFormat, import_inventory
from controller.inventory.schemas import GatewayCreate, LampTypeCreate
from controller.store import migrate
from controller.store.db import connect
from controller.store.tables import GatewayRow, LampTypeRow

ACTOR = Principal(name="bench", role=Role.ADMIN)


def make_csv(rows: int, gateways: int) -> bytes:
    lines = ["name,gateway,address,lamp_type,latitude,longitude,street,ward,installed_on"]
    for i in range(rows):
        gw, addr = divmod(i, 64 * 4)
        lines.append(
            f"B-{i:06d},bench-gw-{gw % gateways:03d},{addr},LED 100 W,"
            f"{16.80 + (i % 1000) * 1e-5:.6f},{107.09 + (i // 1000) * 1e-4:.6f},"
            f"Lê Duẩn,Phường {1 + i % 5},2024-01-01"
        )
    return ("\n".join(lines) + "\n").encode()


async def run_once(url: str, data: bytes, gateways: int) -> float:
    async with connect(url) as db:
        await migrate.upgrade(db)
        async with db.sessions() as session:
            for g in range(gateways):
                spec = GatewayCreate(
                    name=f"bench-gw-{g:03d}", protocol="modbus", host="127.0.0.1",
                    port=1502, unit_ids=[1, 2, 3, 4],
                )  # fmt: skip
                session.add(GatewayRow(**spec.model_dump(mode="json")))
            session.add(LampTypeRow(**LampTypeCreate(name="LED 100 W").model_dump()))
            await session.commit()
            started = time.perf_counter()
            result = await import_inventory(
                session=session, data=data, fmt=ImportFormat.CSV, actor=ACTOR
            )
            elapsed = time.perf_counter() - started
        assert result.luminaires == data.count(b"\n") - 1
        return elapsed


async def pg_url() -> tuple[str, str, str] | None:
    import asyncpg

    dsn = os.environ.get("STREETLIGHT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"streetlight_bench_{uuid.uuid4().hex[:8]}"
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    base = dsn.rpartition("/")[0]
    return dsn, name, f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)


async def drop_pg(dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def main(rows: int, repeats: int) -> None:
    gateways = max(1, rows // 256 + 1)
    data = make_csv(rows, gateways)
    print(f"machine: {describe()}")
    print(f"import of {rows} CSV rows ({len(data) / 1e6:.1f} MB), {repeats} runs each")
    with tempfile.TemporaryDirectory() as tmp:
        times = [
            await run_once(f"sqlite+aiosqlite:///{Path(tmp) / f'b{i}.db'}", data, gateways)
            for i in range(repeats)
        ]
    print(
        f"  SQLite:     median {statistics.median(times):.2f} s  (runs: "
        + ", ".join(f"{t:.2f}" for t in times)
        + f")  {rows / statistics.median(times):,.0f} rows/s"
    )
    pg_times: list[float] = []
    for _ in range(repeats):
        target = await pg_url()
        if target is None:
            print("  PostgreSQL: not reachable, skipped")
            break
        dsn, name, url = target
        try:
            pg_times.append(await run_once(url, data, gateways))
        finally:
            await drop_pg(dsn, name)
    if pg_times:
        med = statistics.median(pg_times)
        print(
            f"  PostgreSQL: median {med:.2f} s  (runs: "
            + ", ".join(f"{t:.2f}" for t in pg_times)
            + f")  {rows / med:,.0f} rows/s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.repeats))
