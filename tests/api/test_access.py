"""Authentication, the role matrix, health and the audit trail."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.app import create_app
from controller.access import auth
from controller.access.schemas import Role
from controller.config.settings import Settings
from controller.store.db import Database, open_database
from tests.api.conftest import MODBUS_GW, Api, luminaire
from tests.api.test_work_orders import open_faults

ALL = frozenset(Role)
WRITERS = frozenset({Role.ADMIN, Role.OPERATOR})
CREWS = frozenset({Role.ADMIN, Role.OPERATOR, Role.MAINTENANCE})

# (method, path template, body, roles allowed). Paths use {gw}, {lamp}, {lum}, {grp}, and
# {wo} (a work order for the fault {f1}); {f2} is a second open fault.
MATRIX: list[tuple[str, str, dict[str, Any] | None, frozenset[Role]]] = [
    ("GET", "/gateways", None, ALL),
    ("GET", "/gateways/{gw}", None, ALL),
    ("POST", "/gateways", {"name": "new-gw", "protocol": "mqtt", "mqtt_id": "n1"}, WRITERS),
    ("PATCH", "/gateways/{gw}", {"ward": "Phường 2"}, WRITERS),
    ("GET", "/lamp-types", None, ALL),
    ("GET", "/lamp-types/{lamp}", None, ALL),
    ("POST", "/lamp-types", {"name": "new-lamp"}, WRITERS),
    ("PATCH", "/lamp-types/{lamp}", {"description": "x"}, WRITERS),
    ("GET", "/luminaires", None, ALL),
    ("GET", "/luminaires/{lum}", None, ALL),
    ("PATCH", "/luminaires/{lum}", {"street": "Lê Lợi"}, WRITERS),
    ("GET", "/groups", None, ALL),
    ("GET", "/groups/{grp}", None, ALL),
    ("GET", "/groups/{grp}/members", None, ALL),
    ("POST", "/groups", {"name": "new-group"}, WRITERS),
    ("PATCH", "/groups/{grp}", {"description": "x"}, WRITERS),
    ("GET", "/programs", None, ALL),
    ("POST", "/programs", {"name": "p", "steps": [{"anchor": "sunset", "level": 100}]}, WRITERS),
    ("GET", "/calendars", None, ALL),
    ("POST", "/calendars", {"name": "c"}, WRITERS),
    ("GET", "/sun", None, ALL),
    ("GET", "/groups/{grp}/timeline", None, ALL),
    ("GET", "/luminaires/{lum}/timeline", None, ALL),
    ("GET", "/overrides", None, ALL),
    (
        "POST",
        "/overrides",
        {"targets": {"all": True}, "level": 5, "duration_min": 5, "reason": "r"},
        WRITERS,
    ),
    ("GET", "/audit", None, frozenset({Role.ADMIN})),
    ("GET", "/work-orders", None, ALL),
    ("GET", "/work-orders/{wo}", None, ALL),
    ("POST", "/work-orders", {"fault_ids": ["{f2}"]}, CREWS),
    ("PATCH", "/work-orders/{wo}", {"assignee": "test-maintenance"}, CREWS),
    ("POST", "/work-orders/{wo}/transitions", {"to": "assigned", "crew": "Đội 1"}, CREWS),
    ("POST", "/work-orders/{wo}/notes", {"text": "đã đến", "minutes": 5}, CREWS),
    ("DELETE", "/groups/{grp}", None, WRITERS),
    ("DELETE", "/luminaires/{lum}", None, WRITERS),
]


async def _fixture_ids(api: Api) -> dict[str, int]:
    gw = await api.ok("POST", "/gateways", json=MODBUS_GW)
    lamp = await api.ok("POST", "/lamp-types", json={"name": "L"})
    lum = await api.ok("POST", "/luminaires", json=luminaire(0, gw["id"], lamp["id"]))
    grp = await api.ok("POST", "/groups", json={"name": "G", "members": [lum["id"]]})
    return {"gw": gw["id"], "lamp": lamp["id"], "lum": lum["id"], "grp": grp["id"]}


async def _work_order_ids(api: Api, db: Database, ids: dict[str, int]) -> dict[str, int]:
    """Two open faults (opened through record_transitions) and a work order for the first."""
    base = {"gateway_id": ids["gw"], "lamp_type_id": ids["lamp"]}
    f1, f2 = await open_faults(api, db, base, ["Lê Duẩn", "Lê Duẩn"], first=10)
    wo = await api.ok("POST", "/work-orders", json={"fault_ids": [f1]})
    return {"f1": f1, "f2": f2, "wo": wo["id"]}


def _fill(body: Any, ids: dict[str, int]) -> Any:
    if isinstance(body, dict):
        return {k: _fill(v, ids) for k, v in body.items()}
    if isinstance(body, list):
        return [_fill(v, ids) for v in body]
    if isinstance(body, str) and body.startswith("{") and body.endswith("}"):
        return ids[body[1:-1]]
    return body


@pytest.mark.parametrize("role", list(Role))
async def test_role_matrix(api: Api, db: Database, role: Role) -> None:
    ids = await _fixture_ids(api)
    ids |= await _work_order_ids(api, db, ids)
    for method, template, body, allowed in MATRIX:
        path = template.format(**ids)
        response = await api.call(method, path, role=role, json=_fill(body, ids))
        if role in allowed:
            assert response.status_code < 300, f"{role} {method} {path}: {response.text}"
        else:
            assert response.status_code == 403, f"{role} {method} {path}: {response.text}"
            assert response.json()["error"] == "forbidden"
            assert role.value in response.json()["message"]


async def test_missing_bad_and_revoked_keys(
    api: Api, db: Database, client: httpx.AsyncClient
) -> None:
    r = await client.get("/api/v1/luminaires")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"] == "not_authenticated"
    r = await client.get("/api/v1/luminaires", headers={"Authorization": "Bearer sl_wrong"})
    assert r.status_code == 401
    r = await client.get("/api/v1/luminaires", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    async with db.sessions() as session:
        await auth.revoke_key(session=session, name_or_id="test-viewer")
    await api.call("GET", "/luminaires", role=Role.VIEWER, expect=401)
    await api.call("GET", "/luminaires", role=Role.OPERATOR, expect=200)


async def test_keys_are_stored_only_as_hashes(db: Database) -> None:
    async with db.sessions() as session:
        key, public = await auth.create_key(session=session, name="k", role=Role.VIEWER)
        assert key.startswith("sl_") and len(key) > 40
        from sqlmodel import select

        from controller.store.tables import ApiKey

        row = (await session.exec(select(ApiKey).where(ApiKey.name == "k"))).one()
        assert row.key_hash == auth.hash_key(key) and key not in row.key_hash
        principal = await auth.authenticate(session=session, key=key)
        assert principal.role is Role.VIEWER and public.prefix == key[:10]


async def test_health_is_open_and_reports_the_database(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    r = await client.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json()["database"] == "ok"
    dead = open_database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    app = create_app(settings, dead)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/api/v1/health")
    await dead.dispose()
    assert r.status_code == 503
    assert r.json() | {"version": "x"} == {
        "status": "degraded",
        "database": "unreachable",
        "version": "x",
        "site": "Đông Hà",
    }


async def test_every_write_is_audited(api: Api) -> None:
    ids = await _fixture_ids(api)
    await api.ok(
        "PATCH", f"/luminaires/{ids['lum']}", json={"street": "Lê Lợi"}, role=Role.OPERATOR
    )
    await api.ok("DELETE", f"/groups/{ids['grp']}", role=Role.OPERATOR)
    page = await api.ok("GET", "/audit")
    entries = page["items"]
    assert [(e["action"], e["entity"]) for e in entries] == [
        ("delete", "group"),
        ("update", "luminaire"),
        ("create", "group"),
        ("create", "luminaire"),
        ("create", "lamp_type"),
        ("create", "gateway"),
    ]
    update = entries[1]
    assert update["actor"] == "test-operator" and update["role"] == "operator"
    assert update["before"]["street"] == "Lê Duẩn" and update["after"]["street"] == "Lê Lợi"
    assert update["entity_id"] == str(ids["lum"])
    assert entries[0]["before"]["name"] == "G" and entries[0]["after"] is None
    only_groups = await api.ok("GET", "/audit", params={"entity": "group"})
    assert only_groups["total"] == 2
    # refused writes leave no trace
    await api.call("POST", "/gateways", json=MODBUS_GW, expect=409)
    assert (await api.ok("GET", "/audit"))["total"] == 6
