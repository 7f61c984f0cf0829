"""The demo pointed at an NGSI-LD broker: every entity arrives valid, and a change follows.

The real ``streetlight demo`` (its seeded Đông Hà, fake fleet and local broker) runs with
``STREETLIGHT_IOC__NGSI_LD_URL`` set to the fake broker (tests/support/ngsi_broker.py), which
validates every entity against the FIWARE schemas and refuses invalid ones. What should
arrive is what the demo's own pull API serves, not the publisher's counters.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.demo.broker import find_mosquitto
from controller.export.ngsi import EntityType
from tests.conftest import free_port, require_service
from tests.e2e.test_processes import launch, stop
from tests.support.ngsi_broker import REFERENCE, FakeNgsiBroker, load_validators, serving

pytestmark = pytest.mark.slow

ADMIN_KEY = "e2e-ioc-admin-key-0123456789"
WITHIN_S = 60.0  # the "within a minute of a change"


async def _pulled_streetlights(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        response = await client.get(
            "/ngsi-ld/v1/entities",
            params={"type": EntityType.STREETLIGHT.value, "limit": 1000, "offset": offset},
            headers={"Accept": "application/json"},
        )
        assert response.status_code == 200, response.text
        page = response.json()
        out.update({e["id"]: e for e in page})
        if len(page) < 1000:
            return out
        offset += len(page)


async def _until(check: Any, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.5)
    return time.monotonic() - start


async def test_the_demo_pushes_every_entity_valid_and_follows_a_change(tmp_path: Path) -> None:
    if not REFERENCE.is_dir():
        require_service("the FIWARE reference schemas", f"not found at {REFERENCE}")
    if find_mosquitto() is None:
        require_service("mosquitto", "binary not found (apt-get install mosquitto)")
    broker = FakeNgsiBroker(load_validators())
    async with serving(broker) as url:
        port = free_port()
        demo = await launch(
            tmp_path,
            "demo", "--port", str(port), "--data-dir", str(tmp_path / "data"),
            ready="Uvicorn running",
            env={"STREETLIGHT_ADMIN_KEY": ADMIN_KEY, "STREETLIGHT_IOC__NGSI_LD_URL": url,
                 "STREETLIGHT_IOC__DEBOUNCE_S": "2"},
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
                served = await _pulled_streetlights(client)
                assert len(served) == 500  # the seeded Đông Hà

                def all_arrived() -> bool:
                    return set(served) <= set(broker.entities)

                took = await _until(all_arrived, WITHIN_S, "every Streetlight at the broker")
                refused = [r for r in broker.upserts() if r.status not in (201, 204)]
                assert not refused, refused  # the broker validates: nothing arrived invalid

                lum = (await client.get("/api/v1/luminaires", params={"limit": 1})).json()
                first = lum["items"][0]
                changed = await client.patch(
                    f"/api/v1/luminaires/{first['id']}", json={"street": "Hùng Vương"}
                )
                assert changed.status_code == 200, changed.text
                entity_id = next(
                    i for i, e in (await _pulled_streetlights(client)).items()
                    if e["address"]["value"].get("streetAddress") == "Hùng Vương"
                )  # fmt: skip

                def followed() -> bool:
                    entity = broker.entities.get(entity_id, {})
                    address = entity.get("address", {}).get("value", {})
                    return bool(address.get("streetAddress") == "Hùng Vương")

                followed_in = await _until(followed, WITHIN_S, "the street change at the broker")
            print(
                f"500 Streetlights at the broker in {took:.1f} s; a change in {followed_in:.1f} s"
            )
        finally:
            demo.proc.terminate()
            try:
                async with asyncio.timeout(15):
                    await demo.proc.wait()
            finally:
                await stop(demo)
