"""The NGSI-LD push (controller.export.publisher) against the fake broker on a real socket.

The fake broker (tests/support/ngsi_broker.py) validates every entity it receives against the
FIWARE schemas and refuses invalid ones, so "the broker holds X" means "X arrived valid". The
reference for what should have arrived is the pull API (``/ngsi-ld/v1/entities``), never the
publisher's own counters. Everything touching the outbox runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiomqtt
import httpx
import pytest

from api.app import create_app
from controller.access import auth
from controller.access.schemas import Role
from controller.config.settings import MqttSettings, Settings, load_settings
from controller.core.errors import ConfigError
from controller.export.ngsi import SMART_DATA_MODELS_CONTEXT, EntityType
from controller.export.publisher import NgsiPublisher
from controller.store.db import Database
from protocols.mqtt import MqttLink
from tests.api.conftest import LAMP, MODBUS_GW, Api, luminaire
from tests.conftest import IN_CI, free_port, require_service
from tests.integration.conftest import MqttBroker
from tests.support.ngsi_broker import REFERENCE, FakeNgsiBroker, load_validators, serving

PULL_TYPES = [EntityType.STREETLIGHT, EntityType.GROUP, EntityType.MODEL]
DEBOUNCE_S = 0.3
ARRIVAL_BUDGET_S = DEBOUNCE_S + 3.0
"""A change must be at the broker within a debounce; the rest is slack for a loaded machine
(2 cores shared with other jobs) and the scan itself."""
ORION_URL = os.environ.get("STREETLIGHT_TEST_ORION_URL")


@pytest.fixture(scope="module")
def validators() -> dict[str, Any]:
    if not REFERENCE.is_dir():
        require_service("the FIWARE reference schemas", f"not found at {REFERENCE}")
    return load_validators()


@pytest.fixture
async def broker(validators: dict[str, Any]) -> FakeNgsiBroker:
    return FakeNgsiBroker(validators)


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[Api]:
    keys: dict[Role, str] = {}
    async with db.sessions() as session:
        for role in (Role.ADMIN, Role.VIEWER):
            keys[role], _ = await auth.create_key(session=session, name=f"t-{role}", role=role)
    app = create_app(settings, db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Api(client, keys)


async def pulled(api: Api) -> dict[str, dict[str, Any]]:
    """Every entity the pull API serves, by id (normalized, no @context)."""
    out: dict[str, dict[str, Any]] = {}
    for entity_type in PULL_TYPES:
        response = await api.client.get(
            "/ngsi-ld/v1/entities",
            params={"type": entity_type.value, "limit": 1000},
            headers={
                "Authorization": f"Bearer {api.keys[Role.VIEWER]}",
                "Accept": "application/json",
            },
        )
        assert response.status_code == 200, response.text
        for entity in response.json():
            out[entity["id"]] = entity
    return out


async def city(api: Api, n: int) -> dict[str, Any]:
    gw = await api.ok("POST", "/gateways", json=MODBUS_GW)
    lamp = await api.ok("POST", "/lamp-types", json=LAMP)
    lums = [await api.ok("POST", "/luminaires", json=luminaire(i, gw["id"], lamp["id"]))
            for i in range(1, n + 1)]  # fmt: skip
    group = await api.ok(
        "POST", "/groups", json={"name": "Lê Duẩn", "members": [lums[0]["id"], lums[1]["id"]]}
    )
    return {"gateway": gw, "lamp": lamp, "luminaires": lums, "group": group}


def ioc_settings(settings: Settings, url: str | None, **ioc: Any) -> Settings:
    values = {"ngsi_ld_url": url, "debounce_s": DEBOUNCE_S, "retry_base_s": 0.1,
              "retry_max_s": 0.4, "full_refresh_s": 3600.0, **ioc}  # fmt: skip
    return load_settings(data_dir=settings.data_dir, ioc=values)


@asynccontextmanager
async def publishing(settings: Settings, db: Database) -> AsyncIterator[NgsiPublisher]:
    publisher = NgsiPublisher(settings, db)
    task = asyncio.create_task(publisher.run(), name="ngsi-publisher")
    try:
        yield publisher
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> float:
    """Wait until ``check()`` holds; returns the seconds it took."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def in_sync(api: Api, broker: FakeNgsiBroker) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await pulled(api) == broker.entities

    return check


async def test_every_entity_arrives_valid_within_a_debounce_of_a_change(
    settings: Settings, db: Database, api: Api, broker: FakeNgsiBroker
) -> None:
    made = await city(api, 3)
    async with serving(broker) as url:
        cfg = ioc_settings(settings, url)
        async with publishing(cfg, db):
            await until(in_sync(api, broker), 10, "the first push")
            types = {e["type"] for e in broker.entities.values()}
            assert types == {"Streetlight", "StreetlightGroup", "StreetlightModel"}
            assert len(broker.entities) == 3 + 1 + 1
            quiet = len(broker.upserts())
            await asyncio.sleep(DEBOUNCE_S * 4)
            assert len(broker.upserts()) == quiet, "nothing changed: nothing is sent again"

            lum = made["luminaires"][2]
            await api.ok("PATCH", f"/luminaires/{lum['id']}", json={"street": "Hùng Vương"})
            took = await until(in_sync(api, broker), 10, "the street change")
            assert took <= ARRIVAL_BUDGET_S, took
            renamed = [e for e in broker.entities.values() if e["type"] == "Streetlight"
                       and e["address"]["value"]["streetAddress"] == "Hùng Vương"]  # fmt: skip
            assert len(renamed) == 1

            await api.ok("POST", "/luminaires", json=luminaire(9, made["gateway"]["id"],
                                                               made["lamp"]["id"]))  # fmt: skip
            took = await until(in_sync(api, broker), 10, "the new luminaire")
            assert took <= ARRIVAL_BUDGET_S, took
    # every request the broker answered was a success: nothing was refused as invalid
    assert broker.upserts() and {r.status for r in broker.upserts()} <= {201, 204}
    first = broker.upserts()[0]
    assert first.headers["content-type"].startswith("application/ld+json")


async def test_context_by_link_header_tenant_and_token(
    settings: Settings, db: Database, api: Api, broker: FakeNgsiBroker
) -> None:
    await city(api, 2)
    async with serving(broker) as url:
        cfg = ioc_settings(
            settings, url, context_in_body=False, tenant="dongha", token="s3cret-token"
        )
        async with publishing(cfg, db):
            await until(in_sync(api, broker), 10, "the first push")
    headers = broker.upserts()[0].headers
    assert headers["content-type"] == "application/json"
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in headers["link"]
    assert headers["ngsild-tenant"] == "dongha"
    assert headers["authorization"] == "Bearer s3cret-token"


@pytest.mark.parametrize("outage", ["503", "port closed"])
async def test_an_outage_loses_nothing_and_floods_nothing(
    settings: Settings, db: Database, api: Api, broker: FakeNgsiBroker, outage: str
) -> None:
    made = await city(api, 3)
    port = free_port()
    cfg = ioc_settings(settings, f"http://127.0.0.1:{port}")
    async with publishing(cfg, db) as publisher:
        async with serving(broker, port):
            await until(in_sync(api, broker), 10, "the first push")
            if outage == "503":
                broker.outage = 503
                await _changes_during_outage(api, made)
                await until(_outages(publisher, 3), 10, "retries against the outage")
                assert await pulled(api) != broker.entities  # the premise: the broker is behind
                before = len(broker.upserts())
                broker.outage = None
                await until(in_sync(api, broker), 15, "catching up after the outage")
                await asyncio.sleep(DEBOUNCE_S * 3)  # nothing more should go out
        if outage == "port closed":
            await _changes_during_outage(api, made)
            await until(_outages(publisher, 3), 10, "retries against the closed port")
            assert await pulled(api) != broker.entities
            before = len(broker.upserts())
            async with serving(broker, port):
                await until(in_sync(api, broker), 15, "catching up after the outage")
                await asyncio.sleep(DEBOUNCE_S * 3)
    expected = await pulled(api)
    assert broker.entities == expected  # nothing lost, the deleted one gone
    after = broker.upserts()[before:]
    assert all(r.status in (201, 204) for r in after), [r.status for r in after]
    assert len(after) <= math.ceil(len(expected) / 100) + 2, [len(r.ids) for r in after]
    assert max(len(r.ids) for r in after) <= 100


async def test_the_outbox_outlives_a_restart(
    settings: Settings, db: Database, api: Api, broker: FakeNgsiBroker
) -> None:
    """A restarted publisher sends nothing already delivered, and still deletes what went away
    while it was stopped (only the outbox remembers that the broker has it)."""
    made = await city(api, 3)
    async with serving(broker) as url:
        cfg = ioc_settings(settings, url)
        async with publishing(cfg, db) as publisher:
            await until(in_sync(api, broker), 10, "the first push")
            # stopped after it recorded the answer (stopped before, it sends again: at least once)
            await until(_sent(publisher, len(broker.entities)), 10, "the outbox updated")
        gone = made["luminaires"][1]
        await api.ok("DELETE", f"/luminaires/{gone['id']}")
        assert await pulled(api) != broker.entities  # the premise: the broker still has it
        sent = len(broker.requests)
        async with publishing(cfg, db):
            await until(in_sync(api, broker), 10, "the deletion after the restart")
            await asyncio.sleep(DEBOUNCE_S * 3)
    after = broker.requests[sent:]
    # the deletion, and the group whose members changed: nothing else is sent again
    group = f"urn:ngsi-ld:StreetlightGroup:dong-ha:{made['group']['id']}"
    assert [(r.path.rsplit("/", 1)[-1], r.ids) for r in after] == [
        ("upsert", [group]),
        ("delete", [f"urn:ngsi-ld:Streetlight:dong-ha:{gone['name']}"]),
    ]


async def _changes_during_outage(api: Api, made: dict[str, Any]) -> None:
    """130 new luminaires (more than one batch), an edit, a deletion."""
    gw, lamp = made["gateway"]["id"], made["lamp"]["id"]
    gw2 = await api.ok("POST", "/gateways", json={**MODBUS_GW, "name": "gw-2", "port": 1503})
    for i in range(10, 140):  # a gateway serves addresses 0..127
        body = luminaire(i, gw, lamp) if i < 120 else luminaire(i, gw2["id"], lamp, address=i - 120)
        await api.ok("POST", "/luminaires", json=body)
    await api.ok("PATCH", f"/luminaires/{made['luminaires'][0]['id']}", json={"ward": "Đông Lễ"})
    await api.ok("DELETE", f"/luminaires/{made['luminaires'][2]['id']}")


def _outages(publisher: NgsiPublisher, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return publisher.stats.outages >= n

    return check


async def test_a_multi_status_retries_only_the_failed_entities(
    settings: Settings, db: Database, api: Api, broker: FakeNgsiBroker
) -> None:
    await city(api, 4)
    expected = await pulled(api)
    refused = sorted(i for i in expected if ":Streetlight:" in i)[1]
    broker.reject({refused})
    async with serving(broker) as url, publishing(ioc_settings(settings, url), db):
        await until(in_sync(api, broker), 10, "the retry of the refused entity")
    upserts = broker.upserts()
    assert upserts[0].status == 207  # the premise: the first batch was partly refused
    assert sorted(upserts[0].ids) == sorted(expected)
    assert upserts[1].ids == [refused]
    assert upserts[1].status in (201, 204)
    assert len(upserts) == 2


async def test_subscriptions_notify_on_change(
    settings: Settings, db: Database, api: Api, broker: FakeNgsiBroker
) -> None:
    """The fake broker's subscriptions (what an IOC uses to be told of faults)."""
    received: list[dict[str, Any]] = []
    got = asyncio.Event()
    sink = FakeNgsiBroker({})
    app = sink.app()

    @app.post("/notify")
    async def notify(body: dict[str, Any]) -> None:
        received.append(body)
        got.set()

    await city(api, 2)
    async with serving(broker) as url, _serve_app(app) as sink_url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post(
                "/ngsi-ld/v1/subscriptions",
                json={"type": "Subscription", "entities": [{"type": "Streetlight"}],
                      "notification": {"format": "keyValues",
                                       "endpoint": {"uri": f"{sink_url}/notify",
                                                    "accept": "application/json"}}},
            )  # fmt: skip
            assert response.status_code == 201
        async with publishing(ioc_settings(settings, url), db):
            await asyncio.wait_for(got.wait(), 10)
    data = [e for n in received for e in n["data"]]
    assert {e["type"] for e in data} == {"Streetlight"}
    assert all(isinstance(e["status"], str) for e in data)  # keyValues
    assert received[0]["type"] == "Notification"


@asynccontextmanager
async def _serve_app(app: Any) -> AsyncIterator[str]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve(), name="notification-sink")
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def test_the_fake_broker_refuses_an_invalid_entity(broker: FakeNgsiBroker) -> None:
    good = {"id": "urn:ngsi-ld:Streetlight:x:1", "type": "Streetlight",
            "status": {"type": "Property", "value": "ok"},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [107.1, 16.8]}}}  # fmt: skip
    assert broker.problem(good, ld=False) is None
    bad = {**good, "status": {"type": "Property", "value": "broken"}}
    why = broker.problem(bad, ld=False)
    assert why is not None and "status" in why
    assert broker.problem(good, ld=True) is not None  # ld+json without @context


async def test_the_fake_broker_answers_400_with_the_validation_error(
    broker: FakeNgsiBroker,
) -> None:
    good = {"id": "urn:ngsi-ld:Streetlight:x:1", "type": "Streetlight",
            "status": {"type": "Property", "value": "ok"},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [107.1, 16.8]}}}  # fmt: skip
    bad = {**good, "id": "urn:ngsi-ld:Streetlight:x:2",
           "illuminanceLevel": {"type": "Property", "value": 1.5}}  # fmt: skip
    link = f'<{SMART_DATA_MODELS_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"'
    async with serving(broker) as url, httpx.AsyncClient(base_url=url) as client:
        upsert = "/ngsi-ld/v1/entityOperations/upsert"
        response = await client.post(upsert, json=[bad], headers={"Link": link})
        assert response.status_code == 400
        assert "illuminanceLevel" in response.json()["errors"][0]["error"]["title"]
        response = await client.post(upsert, json=[good, bad], headers={"Link": link})
        assert response.status_code == 207
        assert response.json()["success"] == [good["id"]]
        assert (await client.get(f"/ngsi-ld/v1/entities/{bad['id']}")).status_code == 404
        got = await client.get(
            f"/ngsi-ld/v1/entities/{good['id']}", params={"options": "keyValues"}
        )
        assert got.json()["status"] == "ok"
        broker.outage = 503
        assert (await client.post(upsert, json=[good], headers={"Link": link})).status_code == 503


def test_the_ioc_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not load_settings(data_dir=settings.data_dir).ioc.enabled  # off by default
    monkeypatch.setenv("STREETLIGHT_IOC__NGSI_LD_URL", "http://orion:1026")
    monkeypatch.setenv("STREETLIGHT_IOC__TOKEN", "t0ken")
    ioc = load_settings(data_dir=settings.data_dir).ioc
    assert ioc.enabled and ioc.ngsi_ld_url == "http://orion:1026"
    assert "t0ken" not in repr(ioc)
    for bad, field in (({"batch_size": 101}, "ioc.batch_size"),
                       ({"ngsi_ld_url": "orion:1026"}, "ioc.ngsi_ld_url"),
                       ({"retry_base_s": 10, "retry_max_s": 1}, "retry_base_s")):  # fmt: skip
        with pytest.raises(ConfigError, match=field):
            load_settings(data_dir=settings.data_dir, ioc=bad)


@pytest.mark.skipif(
    ORION_URL is None or IN_CI,
    reason="opt-in: needs a real Orion-LD at STREETLIGHT_TEST_ORION_URL, which this machine "
    "cannot run (no Docker, no MongoDB); never in CI=true, where Orion is not a service",
)
async def test_against_a_real_orion_ld(settings: Settings, db: Database, api: Api) -> None:
    assert ORION_URL is not None
    await city(api, 3)
    expected = await pulled(api)
    tenant = f"streetlight-test-{os.getpid()}"
    async with publishing(ioc_settings(settings, ORION_URL, tenant=tenant), db) as publisher:
        await until(_sent(publisher, len(expected)), 30, "the push to Orion-LD")
    async with httpx.AsyncClient(base_url=ORION_URL, headers={"NGSILD-Tenant": tenant}) as client:
        for eid, entity in expected.items():
            response = await client.get(
                f"/ngsi-ld/v1/entities/{eid}",
                headers={"Accept": "application/json", "Link": _link()},
            )
            assert response.status_code == 200, response.text
            assert response.json()["type"] == entity["type"]


def _sent(publisher: NgsiPublisher, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return publisher.stats.sent >= n

    return check


def _link() -> str:
    from controller.export.ngsi import SMART_DATA_MODELS_CONTEXT

    return (
        f'<{SMART_DATA_MODELS_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; '
        'type="application/ld+json"'
    )


# --- MQTT ---------------------------------------------------------------------------------------


async def _retained(settings: MqttSettings, quiet_s: float = 1.0) -> dict[str, dict[str, Any]]:
    """What a client subscribing now gets: the retained entity per topic (empty ones: none)."""
    out: dict[str, dict[str, Any]] = {}
    async with aiomqtt.Client(
        settings.host, settings.port, identifier=f"spy-{uuid.uuid4().hex[:8]}"
    ) as client:
        await client.subscribe(f"{settings.prefix}/ngsi/#", qos=1)
        with suppress(TimeoutError):
            while True:
                async with asyncio.timeout(quiet_s):
                    message = await anext(aiter(client.messages))
                if isinstance(message.payload, bytes) and message.payload and message.retain:
                    out[str(message.topic)] = json.loads(message.payload)
    return out


@pytest.mark.broker
async def test_the_same_entities_retained_on_mqtt(
    settings: Settings, db: Database, api: Api, mqtt_broker: MqttBroker, mqtt_prefix: str
) -> None:
    made = await city(api, 3)
    mqtt = mqtt_broker.settings(mqtt_prefix)
    cfg = load_settings(
        data_dir=settings.data_dir,
        mqtt=mqtt.model_dump(),
        ioc={"mqtt": True, "debounce_s": DEBOUNCE_S, "retry_base_s": 0.1, "retry_max_s": 0.4},
    )
    link_up = True
    async with MqttLink(mqtt, reconnect_min_s=0.1) as link:
        await link.wait_connected(10)
        publisher = NgsiPublisher(cfg, db, mqtt=lambda: link if link_up else None)
        task = asyncio.create_task(publisher.run(), name="ngsi-publisher")
        try:

            async def mirrored() -> bool:
                expected = {f"{mqtt_prefix}/ngsi/{e['type']}/{i}": e
                            for i, e in (await pulled(api)).items()}  # fmt: skip
                return await _retained(mqtt, quiet_s=0.3) == expected

            await until(mirrored, 15, "every entity retained on MQTT")
            link_up = False  # the link is down: changes wait in the outbox
            await api.ok("DELETE", f"/luminaires/{made['luminaires'][2]['id']}")
            await api.ok(
                "PATCH", f"/luminaires/{made['luminaires'][0]['id']}", json={"ward": "Đông Lễ"}
            )
            await asyncio.sleep(DEBOUNCE_S * 3)
            assert not await mirrored()  # the premise: it is behind
            link_up = True
            await until(mirrored, 15, "the changes after the link came back")
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
