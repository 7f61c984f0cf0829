"""Faults in the database: transitions in, open faults out, hand actions, queries, stats.

The pure tracker (:mod:`controller.faults.tracker`) decides; this module records. Every
transition becomes a :class:`FaultEvent`; opened / acknowledged / resolved ones also
become alerts in the :class:`AlertOutbox` (one row per channel and receiver: the MQTT
topic, each webhook and each e-mail rule that wants it), in the same transaction, so an
alert is never lost between the decision and its delivery. The outbox runs on wall time:
``queued_at`` is when the alert was queued, and a digest rule's row waits until the end of
its window (:func:`digest_due`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Integer, case, cast
from sqlalchemy import select as core_select
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.access import audit
from controller.access.auth import Principal
from controller.alerts.messages import (
    AlertState,
    Lang,
    SubjectInfo,
    alert_topic,
    build_alert,
    message,
)
from controller.config.settings import AlertSettings, EmailRule, WebhookSettings
from controller.core.errors import Conflict, NotFound
from controller.core.page import Page
from controller.faults import work_orders
from controller.faults.rules import Evidence, FaultType, Quantity, Severity, SubjectKind
from controller.faults.tracker import OpenFault, Subject, Transition, TransitionKind
from controller.faults.work_order_schemas import RepairTimes
from controller.store.tables import AlertOutbox, FaultEvent, FaultRow, Luminaire

ALERTED = frozenset({TransitionKind.OPENED, TransitionKind.ACKNOWLEDGED, TransitionKind.RESOLVED})
"""Transitions that reach the crews; ``updated`` (a repeat detection) is history only."""


class FaultState:
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


def _evidence_dict(evidence: Evidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    out = {k: v for k, v in asdict(evidence).items() if v is not None}
    for key in ("quantity", "flag"):
        if key in out:
            out[key] = str(out[key])
    return out


def _evidence(data: dict[str, Any] | None) -> Evidence | None:
    if not data:
        return None
    from controller.core.values import DeviceFlag

    return Evidence(
        quantity=Quantity(data["quantity"]),
        measured=data.get("measured"),
        expected=data.get("expected"),
        low=data.get("low"),
        high=data.get("high"),
        window_s=data.get("window_s"),
        flag=DeviceFlag(data["flag"]) if data.get("flag") else None,
    )


def routes(
    rule: WebhookSettings | EmailRule, fault_type: str, severity: str, ward: str | None
) -> bool:
    """Whether a receiver's routing rules want this alert (an empty rule list means all)."""
    return (
        (not rule.wards or (ward or "") in rule.wards)
        and (not rule.severities or severity in rule.severities)
        and (not rule.types or fault_type in rule.types)
    )


def digest_due(now: datetime, interval_min: int) -> datetime:
    """The end of the digest window ``now`` falls in (windows aligned on the UTC epoch):
    when the digest of every alert queued in that window is sent."""
    step = interval_min * 60
    return datetime.fromtimestamp((int(now.timestamp()) // step + 1) * step, UTC)


@dataclass(frozen=True, slots=True)
class AlertContext:
    """What outbox rows need: routing settings, the MQTT prefix, the site's zone."""

    alerts: AlertSettings
    mqtt_prefix: str
    zone: ZoneInfo


def _outbox_rows(
    ctx: AlertContext,
    event: FaultEvent,
    payload: dict[str, Any],
    row: FaultRow,
    queued_at: datetime,
) -> list[AlertOutbox]:
    assert event.id is not None
    event_id = event.id
    key = str(payload["idempotency_key"])

    def outbox(channel: str, target: str, due: datetime = queued_at) -> AlertOutbox:
        return AlertOutbox(
            fault_event_id=event_id, channel=channel, target=target, payload=payload,
            idempotency_key=key, next_attempt_at=due, created_at=queued_at,
        )  # fmt: skip

    rows: list[AlertOutbox] = []
    if ctx.alerts.mqtt:
        rows.append(outbox("mqtt", alert_topic(ctx.mqtt_prefix, row.ward, Severity(row.severity))))
    for hook in ctx.alerts.webhooks:
        if routes(hook, row.fault_type, row.severity, row.ward):
            rows.append(outbox("webhook", hook.name))
    for rule in ctx.alerts.email.rules:
        if not routes(rule, row.fault_type, row.severity, row.ward):
            continue
        if rule.mode == "digest":
            rows.append(
                outbox("digest", rule.name, digest_due(queued_at, rule.digest_interval_min))
            )
        else:
            rows.append(outbox("email", rule.name))
    return rows


def _payload(
    ctx: AlertContext, transition: Transition, row: FaultRow, info: SubjectInfo
) -> dict[str, Any]:
    state = {
        FaultState.OPEN: AlertState.OPEN,
        FaultState.ACKNOWLEDGED: AlertState.ACKNOWLEDGED,
        FaultState.RESOLVED: AlertState.RESOLVED,
    }[row.state]
    payload = build_alert(
        transition, fault_id=row.id or 0, subject=info, zone=ctx.zone, state=state
    )
    payload["message"] = message(transition, info, ctx.zone, Lang(ctx.alerts.language))
    return payload


async def _open_row(session: AsyncSession, subject: Subject, fault: FaultType) -> FaultRow | None:
    return (
        await session.exec(
            select(FaultRow).where(
                FaultRow.subject_kind == subject.kind.value,
                FaultRow.subject_id == subject.id,
                FaultRow.fault_type == fault.value,
                FaultRow.state != FaultState.RESOLVED,
            )
        )
    ).first()


async def record_transitions(
    *,
    session: AsyncSession,
    transitions: Sequence[Transition],
    subjects: Mapping[Subject, SubjectInfo],
    ctx: AlertContext,
    queued_at: datetime | None = None,
) -> int:
    """Store transitions decided by the tracker, with their alerts; returns alerts queued.

    ``queued_at``: the outbox's wall-clock instant (now by default).
    """
    queued_at = queued_at or datetime.now(UTC)
    queued = 0
    resolved: dict[int, datetime] = {}
    for t in transitions:
        info = subjects.get(t.subject) or SubjectInfo(name=f"{t.subject.kind} {t.subject.id}")
        row = await _open_row(session, t.subject, t.fault_type)
        if t.kind is TransitionKind.OPENED or row is None:
            if t.kind is not TransitionKind.OPENED:
                continue  # nothing open to update or resolve (already resolved by hand)
            row = FaultRow(
                subject_kind=t.subject.kind.value,
                subject_id=t.subject.id,
                luminaire_id=t.subject.id if t.subject.kind is SubjectKind.LUMINAIRE else None,
                gateway_id=t.gateway_id
                if t.subject.kind is SubjectKind.LUMINAIRE
                else t.subject.id,
                fault_type=t.fault_type.value,
                severity=t.severity.value,
                state=FaultState.OPEN,
                ward=info.ward,
                street=info.street,
                since=t.since,
                last_seen=t.last_seen,
                count=t.count,
                evidence=_evidence_dict(t.evidence),
            )
        else:
            row.last_seen = t.last_seen
            row.count = t.count
            row.evidence = _evidence_dict(t.evidence) or row.evidence
            if t.kind is TransitionKind.RESOLVED:
                row.state = FaultState.RESOLVED
                row.resolved_at = t.at
                row.resolved_by = t.actor
        session.add(row)
        await session.flush()
        assert row.id is not None
        event = FaultEvent(
            fault_id=row.id, at=t.at, kind=t.kind.value, actor=t.actor, count=t.count,
            evidence=_evidence_dict(t.evidence),
        )  # fmt: skip
        session.add(event)
        await session.flush()
        if t.kind in ALERTED:
            outbox = _outbox_rows(ctx, event, _payload(ctx, t, row, info), row, queued_at)
            session.add_all(outbox)
            queued += len(outbox)
        if t.kind is TransitionKind.RESOLVED:
            resolved[row.id] = t.at
    if resolved:  # fixed work orders whose faults are now all resolved: verified, same commit
        await work_orders.verify_repaired(
            session=session, fault_ids=resolved, at=max(resolved.values())
        )
    await session.commit()
    return queued


async def load_open_faults(*, session: AsyncSession) -> list[OpenFault]:
    """Every unresolved fault, for the tracker after a restart."""
    rows = (await session.exec(select(FaultRow).where(FaultRow.state != FaultState.RESOLVED))).all()
    return [
        OpenFault(
            subject=Subject(SubjectKind(r.subject_kind), r.subject_id),
            fault_type=FaultType(r.fault_type),
            severity=Severity(r.severity),
            since=r.since,
            last_seen=r.last_seen,
            count=r.count,
            evidence=_evidence(r.evidence),
            gateway_id=r.gateway_id if r.subject_kind == SubjectKind.LUMINAIRE.value else None,
            acknowledged=r.state == FaultState.ACKNOWLEDGED,
        )
        for r in rows
    ]


# --- API models and queries -----------------------------------------------------------------


class FaultEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    kind: str
    actor: str | None
    note: str | None
    count: int
    evidence: dict[str, Any] | None


class FaultPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str = Field(validation_alias="fault_type")
    severity: str
    state: str
    subject_kind: str
    subject_id: int
    luminaire_id: int | None
    gateway_id: int | None
    ward: str | None
    street: str | None
    since: datetime
    last_seen: datetime
    count: int
    evidence: dict[str, Any] | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledged_note: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolved_note: str | None


class FaultDetail(FaultPublic):
    history: list[FaultEventPublic] = Field(default_factory=list)
    work_order_id: int | None = None
    """The newest work order covering this fault, if any (``/api/v1/work-orders/{id}``)."""
    work_order_state: str | None = None


class FaultNote(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str | None = Field(default=None, max_length=1000)


async def list_faults(
    *,
    session: AsyncSession,
    limit: int,
    offset: int,
    state: str | None = None,
    ward: str | None = None,
    fault_type: str | None = None,
    severity: str | None = None,
    since: datetime | None = None,
    luminaire_id: int | None = None,
    gateway_id: int | None = None,
) -> Page[FaultPublic]:
    stmt = select(FaultRow)
    if state == "active":
        stmt = stmt.where(FaultRow.state != FaultState.RESOLVED)
    elif state:
        stmt = stmt.where(FaultRow.state == state)
    if ward:
        stmt = stmt.where(FaultRow.ward == ward)
    if fault_type:
        stmt = stmt.where(FaultRow.fault_type == fault_type)
    if severity:
        stmt = stmt.where(FaultRow.severity == severity)
    if since:
        stmt = stmt.where(col(FaultRow.since) >= since)
    if luminaire_id is not None:
        stmt = stmt.where(FaultRow.luminaire_id == luminaire_id)
    if gateway_id is not None:
        stmt = stmt.where(FaultRow.gateway_id == gateway_id)
    total = (await session.exec(select(func.count()).select_from(stmt.subquery()))).one()
    rows = (
        await session.exec(stmt.order_by(col(FaultRow.id).desc()).offset(offset).limit(limit))
    ).all()
    return Page(
        items=[FaultPublic.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


async def get_fault(*, session: AsyncSession, fault_id: int) -> FaultDetail:
    row = await session.get(FaultRow, fault_id)
    if row is None:
        raise NotFound("fault", fault_id)
    events = (
        await session.exec(
            select(FaultEvent).where(FaultEvent.fault_id == fault_id).order_by(col(FaultEvent.id))
        )
    ).all()
    detail = FaultDetail.model_validate(row)
    detail.history = [FaultEventPublic.model_validate(e) for e in events]
    order = await work_orders.latest_order_of_fault(session=session, fault_id=fault_id)
    if order is not None:
        detail.work_order_id, detail.work_order_state = order.id, order.state
    return detail


async def _subject_info(session: AsyncSession, row: FaultRow) -> SubjectInfo:
    from controller.store.tables import GatewayRow

    if row.subject_kind == SubjectKind.LUMINAIRE.value:
        lum = await session.get(Luminaire, row.subject_id)
        gw = await session.get(GatewayRow, row.gateway_id) if row.gateway_id else None
        if lum is not None:
            return SubjectInfo(
                name=lum.name, pole=lum.name, street=lum.street, ward=lum.ward,
                latitude=lum.latitude, longitude=lum.longitude, gateway_id=row.gateway_id,
                gateway_name=gw.name if gw else None,
            )  # fmt: skip
    else:
        gw = await session.get(GatewayRow, row.subject_id)
        if gw is not None:
            return SubjectInfo(
                name=gw.name, ward=gw.ward, latitude=gw.latitude, longitude=gw.longitude
            )
    return SubjectInfo(name=f"{row.subject_kind} {row.subject_id}", ward=row.ward)


async def act_by_hand(
    *,
    session: AsyncSession,
    fault_id: int,
    action: Literal["ack", "resolve"],
    note: str | None,
    actor: Principal,
    now: datetime,
    ctx: AlertContext,
    queued_at: datetime | None = None,
) -> tuple[FaultDetail, Transition]:
    """Acknowledge or resolve a fault by hand (audited, alerted); returns the transition.

    ``now``: the instant of the action (the controller's clock); ``queued_at``: the outbox's
    wall-clock instant (now by default).
    """
    row = await session.get(FaultRow, fault_id)
    if row is None:
        raise NotFound("fault", fault_id)
    if row.state == FaultState.RESOLVED:
        raise Conflict(f"fault {fault_id} is already resolved")
    if action == "ack" and row.state == FaultState.ACKNOWLEDGED:
        raise Conflict(f"fault {fault_id} is already acknowledged")
    before = FaultPublic.model_validate(row)
    if action == "ack":
        row.state = FaultState.ACKNOWLEDGED
        row.acknowledged_at, row.acknowledged_by, row.acknowledged_note = now, actor.name, note
        kind = TransitionKind.ACKNOWLEDGED
    else:
        row.state = FaultState.RESOLVED
        row.resolved_at, row.resolved_by, row.resolved_note = now, actor.name, note
        kind = TransitionKind.RESOLVED
    subject = Subject(SubjectKind(row.subject_kind), row.subject_id)
    transition = Transition(
        kind=kind, subject=subject, fault_type=FaultType(row.fault_type),
        severity=Severity(row.severity), at=now, since=row.since, last_seen=row.last_seen,
        count=row.count, evidence=_evidence(row.evidence),
        gateway_id=row.gateway_id if subject.kind is SubjectKind.LUMINAIRE else None,
        actor=actor.name,
    )  # fmt: skip
    session.add(row)
    event = FaultEvent(fault_id=fault_id, at=now, kind=kind.value, actor=actor.name, note=note,
                       count=row.count)  # fmt: skip
    session.add(event)
    await session.flush()
    info = await _subject_info(session, row)
    outbox = _outbox_rows(
        ctx, event, _payload(ctx, transition, row, info), row, queued_at or datetime.now(UTC)
    )
    session.add_all(outbox)
    audit.record(
        session=session, actor=actor, action=action, entity="fault", entity_id=fault_id,
        before=before, after=FaultPublic.model_validate(row),
    )  # fmt: skip
    await session.commit()
    return await get_fault(session=session, fault_id=fault_id), transition


# --- statistics -----------------------------------------------------------------------------


class WardStats(BaseModel):
    ward: str
    luminaires: int
    faulty: int
    faulty_ratio: float
    critical: int
    critical_ratio: float
    opened: int
    mean_time_to_acknowledge_s: float | None
    mean_time_to_repair_s: float | None
    work_orders: int = 0
    """Work orders created in the period (not cancelled) for this ward."""
    work_order_time_to_fix_s: float | None = None
    """Mean time from a work order's creation to ``fixed`` (the crew's time to repair)."""
    work_order_time_to_verify_s: float | None = None
    """Mean time from a work order's creation to ``verified`` (repair confirmed)."""


class FaultStats(BaseModel):
    period_from: datetime
    period_to: datetime
    wards: list[WardStats]


async def fault_stats(*, session: AsyncSession, start: datetime, end: datetime) -> FaultStats:
    """Per ward: luminaires, luminaires with an active fault (and critical ones) now, and for
    faults opened in [start, end): how many, mean time to acknowledge and to repair.

    Three aggregate queries, whatever the number of faults: a year of them at 10,000
    luminaires (some 30,000) takes tens of milliseconds, where loading every fault took
    several hundred (docs/performance.md, "Reports").
    """
    conn = await session.connection()
    dialect = conn.dialect.name
    luminaires = dict(
        (await session.exec(select(Luminaire.ward, func.count()).group_by(Luminaire.ward))).all()
    )
    f = FaultRow
    critical_lum = case((col(f.severity) == Severity.CRITICAL.value, col(f.luminaire_id)))
    now_faulty = {
        ward: (int(faulty), int(critical))
        for ward, faulty, critical in await conn.execute(
            core_select(
                col(f.ward),
                func.count(func.distinct(f.luminaire_id)),
                func.count(func.distinct(critical_lum)),
            )
            # count(DISTINCT) skips gateway faults (no luminaire). No "luminaire_id IS NOT
            # NULL" here: it would lead SQLite to that column's index, a scan of every fault,
            # instead of the partial unique index, which holds only the unresolved ones.
            .where(col(f.state) != FaultState.RESOLVED)
            .group_by(f.ward)
        )
    }
    d = _durations(dialect, col(f.since) >= start, col(f.since) < end).c
    opened = {
        ward: (int(n), _mean_s(ack_us, acked), _mean_s(repair_us, repaired))
        for ward, n, ack_us, acked, repair_us, repaired in await conn.execute(
            core_select(
                d.ward,
                func.count(),
                func.sum(d.to_ack_us),
                func.count(d.acknowledged_at),
                func.sum(d.to_repair_us),
                func.count(d.resolved_at),
            ).group_by(d.ward)
        )
    }
    repairs = await work_orders.repair_times(session=session, start=start, end=end)
    wards = sorted(set(luminaires) | {w for w in opened if w} | {w for w in repairs if w})
    out = []
    for ward in wards:
        total = int(luminaires.get(ward, 0))
        faulty, critical = now_faulty.get(ward, (0, 0))
        n, mtta, mttr = opened.get(ward, (0, None, None))
        orders = repairs.get(ward, RepairTimes())
        out.append(
            WardStats(
                ward=ward,
                luminaires=total,
                faulty=faulty,
                faulty_ratio=round(faulty / total, 4) if total else 0.0,
                critical=critical,
                critical_ratio=round(critical / total, 4) if total else 0.0,
                opened=n,
                mean_time_to_acknowledge_s=mtta,
                mean_time_to_repair_s=mttr,
                work_orders=orders.created,
                work_order_time_to_fix_s=orders.mean_time_to_fix_s,
                work_order_time_to_verify_s=orders.mean_time_to_verify_s,
            )
        )
    return FaultStats(period_from=start, period_to=end, wards=out)


def _durations(dialect: str, *period: Any) -> Any:
    """Faults opened in ``period``: ward, acknowledged_at, resolved_at, and the times to
    acknowledge and to repair in microseconds, exactly (NULL when not acknowledged or not
    repaired), as a subquery."""
    f = FaultRow
    if dialect == "postgresql":
        # The epoch of an interval is numeric (PostgreSQL 14+): exact to the microsecond,
        # and one extract per duration costs a quarter of one per instant.
        def between(later: Any) -> Any:
            return func.extract("epoch", later - col(f.since)) * 1_000_000

        return (
            core_select(
                col(f.ward), col(f.acknowledged_at), col(f.resolved_at),
                between(col(f.acknowledged_at)).label("to_ack_us"),
                between(col(f.resolved_at)).label("to_repair_us"),
            )
            .where(*period)
            .subquery("durations")
        )  # fmt: skip

    def micros(value: Any) -> Any:
        # SQLite holds 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, as SQLAlchemy writes it): the whole
        # seconds, then the six digits after the point. The date functions get the whole
        # seconds only: given the fraction, they round .9995 up to the next second.
        whole = func.substr(value, 1, 19)
        seconds: Any
        if sqlite3.sqlite_version_info >= (3, 38):
            seconds = func.unixepoch(whole)  # the cheaper of the two
        else:
            seconds = cast(func.strftime("%s", whole), Integer)
        return seconds * 1_000_000 + func.substr(value, 21, 6)

    # Each instant converted once, in a subquery SQLite keeps apart (LIMIT -1: no limit, but
    # not flattened into the aggregate, which would convert ``since`` once per duration).
    instants = (
        core_select(
            col(f.ward), col(f.acknowledged_at), col(f.resolved_at),
            micros(col(f.since)).label("since_us"),
            micros(col(f.acknowledged_at)).label("acknowledged_us"),
            micros(col(f.resolved_at)).label("resolved_us"),
        )
        .where(*period)
        .limit(-1)
        .subquery("instants")
    )  # fmt: skip
    i = instants.c
    return core_select(
        i.ward, i.acknowledged_at, i.resolved_at,
        (i.acknowledged_us - i.since_us).label("to_ack_us"),
        (i.resolved_us - i.since_us).label("to_repair_us"),
    ).subquery("durations")  # fmt: skip


def _mean_s(total_us: Any, count: int) -> float | None:
    """Mean in seconds, rounded to 0.1 s; ``None`` without values."""
    return round(float(total_us) / count / 1_000_000, 1) if count else None


@dataclass(frozen=True, slots=True)
class OpenFaultCount:
    """How many faults not yet resolved have this type, severity and state."""

    fault_type: str
    severity: str
    state: str
    count: int


async def open_fault_counts(*, session: AsyncSession) -> list[OpenFaultCount]:
    """Faults not resolved, counted by type, severity and state (one aggregate query): what
    the dashboard's overview and the Prometheus gauge show."""
    rows = (
        await session.exec(
            select(FaultRow.fault_type, FaultRow.severity, FaultRow.state, func.count())
            .where(FaultRow.state != FaultState.RESOLVED)
            .group_by(FaultRow.fault_type, FaultRow.severity, FaultRow.state)
        )
    ).all()
    return [OpenFaultCount(t, sev, st, int(n)) for t, sev, st, n in rows]
