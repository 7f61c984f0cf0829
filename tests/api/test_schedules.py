"""Programs, calendars, sun and timelines over the API (both databases)."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from api.app import create_app
from controller.access.schemas import Role
from controller.config.settings import Settings
from controller.core.clock import ManualClock
from controller.loop.targets import load_target_book
from controller.scheduling import data as scheduling
from controller.store.db import Database
from tests.api.conftest import Api, luminaire

T_NIGHT = datetime.fromisoformat("2026-06-21T23:00:00+07:00")

STANDARD = [
    {"anchor": "sunset", "level": 100},
    {"anchor": "22:00", "level": 70},
    {"anchor": "00:00", "level": 50},
    {"anchor": "04:30", "level": 70},
    {"anchor": "sunrise", "offset_min": -10, "level": 0},
]


@pytest.fixture
async def builtins(db: Database) -> None:
    async with db.sessions() as session:
        await scheduling.ensure_builtins(session=session)


def fields(body: dict[str, Any]) -> list[str]:
    return [f["field"] for f in body.get("fields", [])]


async def test_builtin_programs_and_default_calendar(api: Api, builtins: None) -> None:
    programs = await api.ok("GET", "/programs", role=Role.VIEWER)
    assert {p["name"] for p in programs["items"]} == {"Đông Hà standard", "full night", "holiday"}
    assert all(p["builtin"] for p in programs["items"])
    calendars = await api.ok("GET", "/calendars")
    [default] = calendars["items"]
    assert default["name"] == "Đông Hà default"
    assert [r["kind"] for r in default["rules"]] == ["holiday", "holiday"]


async def test_program_crud_and_validation_names_the_step(api: Api) -> None:
    created = await api.ok("POST", "/programs", json={"name": "test", "steps": STANDARD})
    assert [s["level"] for s in created["steps"]] == [100, 70, 50, 70, 0]
    assert created["warnings"] == []
    bad = [*STANDARD[:2], {"anchor": "moonrise", "level": 50}, {"anchor": "23:00", "level": 120}]
    r = await api.call("POST", "/programs", json={"name": "bad", "steps": bad}, expect=422)
    body = r.json()
    assert fields(body) == ["steps.2.anchor", "steps.3.level"]
    assert "step 2" in body["fields"][0]["message"]
    assert "unknown anchor 'moonrise'" in body["fields"][0]["message"]
    twice = [{"anchor": "sunset", "level": 100}, {"anchor": "sunset", "level": 50}]
    r = await api.call("POST", "/programs", json={"name": "dup", "steps": twice}, expect=422)
    assert fields(r.json()) == ["steps.1"]
    assert "same time as step 0" in r.json()["fields"][0]["message"]
    r = await api.call(
        "POST",
        "/programs",
        json={"name": "dark", "steps": [{"anchor": "sunset", "level": 0}]},
        expect=422,
    )
    assert fields(r.json()) == ["steps"]
    r = await api.call(
        "POST", "/programs",
        json={"name": "far", "steps": [{"anchor": "sunset", "offset_min": 800, "level": 10}]},
        expect=422,
    )  # fmt: skip
    assert fields(r.json()) == ["steps.0.offset_min"]
    r = await api.call(
        "POST",
        "/programs",
        json={"name": "typo", "steps": [{"anchor": "sunset", "level": "high"}]},
        expect=422,
    )
    assert fields(r.json()) == ["steps.0.level"]
    await api.call("POST", "/programs", json={"name": "test", "steps": STANDARD}, expect=409)
    await api.call(
        "POST", "/programs", json={"name": "x", "steps": STANDARD}, role=Role.VIEWER, expect=403
    )
    updated = await api.ok("PATCH", f"/programs/{created['id']}", json={"default_level": 20})
    assert updated["default_level"] == 20
    assert updated["steps"] == created["steps"]
    await api.ok("DELETE", f"/programs/{created['id']}")


async def test_order_swap_is_a_warning_not_a_refusal(api: Api) -> None:
    steps = [
        {"anchor": "sunset", "level": 100},
        {"anchor": "22:00", "level": 70},
        {"anchor": "sunset", "offset_min": 240, "level": 50},
        {"anchor": "sunrise", "level": 0},
    ]
    created = await api.ok("POST", "/programs", json={"name": "swap", "steps": steps})
    codes = {(w["code"], w["step"], w["other_step"]) for w in created["warnings"]}
    assert any(code == "order_swap" and {a, b} == {1, 2} for code, a, b in codes), codes


async def test_calendars_validate_rules_and_program_references(api: Api, builtins: None) -> None:
    programs = {p["name"]: p["id"] for p in (await api.ok("GET", "/programs"))["items"]}
    body = {
        "name": "Lê Duẩn",
        "rules": [
            {"kind": "date", "date": "2026-09-02", "program_id": programs["full night"]},
            {"kind": "annual", "start": "12-20", "end": "01-05", "program_id": programs["holiday"]},
            {"kind": "weekdays", "days": ["sat", "sun"], "program_id": programs["full night"]},
            {"kind": "holiday", "holiday": "tet", "program_id": programs["holiday"]},
        ],
        "default_program_id": programs["Đông Hà standard"],
    }
    created = await api.ok("POST", "/calendars", json=body)
    assert len(created["rules"]) == 4
    bad = {
        "name": "bad",
        "rules": [
            {"kind": "annual", "start": "13-40", "end": "01-05", "program_id": programs["holiday"]},
            {"kind": "date", "program_id": programs["holiday"]},
            {"kind": "range", "start": "2026-05-01", "end": "2026-04-01", "program_id": 1},
            {"kind": "weekdays", "days": ["sat"], "program_id": 999},
        ],
    }
    r = await api.call("POST", "/calendars", json=bad, expect=422)
    assert fields(r.json()) == ["rules.0", "rules.1.date", "rules.2"]
    bad["rules"] = bad["rules"][3:]
    r = await api.call("POST", "/calendars", json=bad, expect=422)
    assert fields(r.json()) == ["rules.0.program_id"]
    r = await api.call(
        "POST",
        "/calendars",
        json={"name": "x", "rules": [{"kind": "holiday", "holiday": "christmas", "program_id": 1}]},
        expect=422,
    )
    assert fields(r.json()) == ["rules.0.holiday"]
    # a program used by a calendar cannot be deleted; a calendar used by a group neither
    r = await api.call("DELETE", f"/programs/{programs['holiday']}", expect=409)
    assert "Lê Duẩn" in r.json()["message"]
    group = await api.ok("POST", "/groups", json={"name": "G", "calendar_id": created["id"]})
    assert group["calendar_id"] == created["id"]
    await api.call("DELETE", f"/calendars/{created['id']}", expect=409)
    r = await api.call("POST", "/groups", json={"name": "H", "calendar_id": 999}, expect=422)
    assert fields(r.json()) == ["calendar_id"]


async def test_sun_endpoint(api: Api) -> None:
    rows = await api.ok("GET", "/sun", params={"date": "2026-06-21", "days": 3}, role=Role.VIEWER)
    assert [r["date"] for r in rows] == ["2026-06-21", "2026-06-22", "2026-06-23"]
    assert set(rows[0]) == {
        "date",
        "sunrise",
        "sunset",
        "civil_dawn",
        "civil_dusk",
        "nautical_dawn",
        "nautical_dusk",
    }
    sunrise = datetime.fromisoformat(rows[0]["sunrise"])
    assert sunrise.utcoffset() is not None and sunrise.utcoffset().total_seconds() == 7 * 3600  # type: ignore[union-attr]
    assert (sunrise.hour, sunrise.minute) == (5, 19)  # 05:19:22, the standard definition
    await api.call("GET", "/sun", params={"days": 0}, expect=422)


async def test_group_and_luminaire_timelines(
    api: Api, builtins: None, base: dict[str, int]
) -> None:
    lum = await api.ok("POST", "/luminaires", json=luminaire(0, **base))
    ward = await api.ok(
        "POST", "/groups", json={"name": "W", "kind": "ward", "selector": "Phường 1"}
    )
    t = await api.ok("GET", f"/groups/{ward['id']}/timeline", params={"date": "2026-06-21"})
    assert t["calendar"] == "Đông Hà default"
    levels = [(c["at"][11:16], c["level"], c["source"]) for c in t["changes"]]
    assert levels[1:] == [
        ("18:27", 100, "program"),
        ("22:00", 70, "program"),
        ("00:00", 50, "program"),
        ("04:30", 70, "program"),
        ("05:09", 0, "program"),
    ]
    assert t["sun"]["sunset"].startswith("2026-06-21T18:27")
    # Tết 2027 (6 Feb) is a holiday night: the holiday program from civil dusk
    t = await api.ok("GET", f"/luminaires/{lum['id']}/timeline", params={"date": "2027-02-06"})
    assert {c["program"] for c in t["changes"]} == {"holiday"}
    # a group with a higher-priority calendar wins for its members
    programs = {p["name"]: p["id"] for p in (await api.ok("GET", "/programs"))["items"]}
    cal = await api.ok(
        "POST",
        "/calendars",
        json={"name": "all night", "default_program_id": programs["full night"]},
    )
    await api.ok(
        "POST",
        "/groups",
        json={"name": "VIP", "members": [lum["id"]], "priority": 10, "calendar_id": cal["id"]},
    )
    t = await api.ok("GET", f"/luminaires/{lum['id']}/timeline", params={"date": "2026-06-21"})
    assert t["calendar"] == "all night"
    assert [c["level"] for c in t["changes"]] == [0, 100, 0]
    await api.call("GET", "/groups/999/timeline", expect=404)


async def test_one_calendar_choice_for_the_controller_the_timelines_and_the_api(
    api: Api, builtins: None, base: dict[str, int], db: Database, settings: Settings
) -> None:
    """Luminaires in several groups (explicit, ward, street) with calendars of different
    priorities: the controller's targets and every timeline use the same calendar."""
    programs = {p["name"]: p["id"] for p in (await api.ok("GET", "/programs"))["items"]}
    calendars = {
        name: (await api.ok("POST", "/calendars", json={"name": name, "default_program_id": pid}))
        for name, pid in (
            ("all night", programs["full night"]),
            ("dimmed", programs["Đông Hà standard"]),
        )
    }
    lums = [
        await api.ok("POST", "/luminaires", json=luminaire(n, **base, street=street))
        for n, street in ((1, "Lê Duẩn"), (2, "Lê Duẩn"), (3, "Hùng Vương"), (4, "Hùng Vương"))
    ]
    one, two, three, four = (lum["id"] for lum in lums)

    async def group(name: str, priority: int, calendar: str, **kind: Any) -> int:
        body = {"name": name, "priority": priority, "calendar_id": calendars[calendar]["id"]}
        return int((await api.ok("POST", "/groups", json=body | kind))["id"])

    # created in this order, so group ids rise: the tie between "street" and "vip" goes
    # to "street", the lower id
    street = await group("street", 5, "all night", kind="street", selector="Lê Duẩn")
    vip = await group("vip", 5, "dimmed", members=[one, three])
    await group("ward", 1, "dimmed", kind="ward", selector="Phường 1")
    expected = {
        one: "all night",  # street 5 = vip 5 > ward 1: the lowest group id wins the tie
        two: "all night",  # street 5 > ward 1
        three: "dimmed",  # vip 5 > ward 1
        four: "dimmed",  # ward only
    }
    names = {c["id"]: name for name, c in calendars.items()}
    async with db.sessions() as session:
        book = await load_target_book(session=session, settings=settings, now=T_NIGHT)
    assert {lid: names[book.calendar_of[lid]] for lid in expected} == expected
    for lid, calendar in expected.items():
        t = await api.ok("GET", f"/luminaires/{lid}/timeline", params={"date": "2026-06-21"})
        assert t["calendar"] == calendar, lid
        # the timeline's level at 23:00 is the controller's target then (100 % or 70 %)
        changes = [c for c in t["changes"] if c["at"] <= "2026-06-21T23:00:00+07:00"]
        assert book.targets(T_NIGHT, [lid])[lid].level == changes[-1]["level"], lid
    # raising the ward above the others moves every member to its calendar
    ward_id = next(
        g["id"] for g in (await api.ok("GET", "/groups"))["items"] if g["name"] == "ward"
    )
    await api.ok("PATCH", f"/groups/{ward_id}", json={"priority": 9})
    async with db.sessions() as session:
        book = await load_target_book(session=session, settings=settings, now=T_NIGHT)
    assert {names[book.calendar_of[lid]] for lid in expected} == {"dimmed"}
    t = await api.ok("GET", f"/luminaires/{one}/timeline", params={"date": "2026-06-21"})
    assert t["calendar"] == "dimmed"
    # a group's own timeline shows its own calendar
    t = await api.ok("GET", f"/groups/{street}/timeline", params={"date": "2026-06-21"})
    assert t["calendar"] == "all night"
    t = await api.ok("GET", f"/groups/{vip}/timeline", params={"date": "2026-06-21"})
    assert t["calendar"] == "dimmed"


# --- the app's clock ---------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.fromisoformat("2026-06-21T23:00:00+07:00"))


@pytest.fixture
async def clocked(
    settings: Settings, db: Database, keys: dict[Role, str], clock: ManualClock
) -> AsyncIterator[Api]:
    """The API with the controller's clock (the demo's runs fast): 21 June 2026, 23:00."""
    app = create_app(settings, db, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield Api(c, keys)


async def test_defaults_follow_the_apps_clock_not_the_wall_clock(
    clocked: Api, builtins: None, base: dict[str, int], clock: ManualClock
) -> None:
    api = clocked
    lum = await api.ok("POST", "/luminaires", json=luminaire(1, **base))
    ward = await api.ok(
        "POST", "/groups", json={"name": "W", "kind": "ward", "selector": "Phường 1"}
    )
    [today] = await api.ok("GET", "/sun")
    assert today["date"] == "2026-06-21"
    for path in (f"/groups/{ward['id']}/timeline", f"/luminaires/{lum['id']}/timeline"):
        t = await api.ok("GET", path)
        assert t["night"] == "2026-06-21", path
        assert t == await api.ok("GET", path, params={"date": "2026-06-21"})
    clock.set(datetime.fromisoformat("2026-12-31T20:00:00+07:00"))
    [today] = await api.ok("GET", "/sun")
    assert today["date"] == "2026-12-31"
    t = await api.ok("GET", f"/groups/{ward['id']}/timeline")
    assert t["night"] == "2026-12-31"


# --- "tonight" and step numbers ----------------------------------------------------------


async def test_after_sunrise_tonight_is_the_coming_night(
    clocked: Api, builtins: None, base: dict[str, int], clock: ManualClock
) -> None:
    """11:24 on 22 June: the night of the 21st ended at sunrise (05:19); "tonight" is the
    night of the 22nd, for the API, the dashboard's panel and its step numbers."""
    api = clocked
    lum = await api.ok("POST", "/luminaires", json=luminaire(1, **base))
    ward = await api.ok(
        "POST", "/groups", json={"name": "W", "kind": "ward", "selector": "Phường 1"}
    )
    clock.set(datetime.fromisoformat("2026-06-22T11:24:00+07:00"))
    for path in (f"/groups/{ward['id']}/timeline", f"/luminaires/{lum['id']}/timeline"):
        assert (await api.ok("GET", path))["night"] == "2026-06-22", path
    # before sunrise it is still the night that began the evening before
    clock.set(datetime.fromisoformat("2026-06-22T05:00:00+07:00"))
    assert (await api.ok("GET", f"/groups/{ward['id']}/timeline"))["night"] == "2026-06-21"
    clock.set(datetime.fromisoformat("2026-06-22T11:24:00+07:00"))

    client = api.client
    client.headers["Accept"] = "text/html"
    response = await client.post("/login", data={"key": api.keys[Role.VIEWER], "next": "/"})
    assert response.status_code == 303, response.text
    for path in ("/", f"/groups/{ward['id']}", f"/luminaires/{lum['id']}"):
        page = (await client.get(path, params={"lang": "en"})).text
        [heading] = re.findall(r'<h2 id="h-night">([^<]*)</h2>', page)
        assert "(2026-06-22)" in heading or "(22/06/2026)" in heading, (path, heading)
        # the night of the 22nd: sunset 18:27 that evening; the 00:00 step of the 21st's
        # night is not today's 11:24 past
        steps = _steps_table(page)
        assert ("18:27", "100 %") in [(at, level) for at, level, _ in steps], path
    # steps are numbered from 1, as the CLI does: 22:00 is the program's second step
    page = (await client.get("/")).text
    [at_ten] = [why for at, _, why in _steps_table(page) if at == "22:00"]
    assert at_ten.endswith(("bước 2", "step 2")), at_ten


def _steps_table(page: str) -> list[tuple[str, str, str]]:
    """(time, level, why) of every row of the dashboard's "steps tonight" table."""
    table = page.split('<table class="steps">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", table)
    return [(at, level, html.unescape(why)) for at, level, why in rows]
