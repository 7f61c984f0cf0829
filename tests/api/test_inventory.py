"""Inventory endpoints: success and failure paths, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.access.schemas import Role
from controller.core.values import ProtocolKind
from controller.inventory.schemas import GatewayCreate
from protocols.mqtt_topics import check_gateway_id
from tests.api.conftest import LAMP, MODBUS_GW, Api, luminaire


def fields(body: dict[str, Any]) -> set[str]:
    return {f["field"] for f in body.get("fields", [])}


async def test_gateway_crud_and_capacity(api: Api) -> None:
    gw = await api.ok("POST", "/gateways", json=MODBUS_GW)
    assert gw["capacity"] == 128
    assert gw["unit_ids"] == [1, 2]
    got = await api.ok("GET", f"/gateways/{gw['id']}", role=Role.VIEWER)
    assert got == gw
    updated = await api.ok("PATCH", f"/gateways/{gw['id']}", json={"unit_ids": [1, 2, 3]})
    assert updated["capacity"] == 192
    assert updated["name"] == MODBUS_GW["name"]
    mqtt = await api.ok(
        "POST", "/gateways", json={"name": "gw-mqtt", "protocol": "mqtt", "mqtt_id": "dh-01"}
    )
    page = await api.ok("GET", "/gateways?protocol=mqtt")
    assert [g["id"] for g in page["items"]] == [mqtt["id"]]
    await api.ok("DELETE", f"/gateways/{mqtt['id']}")
    await api.call("GET", f"/gateways/{mqtt['id']}", expect=404)


async def test_gateway_validation_names_the_problem(api: Api) -> None:
    body = await api.call("POST", "/gateways", json={"name": "x", "protocol": "modbus"}, expect=422)
    assert "modbus gateway needs host and port" in body.json()["message"]
    body = await api.call("POST", "/gateways", json={**MODBUS_GW, "port": 70000}, expect=422)
    assert "port" in fields(body.json())
    body = await api.call("POST", "/gateways", json={**MODBUS_GW, "colour": "red"}, expect=422)
    assert fields(body.json()) == {"colour"}
    body = await api.call(
        "POST", "/gateways", json={"name": "m", "protocol": "mqtt", "mqtt_id": "a/b"}, expect=422
    )
    assert "mqtt_id" in body.json()["message"]


async def test_gateway_duplicates_and_delete_in_use(api: Api, base: dict[str, int]) -> None:
    response = await api.call("POST", "/gateways", json=MODBUS_GW, expect=409)
    assert response.json()["error"] == "conflict"
    assert fields(response.json()) == {"name"}
    await api.ok("POST", "/luminaires", json=luminaire(127, **base))
    response = await api.call("DELETE", f"/gateways/{base['gateway_id']}", expect=409)
    assert "still serves 1 luminaire" in response.json()["message"]
    # shrinking the gateway below an address in use is refused
    response = await api.call(
        "PATCH", f"/gateways/{base['gateway_id']}", json={"unit_ids": [1]}, expect=409
    )
    assert "address 127" in response.json()["message"]


async def test_lamp_type_defaults_and_errors(api: Api) -> None:
    lamp = await api.ok("POST", "/lamp-types", json={"name": "Typical"})
    assert (lamp["rated_power_w"], lamp["nominal_voltage_v"], lamp["min_dim_level_pct"]) == (
        100.0,
        220.0,
        10,
    )
    await api.call("POST", "/lamp-types", json={"name": "Typical"}, expect=409)
    response = await api.call(
        "POST", "/lamp-types", json={"name": "x", "rated_power_w": -5}, expect=422
    )
    assert fields(response.json()) == {"rated_power_w"}
    updated = await api.ok("PATCH", f"/lamp-types/{lamp['id']}", json={"rated_power_w": 80})
    assert updated["rated_power_w"] == 80
    await api.call("PATCH", "/lamp-types/9999", json={"rated_power_w": 80}, expect=404)
    await api.ok("DELETE", f"/lamp-types/{lamp['id']}")


async def test_luminaire_crud(api: Api, base: dict[str, int]) -> None:
    created = await api.ok("POST", "/luminaires", json=luminaire(1, **base))
    assert created["street"] == "Lê Duẩn"
    assert created["created_at"].endswith(("Z", "+00:00"))
    moved = await api.ok(
        "PATCH", f"/luminaires/{created['id']}", json={"address": 5, "street": "Hùng Vương"}
    )
    assert (moved["address"], moved["street"], moved["name"]) == (5, "Hùng Vương", "P1-LD-001")
    await api.ok("DELETE", f"/luminaires/{created['id']}")
    await api.call("GET", f"/luminaires/{created['id']}", expect=404)
    await api.call("DELETE", f"/luminaires/{created['id']}", expect=404)


async def test_luminaire_refusals(api: Api, base: dict[str, int]) -> None:
    await api.ok("POST", "/luminaires", json=luminaire(1, **base))
    same_address = await api.call(
        "POST", "/luminaires", json=luminaire(1, **base, name="other"), expect=409
    )
    assert fields(same_address.json()) == {"address"}
    same_name = await api.call(
        "POST", "/luminaires", json=luminaire(2, **base, name="P1-LD-001"), expect=409
    )
    assert fields(same_name.json()) == {"name"}
    beyond = await api.call("POST", "/luminaires", json=luminaire(128, **base), expect=422)
    assert fields(beyond.json()) == {"address"}
    assert "0..127" in beyond.json()["fields"][0]["message"]
    unknown = await api.call(
        "POST",
        "/luminaires",
        json=luminaire(3, gateway_id=999, lamp_type_id=base["lamp_type_id"]),
        expect=422,
    )
    assert fields(unknown.json()) == {"gateway_id"}
    bad = await api.call(
        "POST", "/luminaires", json=luminaire(4, **base, latitude=91, ward=""), expect=422
    )
    assert fields(bad.json()) == {"latitude", "ward"}
    await api.call(
        "POST",
        "/luminaires",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
        expect=422,
    )


async def test_luminaire_filters_search_and_pagination(api: Api, base: dict[str, int]) -> None:
    for n in range(12):
        extra: dict[str, Any] = {}
        if n % 3 == 0:
            extra = {"ward": "Đông Lễ", "street": "Hùng Vương"}
        await api.ok("POST", "/luminaires", json=luminaire(n, **base, **extra))
    page = await api.ok("GET", "/luminaires?limit=5&offset=10", role=Role.VIEWER)
    assert (page["total"], len(page["items"]), page["limit"], page["offset"]) == (12, 2, 5, 10)
    by_ward = await api.ok("GET", "/luminaires", params={"ward": "Đông Lễ"})
    assert by_ward["total"] == 4
    by_street = await api.ok("GET", "/luminaires", params={"street": "Lê Duẩn"})
    assert by_street["total"] == 8
    search = await api.ok("GET", "/luminaires", params={"q": "hùng"})
    assert search["total"] == 4
    by_name = await api.ok("GET", "/luminaires", params={"q": "ld-01"})
    assert {i["name"] for i in by_name["items"]} == {"P1-LD-010", "P1-LD-011"}
    gw = await api.ok("GET", "/luminaires", params={"gateway_id": base["gateway_id"]})
    assert gw["total"] == 12
    too_big = await api.call("GET", "/luminaires?limit=100000", expect=422)
    assert "limit" in too_big.json()["fields"][0]["field"]
    await api.call("GET", "/luminaires?offset=-1", expect=422)


async def test_groups_explicit_and_rule_based(api: Api, base: dict[str, int]) -> None:
    ids = [
        (await api.ok("POST", "/luminaires", json=luminaire(n, **base, ward=w)))["id"]
        for n, w in enumerate(["Phường 1", "Phường 1", "Đông Lễ"])
    ]
    explicit = await api.ok(
        "POST", "/groups", json={"name": "Event", "members": [ids[0], ids[2]], "priority": 5}
    )
    assert explicit["member_count"] == 2
    ward = await api.ok(
        "POST", "/groups", json={"name": "P1", "kind": "ward", "selector": "Phường 1"}
    )
    assert ward["member_count"] == 2
    # rule-based groups follow the inventory
    await api.ok("POST", "/luminaires", json=luminaire(9, **base, ward="Phường 1"))
    assert (await api.ok("GET", f"/groups/{ward['id']}"))["member_count"] == 3
    members = await api.ok("GET", f"/groups/{explicit['id']}/members")
    assert sorted(m["id"] for m in members["items"]) == [ids[0], ids[2]]
    filtered = await api.ok("GET", "/luminaires", params={"group_id": ward["id"]})
    assert filtered["total"] == 3
    by_gateway = await api.ok(
        "POST",
        "/groups",
        json={"name": "GW", "kind": "gateway", "selector": str(base["gateway_id"])},
    )
    assert by_gateway["member_count"] == 4
    # errors
    r = await api.call("POST", "/groups", json={"name": "bad", "members": [999]}, expect=422)
    assert fields(r.json()) == {"members"}
    r = await api.call("POST", "/groups", json={"name": "bad", "kind": "ward"}, expect=422)
    assert "needs a selector" in r.json()["message"]
    await api.call("POST", "/groups", json={"name": "Event"}, expect=409)
    # update replaces members; deleting a luminaire drops it from explicit groups
    updated = await api.ok("PATCH", f"/groups/{explicit['id']}", json={"members": [ids[1]]})
    assert updated["member_count"] == 1
    await api.ok("DELETE", f"/luminaires/{ids[1]}")
    assert (await api.ok("GET", f"/groups/{explicit['id']}"))["member_count"] == 0
    await api.ok("DELETE", f"/groups/{explicit['id']}")
    await api.call("GET", f"/groups/{explicit['id']}/members", expect=404)


async def test_unknown_route_and_method_share_the_error_shape(api: Api) -> None:
    r = await api.call("GET", "/nothing-here", expect=404)
    assert r.json()["error"] == "not_found"
    r = await api.call("PUT", "/luminaires", expect=405)
    assert r.json()["error"] == "method_not_allowed"


async def test_lamp_type_in_use_cannot_be_deleted(api: Api, base: dict[str, int]) -> None:
    await api.ok("POST", "/luminaires", json=luminaire(0, **base))
    r = await api.call("DELETE", f"/lamp-types/{base['lamp_type_id']}", expect=409)
    assert "used by 1 luminaire" in r.json()["message"]
    assert LAMP["name"] == (await api.ok("GET", f"/lamp-types/{base['lamp_type_id']}"))["name"]


# --- gateway ids: one rule, the MQTT contract's (docs/protocol/mqtt.md) ---------------------

REAL_GATEWAY_IDS = [
    "gw:01",  # EUI-style, as the issue reported
    "00-80-E1-15-00-0A-12-34",  # EUI-64, IEEE notation
    "eui-0080e115000a1234",  # LoRaWAN network servers (ChirpStack, The Things Stack)
    "b8:27:eb:12:34:56",  # a MAC address
    "dh-01",
    "x" * 128,  # the longest a topic level may be here
]
REFUSED_GATEWAY_IDS = ["a/b", "a+b", "a#", "x" * 129, "a\x00b", "a\tb"]


def _mqtt_gateway(n: int, mqtt_id: str) -> dict[str, Any]:
    return {"name": f"gw-mqtt-{n}", "protocol": "mqtt", "mqtt_id": mqtt_id}


async def test_gateway_ids_real_gateways_use_are_accepted(api: Api) -> None:
    for n, mqtt_id in enumerate(REAL_GATEWAY_IDS):
        created = await api.ok("POST", "/gateways", json=_mqtt_gateway(n, mqtt_id))
        assert created["mqtt_id"] == mqtt_id
        got = await api.ok("GET", f"/gateways/{created['id']}")
        assert got["mqtt_id"] == mqtt_id  # stored whole (PostgreSQL enforces the length)
        renamed = await api.ok(
            "PATCH", f"/gateways/{created['id']}", json={"mqtt_id": mqtt_id[::-1]}
        )
        assert renamed["mqtt_id"] == mqtt_id[::-1]


async def test_gateway_ids_that_cannot_be_a_topic_level_are_refused(api: Api) -> None:
    for n, mqtt_id in enumerate(REFUSED_GATEWAY_IDS):
        response = await api.call("POST", "/gateways", json=_mqtt_gateway(n, mqtt_id), expect=422)
        assert "mqtt_id" in fields(response.json()) or "mqtt_id" in response.json()["message"]


async def test_the_import_takes_the_same_gateway_ids(api: Api) -> None:
    bundle = {
        "type": "FeatureCollection",
        "features": [],
        "gateways": [_mqtt_gateway(n, mqtt_id) for n, mqtt_id in enumerate(REAL_GATEWAY_IDS)],
    }
    result = await api.ok("POST", "/luminaires/import", json=bundle, expect=200)
    assert result["gateways_created"] == len(REAL_GATEWAY_IDS)
    page = await api.ok("GET", "/gateways?protocol=mqtt&limit=100")
    assert sorted(g["mqtt_id"] for g in page["items"]) == sorted(REAL_GATEWAY_IDS)


def test_the_api_and_the_topic_tree_agree_on_gateway_ids() -> None:
    for mqtt_id in REAL_GATEWAY_IDS:
        assert check_gateway_id(mqtt_id) == mqtt_id
        GatewayCreate(name="g", protocol=ProtocolKind.MQTT, mqtt_id=mqtt_id)
    for mqtt_id in REFUSED_GATEWAY_IDS:
        with pytest.raises(ValueError, match="gateway id"):
            check_gateway_id(mqtt_id)
        with pytest.raises(ValidationError):
            GatewayCreate(name="g", protocol=ProtocolKind.MQTT, mqtt_id=mqtt_id)
