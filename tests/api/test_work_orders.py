"""Work orders over the API (both databases): from faults to verified, illegal moves,
validation, the verification by telemetry through record_transitions, repair times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from controller.access.auth import Principal
from controller.access.schemas import Role
from controller.alerts.messages import SubjectInfo
from controller.config.settings import AlertSettings
from controller.faults import work_orders
from controller.faults.data import AlertContext, fault_stats, record_transitions
from controller.faults.rules import Evidence, FaultType, Quantity, Severity
from controller.faults.tracker import Subject, Transition, TransitionKind
from controller.faults.work_order_schemas import WorkOrderCreate, WorkOrderMove, WorkState
from controller.store.db import Database
from tests.api.conftest import Api, luminaire

T0 = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
CTX = AlertContext(AlertSettings(), "streetlight", ZoneInfo("Asia/Ho_Chi_Minh"))
CREW = Principal(name="crew-1", role=Role.MAINTENANCE)


def _transition(kind: TransitionKind, lum: int, at: datetime, since: datetime = T0) -> Transition:
    return Transition(
        kind=kind, subject=Subject.luminaire(lum), fault_type=FaultType.LAMP_FAILURE,
        severity=Severity.CRITICAL, at=at, since=since, last_seen=at, count=3,
        evidence=Evidence(Quantity.POWER_W, measured=0.4, expected=100.0), gateway_id=1,
    )  # fmt: skip


async def record(db: Database, kind: TransitionKind, lums: dict[int, str], at: datetime) -> None:
    """Transitions as the loop records them: through ``record_transitions``."""
    infos = {
        Subject.luminaire(i): SubjectInfo(name=f"L{i}", street=street, ward="Phường 1")
        for i, street in lums.items()
    }
    async with db.sessions() as session:
        await record_transitions(
            session=session, transitions=[_transition(kind, i, at) for i in lums],
            subjects=infos, ctx=CTX,
        )  # fmt: skip


async def open_faults(
    api: Api, db: Database, base: dict[str, int], streets: list[str], first: int = 0
) -> list[int]:
    """One luminaire per street given, each with a lamp failure opened by the tracker's path;
    returns the fault ids."""
    lums = {}
    for n, street in enumerate(streets):
        body = luminaire(first + n, **base, street=street)
        lums[(await api.ok("POST", "/luminaires", json=body))["id"]] = street
    await record(db, TransitionKind.OPENED, lums, T0)
    page = await api.ok("GET", "/faults", params={"state": "active"})
    by_lum = {f["luminaire_id"]: f["id"] for f in page["items"]}
    return [by_lum[i] for i in lums]


async def test_from_faults_to_verified_by_telemetry(
    api: Api, db: Database, base: dict[str, int]
) -> None:
    faults = await open_faults(api, db, base, ["Lê Duẩn", "Lê Duẩn"])
    m = Role.MAINTENANCE
    order = await api.ok("POST", "/work-orders", json={"fault_ids": faults}, role=m)
    assert (order["state"], order["street"], order["ward"]) == ("new", "Lê Duẩn", "Phường 1")
    assert order["fault_ids"] == sorted(faults) and order["created_by"] == "test-maintenance"
    path = f"/work-orders/{order['id']}"
    moved = await api.ok(
        "POST", f"{path}/transitions", json={"to": "assigned", "crew": "Đội 2",
                                             "assignee": "test-maintenance"},
        role=m, expect=200,
    )  # fmt: skip
    assert (moved["state"], moved["crew"], moved["assignee"]) == (
        "assigned", "Đội 2", "test-maintenance",
    )  # fmt: skip
    await api.ok("POST", f"{path}/transitions", json={"to": "on_site"}, role=m, expect=200)
    noted = await api.ok(
        "POST", f"{path}/notes", json={"text": "thay bóng và chấn lưu", "minutes": 35}, role=m
    )
    await api.ok("POST", f"{path}/notes", json={"text": "xong", "minutes": 10}, role=m)
    fixed = await api.ok("POST", f"{path}/transitions", json={"to": "fixed"}, role=m, expect=200)
    assert noted["notes"][0]["author"] == "test-maintenance"
    assert fixed["state"] == "fixed" and fixed["minutes_spent"] == 45
    assert [n["text"] for n in fixed["notes"]] == ["thay bóng và chấn lưu", "xong"]
    detail = await api.ok("GET", f"/faults/{faults[0]}", role=Role.VIEWER)
    assert (detail["work_order_id"], detail["work_order_state"]) == (order["id"], "fixed")

    # the lamps come back: the tracker resolves one fault, then the other
    lum_ids = {f["luminaire_id"]: f["street"] for f in fixed["faults"]}
    first, second = list(lum_ids)
    await record(db, TransitionKind.RESOLVED, {first: "Lê Duẩn"}, T0 + timedelta(hours=2))
    assert (await api.ok("GET", path, role=Role.VIEWER))["state"] == "fixed"
    await record(db, TransitionKind.RESOLVED, {second: "Lê Duẩn"}, T0 + timedelta(hours=3))
    verified = await api.ok("GET", path, role=Role.VIEWER)
    assert (verified["state"], verified["verified_by"]) == ("verified", "telemetry")
    assert verified["verified_at"] == (T0 + timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    audit = await api.ok("GET", "/audit", params={"entity": "work_order"})
    assert [(e["action"], e["actor"]) for e in reversed(audit["items"])] == [
        ("create", "test-maintenance"), ("assigned", "test-maintenance"),
        ("on_site", "test-maintenance"), ("note", "test-maintenance"),
        ("note", "test-maintenance"), ("fixed", "test-maintenance"), ("verified", "telemetry"),
    ]  # fmt: skip
    assert audit["items"][0]["before"]["state"] == "fixed"
    assert audit["items"][0]["after"]["state"] == "verified"
    # closed: no more moves
    r = await api.call("POST", f"{path}/transitions", json={"to": "on_site"}, expect=409)
    assert "'verified'" in r.json()["message"] and "closed" in r.json()["message"]


async def test_illegal_moves_name_the_state(api: Api, db: Database, base: dict[str, int]) -> None:
    faults = await open_faults(api, db, base, ["Lê Duẩn"])
    order = await api.ok("POST", "/work-orders", json={"fault_ids": faults}, role=Role.OPERATOR)
    path = f"/work-orders/{order['id']}/transitions"
    r = await api.call("POST", path, json={"to": "fixed"}, expect=409)
    assert r.json()["message"] == (
        f"work order {order['id']} is 'new': it cannot go to 'fixed' (allowed: assigned, cancelled)"
    )
    r = await api.call("POST", path, json={"to": "assigned"}, expect=422)
    assert r.json()["fields"] == [{"field": "crew", "message": "required to assign the order"}]
    r = await api.call("POST", path, json={"to": "teleported"}, expect=422)
    assert r.json()["fields"][0]["field"] == "to"
    r = await api.call("POST", path, json={"to": "cancelled"}, expect=422)
    assert r.json()["fields"][0]["field"] == "reason"
    await api.ok("POST", path, json={"to": "assigned", "crew": "A"}, expect=200)
    await api.ok("POST", path, json={"to": "on_site"}, expect=200)
    await api.ok("POST", path, json={"to": "fixed"}, expect=200)
    r = await api.call("POST", path, json={"to": "verified"}, expect=422)
    assert r.json()["fields"][0]["field"] == "reason"
    by_hand = await api.ok(
        "POST", path, json={"to": "verified", "reason": "kiểm tra tại chỗ"}, expect=200
    )
    assert (by_hand["verified_by"], by_hand["verified_reason"]) == (
        "test-admin",
        "kiểm tra tại chỗ",
    )
    await api.call("PATCH", f"/work-orders/{order['id']}", json={"crew": "B"}, expect=409)
    await api.call("POST", "/work-orders/999/transitions", json={"to": "on_site"}, expect=404)
    await api.call("POST", f"/work-orders/{order['id']}/notes", json={"text": ""}, expect=422)
    await api.call(
        "POST", f"/work-orders/{order['id']}/notes", json={"text": "x", "minutes": -1}, expect=422
    )


async def test_create_refuses_bad_fault_sets(api: Api, db: Database, base: dict[str, int]) -> None:
    same, other = await open_faults(api, db, base, ["Lê Duẩn", "Hùng Vương"])
    r = await api.call("POST", "/work-orders", json={"fault_ids": []}, expect=422)
    assert r.json()["fields"][0]["field"] == "fault_ids"
    r = await api.call("POST", "/work-orders", json={"fault_ids": [9999]}, expect=422)
    assert r.json()["fields"] == [{"field": "fault_ids", "message": "no such fault: 9999"}]
    # two streets, but one gateway: allowed (grouped by gateway, no street)
    both = await api.ok("POST", "/work-orders", json={"fault_ids": [same, other]})
    assert (both["street"], both["gateway_id"]) == (None, base["gateway_id"])
    r = await api.call("POST", "/work-orders", json={"fault_ids": [same]}, expect=409)
    assert r.json()["message"] == f"fault {same} is already in work order {both['id']} (new)"
    moved = {"to": "cancelled", "reason": "tạo nhầm"}
    await api.ok("POST", f"/work-orders/{both['id']}/transitions", json=moved, expect=200)
    await api.ok("POST", "/work-orders", json={"fault_ids": [same]})  # free again
    await api.ok("POST", f"/faults/{other}/resolve", role=Role.MAINTENANCE, expect=200)
    r = await api.call("POST", "/work-orders", json={"fault_ids": [other]}, expect=422)
    assert r.json()["fields"] == [{"field": "fault_ids", "message": f"already resolved: {other}"}]
    r = await api.call("POST", "/work-orders", json={"fault_ids": [same], "x": 1}, expect=422)
    assert r.json()["fields"][0]["field"] == "x"


async def test_fixed_after_the_tracker_resolved_is_verified_but_not_after_a_hand_resolve(
    api: Api, db: Database, base: dict[str, int]
) -> None:
    by_tracker, by_hand = await open_faults(api, db, base, ["Lê Duẩn", "Hùng Vương"])
    ids = []
    for fault in (by_tracker, by_hand):
        order = await api.ok("POST", "/work-orders", json={"fault_ids": [fault], "crew": "A"})
        assert order["state"] == "assigned"
        await api.ok("POST", f"/work-orders/{order['id']}/transitions", json={"to": "on_site"},
                     expect=200)  # fmt: skip
        ids.append(order["id"])
    lum = (await api.ok("GET", f"/faults/{by_tracker}"))["luminaire_id"]
    await record(db, TransitionKind.RESOLVED, {lum: "Lê Duẩn"}, T0 + timedelta(hours=1))
    assert (await api.ok("GET", f"/work-orders/{ids[0]}"))["state"] == "on_site"  # not fixed yet
    await api.ok("POST", f"/faults/{by_hand}/resolve", role=Role.MAINTENANCE, expect=200)
    done = [
        await api.ok("POST", f"/work-orders/{i}/transitions", json={"to": "fixed"}, expect=200)
        for i in ids
    ]
    assert [d["state"] for d in done] == ["verified", "fixed"]


async def test_list_filters_and_assignment(api: Api, db: Database, base: dict[str, int]) -> None:
    a, b = await open_faults(api, db, base, ["Lê Duẩn", "Hùng Vương"])
    first = await api.ok("POST", "/work-orders", json={"fault_ids": [a], "crew": "Đội 1"})
    second = await api.ok("POST", "/work-orders", json={"fault_ids": [b]})
    r = await api.call("PATCH", f"/work-orders/{second['id']}", json={"assignee": "ai-đó"},
                       expect=422)  # fmt: skip
    assert r.json()["fields"] == [
        {"field": "assignee", "message": "no API key in use is named 'ai-đó'"}
    ]
    patched = await api.ok(
        "PATCH", f"/work-orders/{second['id']}",
        json={"crew": "Đội 2", "assignee": "test-viewer"}, role=Role.MAINTENANCE,
    )  # fmt: skip
    assert (patched["crew"], patched["assignee"], patched["state"]) == (
        "Đội 2", "test-viewer", "new",
    )  # fmt: skip
    total = {
        key: (await api.ok("GET", "/work-orders", params=params, role=Role.VIEWER))["total"]
        for key, params in {
            "all": {}, "new": {"state": "new"}, "assigned": {"state": "assigned"},
            "crew1": {"crew": "Đội 1"}, "ward": {"ward": "Phường 1"}, "other": {"ward": "X"},
            "open": {"open": "true"}, "an": {"assignee": "test-viewer"},
        }.items()
    }  # fmt: skip
    assert total == {"all": 2, "new": 1, "assigned": 1, "crew1": 1, "ward": 2, "other": 0,
                     "open": 2, "an": 1}  # fmt: skip
    await api.call("GET", "/work-orders", params={"state": "lost"}, expect=422)
    await api.call("GET", f"/work-orders/{first['id']}", role=None, expect=401)


async def test_repair_times_per_ward_in_fault_stats(
    api: Api, db: Database, base: dict[str, int]
) -> None:
    a, b, c = await open_faults(api, db, base, ["Lê Duẩn", "Hùng Vương", "Trần Hưng Đạo"])

    async def run(fault: int, fix_after: timedelta, verify_after: timedelta | None) -> None:
        async with db.sessions() as session:
            order = await work_orders.create_work_order(
                session=session, data=WorkOrderCreate(fault_ids=[fault], crew="A"), actor=CREW,
                now=T0,
            )  # fmt: skip
            for to, after in ((WorkState.ON_SITE, fix_after / 2), (WorkState.FIXED, fix_after)):
                await work_orders.move_work_order(
                    session=session, order_id=order.id, data=WorkOrderMove(to=to), actor=CREW,
                    now=T0 + after,
                )  # fmt: skip
            if verify_after is not None:
                await work_orders.move_work_order(
                    session=session, order_id=order.id,
                    data=WorkOrderMove(to=WorkState.VERIFIED, reason="ok"), actor=CREW,
                    now=T0 + verify_after,
                )  # fmt: skip

    await run(a, timedelta(hours=2), timedelta(hours=3))
    await run(b, timedelta(hours=4), None)
    await run(c, timedelta(hours=6), timedelta(hours=10))
    period = {
        "from": (T0 - timedelta(days=1)).isoformat(),
        "to": (T0 + timedelta(days=1)).isoformat(),
    }
    stats = await api.ok("GET", "/faults/stats", params=period, role=Role.VIEWER)
    p1 = next(w for w in stats["wards"] if w["ward"] == "Phường 1")
    got = (p1["work_orders"], p1["work_order_time_to_fix_s"], p1["work_order_time_to_verify_s"])
    assert got == (3, 4 * 3600.0, 6.5 * 3600.0)
    async with db.sessions() as session:
        later = await fault_stats(
            session=session, start=T0 + timedelta(days=1), end=T0 + timedelta(days=2)
        )
    assert next(w for w in later.wards if w.ward == "Phường 1").work_orders == 0
