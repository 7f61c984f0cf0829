"""Fault records, hand actions, filters and statistics over the API (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import select

from controller.access.schemas import Role
from controller.alerts.messages import SubjectInfo
from controller.config.settings import AlertSettings, WebhookSettings
from controller.faults.data import AlertContext, record_transitions
from controller.faults.rules import Evidence, FaultType, Quantity, Severity
from controller.faults.tracker import Subject, Transition, TransitionKind
from controller.store.db import Database
from controller.store.tables import AlertOutbox
from tests.api.conftest import Api, luminaire

T0 = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
CTX = AlertContext(
    AlertSettings(
        webhooks=[
            WebhookSettings(name="all", url="http://127.0.0.1:9/a", secret="s"),
            WebhookSettings(
                name="p1-critical", url="http://127.0.0.1:9/b", secret="s",
                wards=["Phường 1"], severities=["critical"],
            ),
        ]
    ),
    "streetlight",
    ZoneInfo("Asia/Ho_Chi_Minh"),
)  # fmt: skip


def transition(
    kind: TransitionKind, subject: Subject, fault: FaultType, at: datetime, **kw: object
) -> Transition:
    return Transition(
        kind=kind, subject=subject, fault_type=fault,
        severity=Severity.CRITICAL if fault is FaultType.LAMP_FAILURE else Severity.WARNING,
        at=at, since=kw.get("since", at), last_seen=at, count=int(kw.get("count", 3)),  # type: ignore[arg-type]
        evidence=Evidence(Quantity.POWER_W, measured=0.4, expected=100.0),
        gateway_id=1 if subject.kind.value == "luminaire" else None,
    )  # fmt: skip


async def _seed(api: Api, db: Database, base: dict[str, int]) -> list[int]:
    ids = [
        (await api.ok("POST", "/luminaires", json=luminaire(n, **base, ward=w)))["id"]
        for n, w in enumerate(["Phường 1", "Phường 1", "Đông Lễ"])
    ]
    infos = {
        Subject.luminaire(i): SubjectInfo(name=f"L{i}", street="Lê Duẩn", ward=w)
        for i, w in zip(ids, ["Phường 1", "Phường 1", "Đông Lễ"], strict=True)
    }
    s0, s2 = Subject.luminaire(ids[0]), Subject.luminaire(ids[2])
    async with db.sessions() as session:
        await record_transitions(
            session=session,
            transitions=[
                transition(TransitionKind.OPENED, s0, FaultType.LAMP_FAILURE, T0),
                transition(TransitionKind.OPENED, s2, FaultType.LAMP_POWER_TOO_HIGH, T0),
                transition(
                    TransitionKind.UPDATED, s0, FaultType.LAMP_FAILURE,
                    T0 + timedelta(minutes=15), since=T0, count=90,
                ),
            ],
            subjects=infos,
            ctx=CTX,
        )  # fmt: skip
    return ids


async def test_faults_are_recorded_once_and_alerts_routed(
    api: Api, db: Database, base: dict[str, int]
) -> None:
    ids = await _seed(api, db, base)
    page = await api.ok("GET", "/faults", role=Role.VIEWER)
    assert page["total"] == 2
    lamp = next(f for f in page["items"] if f["type"] == "lampFailure")
    assert (lamp["luminaire_id"], lamp["ward"], lamp["count"], lamp["state"]) == (
        ids[0],
        "Phường 1",
        90,
        "open",
    )
    detail = await api.ok("GET", f"/faults/{lamp['id']}")
    assert [e["kind"] for e in detail["history"]] == ["opened", "updated"]
    async with db.sessions() as session:
        rows = (await session.exec(select(AlertOutbox))).all()
    # the critical lamp failure in Phường 1: MQTT + both webhooks; the warning in Đông Lễ: MQTT +
    # "all"; the update is history only
    targets = sorted((r.channel, r.target) for r in rows)
    assert targets == sorted(
        [
            ("mqtt", "streetlight/alerts/phuong-1/critical"),
            ("webhook", "all"),
            ("webhook", "p1-critical"),
            ("mqtt", "streetlight/alerts/dong-le/warning"),
            ("webhook", "all"),
        ]
    )
    assert len({r.idempotency_key for r in rows if r.channel == "mqtt"}) == 2


async def test_filters(api: Api, db: Database, base: dict[str, int]) -> None:
    await _seed(api, db, base)
    assert (await api.ok("GET", "/faults", params={"ward": "Đông Lễ"}))["total"] == 1
    assert (await api.ok("GET", "/faults", params={"severity": "critical"}))["total"] == 1
    assert (await api.ok("GET", "/faults", params={"type": "lampPowerTooHigh"}))["total"] == 1
    assert (await api.ok("GET", "/faults", params={"state": "resolved"}))["total"] == 0
    assert (await api.ok("GET", "/faults", params={"state": "active"}))["total"] == 2
    later = (T0 + timedelta(hours=1)).isoformat()
    assert (await api.ok("GET", "/faults", params={"since": later}))["total"] == 0
    await api.call("GET", "/faults", params={"state": "broken"}, expect=422)
    await api.call("GET", "/faults/999", expect=404)


async def test_acknowledge_and_resolve_by_hand(
    api: Api, db: Database, base: dict[str, int]
) -> None:
    await _seed(api, db, base)
    fault = (await api.ok("GET", "/faults", params={"type": "lampFailure"}))["items"][0]
    path = f"/faults/{fault['id']}"
    await api.call("POST", f"{path}/ack", json={"note": "x"}, role=Role.OPERATOR, expect=403)
    await api.call("POST", f"{path}/ack", role=Role.VIEWER, expect=403)
    acked = await api.ok(
        "POST", f"{path}/ack", json={"note": "đội 2 đang đến"}, role=Role.MAINTENANCE, expect=200
    )
    assert (acked["state"], acked["acknowledged_by"], acked["acknowledged_note"]) == (
        "acknowledged", "test-maintenance", "đội 2 đang đến",
    )  # fmt: skip
    await api.call("POST", f"{path}/ack", role=Role.MAINTENANCE, expect=409)
    resolved = await api.ok(
        "POST", f"{path}/resolve", json={"note": "thay bóng"}, role=Role.MAINTENANCE, expect=200
    )
    assert resolved["state"] == "resolved"
    assert [e["kind"] for e in resolved["history"]] == [
        "opened",
        "updated",
        "acknowledged",
        "resolved",
    ]
    await api.call("POST", f"{path}/resolve", role=Role.MAINTENANCE, expect=409)
    audit = await api.ok("GET", "/audit", params={"entity": "fault"})
    assert [e["action"] for e in audit["items"]] == ["resolve", "ack"]
    async with db.sessions() as session:
        rows = (await session.exec(select(AlertOutbox))).all()
    # the app's settings have no webhooks: hand actions go out on MQTT only
    assert sum(1 for r in rows if r.payload["transition"] == "acknowledged") == 1
    assert sum(1 for r in rows if r.payload["transition"] == "resolved") == 1
    await api.call("POST", f"{path}/ack", json={"colour": "x"}, role=Role.MAINTENANCE, expect=422)


async def test_stats_per_ward(api: Api, db: Database, base: dict[str, int]) -> None:
    await _seed(api, db, base)
    lamp = (await api.ok("GET", "/faults", params={"type": "lampFailure"}))["items"][0]
    await api.ok("POST", f"/faults/{lamp['id']}/ack", role=Role.MAINTENANCE, expect=200)
    period = {
        "from": (T0 - timedelta(days=1)).isoformat(),
        "to": (T0 + timedelta(days=3650)).isoformat(),
    }
    stats = await api.ok("GET", "/faults/stats", params=period, role=Role.VIEWER)
    wards = {w["ward"]: w for w in stats["wards"]}
    p1, dl = wards["Phường 1"], wards["Đông Lễ"]
    assert (p1["luminaires"], p1["faulty"], p1["critical"], p1["opened"]) == (2, 1, 1, 1)
    assert p1["faulty_ratio"] == 0.5
    assert p1["mean_time_to_acknowledge_s"] > 0
    assert p1["mean_time_to_repair_s"] is None
    assert (dl["luminaires"], dl["faulty"], dl["critical"]) == (1, 1, 0)
    bad = {"from": period["to"], "to": period["from"]}
    await api.call("GET", "/faults/stats", params=bad, expect=422)
