"""Several controller processes on one PostgreSQL share the gateways by leases.

Three real ``streetlight serve`` processes (cluster mode) against a fake fleet in its own
process and a real mosquitto; one is killed with SIGKILL and its gateways move to the
other two within 30 s. The lease table is the referee: every gateway has exactly one
owner at a time; and the devices are the proof: after the takeover an override set through a
survivor's API reaches the luminaires of the gateways that moved.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from controller.access.auth import Principal, create_key
from controller.access.schemas import Role
from controller.inventory.importer import ImportFormat, import_inventory
from controller.store import migrate
from controller.store.db import open_database
from fake_luminaires.fleet import synthetic_bundle
from tests.conftest import PG_ADMIN_DSN, free_port, require_service
from tests.e2e.receivers import eventually
from tests.integration.conftest import MqttBroker

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

GATEWAYS = 9
LEVEL = 37


@pytest.fixture
async def pg_url() -> AsyncIterator[tuple[str, str]]:
    name = f"streetlight_cluster_{os.getpid()}_{int(time.time())}"
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        require_service("PostgreSQL", str(exc))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    base = PG_ADMIN_DSN.rpartition("/")[0]
    try:
        yield (
            f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1),
            f"{base}/{name}",
        )
    finally:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def _spawn(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _owners(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT name, owner FROM lease WHERE expires_at > now() AND name LIKE 'gateway:%'"
        )
    finally:
        await conn.close()
    return {r["name"]: r["owner"] for r in rows}


async def test_three_instances_share_gateways_and_survive_a_kill(
    tmp_path: Path, mqtt_broker: MqttBroker, mqtt_prefix: str, pg_url: tuple[str, str]
) -> None:
    url, dsn = pg_url
    db = open_database(url)
    await migrate.prepare(db)
    bundle = synthetic_bundle(5, 4, 8)
    bundle_path = tmp_path / "bundle.json"
    bundle_path.write_text(json.dumps(bundle), encoding="utf-8")
    out = tmp_path / "fleet.json"
    env = {**os.environ, "STREETLIGHT_DATA_DIR": str(tmp_path)}
    fleet = await _spawn(
        "fake-fleet", "--inventory", str(bundle_path), "--inventory-out", str(out),
        "--broker", f"mqtt://{mqtt_broker.host}:{mqtt_broker.port}", "--prefix", mqtt_prefix,
        "--state-interval", "2", env=env,
    )  # fmt: skip
    instances: dict[str, asyncio.subprocess.Process] = {}
    try:
        assert fleet.stdout is not None
        async with asyncio.timeout(30):
            assert (await fleet.stdout.readline()).strip() == b"READY"
        served = json.loads(out.read_text(encoding="utf-8"))
        async with db.sessions() as session:
            await import_inventory(
                session=session, data=json.dumps(served).encode(), fmt=ImportFormat.GEOJSON,
                actor=Principal(name="test", role=Role.ADMIN),
            )  # fmt: skip
            key, _ = await create_key(session=session, name="operator", role=Role.OPERATOR)
        ports = {n: free_port() for n in ("a", "b", "c")}
        for n in ("a", "b", "c"):
            instances[n] = await _spawn(
                "serve", "--port", str(ports[n]),
                env={
                    **env,
                    "STREETLIGHT_DATABASE__URL": url,
                    "STREETLIGHT_MQTT__HOST": mqtt_broker.host,
                    "STREETLIGHT_MQTT__PORT": str(mqtt_broker.port),
                    "STREETLIGHT_MQTT__PREFIX": mqtt_prefix,
                    "STREETLIGHT_MQTT__CLIENT_ID": f"ctl-{mqtt_prefix}",
                    "STREETLIGHT_CLUSTER__ENABLED": "true",
                    "STREETLIGHT_CLUSTER__INSTANCE_ID": f"node-{n}",
                    "STREETLIGHT_CLUSTER__LEASE_TTL_S": "6",
                    "STREETLIGHT_CLUSTER__RENEW_INTERVAL_S": "2",
                    "STREETLIGHT_SECURITY__ALLOW_ANONYMOUS_BROKER": "true",
                    "STREETLIGHT_SECURITY__ALLOW_INSECURE_DATABASE": "true",
                },
            )  # fmt: skip

        async def shared_out() -> bool:
            owners = await _owners(dsn)
            per = {}
            for owner in owners.values():
                per[owner] = per.get(owner, 0) + 1
            return len(owners) == GATEWAYS and sorted(per.values()) == [3, 3, 3]

        await eventually(shared_out, 40, "9 gateways shared 3/3/3 between three instances")
        before = await _owners(dsn)
        victim = "node-b"
        lost = {g for g, o in before.items() if o == victim}
        instances["b"].send_signal(signal.SIGKILL)
        await instances["b"].wait()
        killed_at = time.monotonic()

        async def taken_over() -> bool:
            owners = await _owners(dsn)
            return len(owners) == GATEWAYS and victim not in owners.values()

        await eventually(taken_over, 30, "the killed instance's gateways taken over")
        moved_in = time.monotonic() - killed_at
        assert moved_in < 30
        after = await _owners(dsn)
        assert {after[g] for g in lost} <= {"node-a", "node-c"}
        # the survivors still hold what they had: nothing moved that did not have to
        assert all(after[g] == o for g, o in before.items() if o != victim)

        # ... and they drive what moved: an override through a survivor's API reaches the
        # fake luminaires of every gateway the killed instance held
        control = served["fleet"]["control_url"]
        conn = await asyncpg.connect(dsn)
        try:
            names = {f"gateway:{r['id']}": r["name"] for r in await conn.fetch(
                "SELECT id, name FROM gateway")}  # fmt: skip
        finally:
            await conn.close()
        moved = sorted(names[g] for g in lost)
        assert moved
        async with httpx.AsyncClient(timeout=10) as client:
            levels_before = {
                name: set((await client.get(f"{control}/gateways/{name}/levels")).json().values())
                for name in moved
            }
            assert all(levels != {LEVEL} for levels in levels_before.values())
            response = await client.post(
                f"http://127.0.0.1:{ports['a']}/api/v1/overrides",
                headers={"Authorization": f"Bearer {key}"},
                json={"targets": {"all": True}, "level": LEVEL, "duration_min": 30,
                      "reason": "takeover test"},
            )  # fmt: skip
            assert response.status_code == 201, response.text

            async def moved_follow() -> bool:
                for name in moved:
                    levels = await client.get(f"{control}/gateways/{name}/levels")
                    if set(levels.json().values()) != {LEVEL}:
                        return False
                return True

            await eventually(moved_follow, 10, "the moved gateways' luminaires at the override")
    finally:
        for proc in [*instances.values(), fleet]:
            if proc.returncode is None:
                proc.terminate()
        for proc in [*instances.values(), fleet]:
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await db.dispose()
