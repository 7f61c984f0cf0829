"""Overrides: create, list, end early, validation, and their place in the timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.access.schemas import Role
from controller.scheduling import data as scheduling
from controller.store.db import Database
from tests.api.conftest import Api, luminaire


async def test_override_lifecycle(api: Api, base: dict[str, int]) -> None:
    lum = await api.ok("POST", "/luminaires", json=luminaire(0, **base))
    body = {
        "targets": {"luminaires": [lum["id"]]},
        "level": 30,
        "duration_min": 60,
        "reason": "festival",
    }
    created = await api.ok("POST", "/overrides", json=body, role=Role.OPERATOR)
    assert created["active"] is True
    assert created["created_by"] == "test-operator"
    starts = datetime.fromisoformat(created["starts_at"])
    ends = datetime.fromisoformat(created["ends_at"])
    assert ends - starts == timedelta(minutes=60)
    active = await api.ok("GET", "/overrides", params={"active": "true"}, role=Role.VIEWER)
    assert [o["id"] for o in active["items"]] == [created["id"]]
    ended = await api.ok("DELETE", f"/overrides/{created['id']}", expect=200, role=Role.OPERATOR)
    assert ended["active"] is False
    assert ended["cancelled_by"] == "test-operator"
    assert (await api.ok("GET", "/overrides", params={"active": "true"}))["total"] == 0
    audit = await api.ok("GET", "/audit", params={"entity": "override"})
    assert [e["action"] for e in audit["items"]] == ["end", "create"]
    await api.call("DELETE", "/overrides/999", expect=404)


async def test_override_validation(api: Api, base: dict[str, int]) -> None:
    now = datetime.now(UTC)

    async def refused(body: dict[str, object]) -> list[str]:
        r = await api.call("POST", "/overrides", json=body, expect=422)
        return [f["field"] for f in r.json()["fields"]]

    ok = {"targets": {"all": True}, "level": 50, "duration_min": 30, "reason": "test"}
    assert await refused({**ok, "level": 101}) == ["level"]
    assert await refused({**ok, "targets": {}}) == ["targets"]
    assert await refused({**ok, "targets": {"luminaires": [999]}}) == ["targets.luminaires"]
    assert await refused({**ok, "targets": {"groups": [999]}}) == ["targets.groups"]
    assert await refused({**ok, "reason": ""}) == ["reason"]
    no_window = {k: v for k, v in ok.items() if k != "duration_min"}
    assert await refused(no_window) == ["body"]
    backwards = {
        **no_window,
        "start": (now + timedelta(hours=2)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
    }
    assert await refused(backwards) == ["end"]
    await api.call("POST", "/overrides", json=ok, role=Role.MAINTENANCE, expect=403)


async def test_override_shows_in_the_timeline(api: Api, db: Database, base: dict[str, int]) -> None:
    async with db.sessions() as session:
        await scheduling.ensure_builtins(session=session)
    lum = await api.ok("POST", "/luminaires", json=luminaire(0, **base))
    group = await api.ok("POST", "/groups", json={"name": "G", "members": [lum["id"]]})
    night_start = datetime(2030, 6, 21, 20, 0, tzinfo=UTC)  # 03:00 local, 22 June 2030
    body = {
        "targets": {"groups": [group["id"]]},
        "level": 100,
        "start": night_start.isoformat(),
        "end": (night_start + timedelta(hours=1)).isoformat(),
        "reason": "incident",
    }
    created = await api.ok("POST", "/overrides", json=body)
    for path in (f"/luminaires/{lum['id']}/timeline", f"/groups/{group['id']}/timeline"):
        t = await api.ok("GET", path, params={"date": "2030-06-21"})
        marks = [(c["at"][11:16], c["level"], c["source"]) for c in t["changes"]]
        assert ("03:00", 100, "override") in marks
        assert ("04:00", 50, "program") in marks
        assert [c["override_id"] for c in t["changes"] if c["source"] == "override"] == [
            created["id"]
        ]
