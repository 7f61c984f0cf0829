"""Faults in the database: transitions in, open faults out, hand actions, queries, stats.

The pure tracker (:mod:`controller.fault_tracker`) decides; this module records. Every
transition becomes a :class:`FaultEvent`; opened / acknowledged / resolved ones also
become alerts in the :class:`AlertOutbox` (one row per channel and receiver), in the same
transaction, so an alert is never lost between the decision and its delivery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller import audit
from controller.alert_messages import (
    AlertState,
    Lang,
    SubjectInfo,
    alert_topic,
    build_alert,
    message,
)
from controller.auth import Principal
from controller.errors import Conflict, NotFound
from controller.fault_rules import Evidence, FaultType, Quantity, Severity, SubjectKind
from controller.fault_tracker import OpenFault, Subject, Transition, TransitionKind
from controller.schemas import Page
from controller.settings import AlertSettings, EmailRule, WebhookSettings
from controller.tables import AlertOutbox, FaultEvent, FaultRow, Luminaire

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
    from controller.values import DeviceFlag

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
    """The end of the digest window ``now`` falls in (windows aligned on the UTC epoch)."""
    step = interval_min * 60
    return datetime.fromtimestamp((int(now.timestamp()) // step + 1) * step, UTC)


@dataclass(frozen=True, slots=True)
class AlertContext:
    """What outbox rows need: routing settings, the MQTT prefix, the site's zone."""

    alerts: AlertSettings
    mqtt_prefix: str
    zone: ZoneInfo


def _outbox_rows(
    ctx: AlertContext, event: FaultEvent, payload: dict[str, Any], row: FaultRow
) -> list[AlertOutbox]:
    assert event.id is not None
    key = str(payload["idempotency_key"])
    rows: list[AlertOutbox] = []
    if ctx.alerts.mqtt:
        topic = alert_topic(ctx.mqtt_prefix, row.ward, Severity(row.severity))
        rows.append(
            AlertOutbox(
                fault_event_id=event.id,
                channel="mqtt",
                target=topic,
                payload=payload,
                idempotency_key=key,
            )
        )
    for hook in ctx.alerts.webhooks:
        if routes(hook, row.fault_type, row.severity, row.ward):
            rows.append(
                AlertOutbox(
                    fault_event_id=event.id,
                    channel="webhook",
                    target=hook.name,
                    payload=payload,
                    idempotency_key=key,
                )
            )
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
) -> int:
    """Store transitions decided by the tracker, with their alerts; returns alerts queued."""
    queued = 0
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
            outbox = _outbox_rows(ctx, event, _payload(ctx, t, row, info), row)
            session.add_all(outbox)
            queued += len(outbox)
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
    return detail


async def _subject_info(session: AsyncSession, row: FaultRow) -> SubjectInfo:
    from controller.tables import Gateway

    if row.subject_kind == SubjectKind.LUMINAIRE.value:
        lum = await session.get(Luminaire, row.subject_id)
        gw = await session.get(Gateway, row.gateway_id) if row.gateway_id else None
        if lum is not None:
            return SubjectInfo(
                name=lum.name, pole=lum.name, street=lum.street, ward=lum.ward,
                latitude=lum.latitude, longitude=lum.longitude, gateway_id=row.gateway_id,
                gateway_name=gw.name if gw else None,
            )  # fmt: skip
    else:
        gw = await session.get(Gateway, row.subject_id)
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
) -> tuple[FaultDetail, Transition]:
    """Acknowledge or resolve a fault by hand (audited, alerted); returns the transition."""
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
    session.add_all(_outbox_rows(ctx, event, _payload(ctx, transition, row, info), row))
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


class FaultStats(BaseModel):
    period_from: datetime
    period_to: datetime
    wards: list[WardStats]


async def fault_stats(*, session: AsyncSession, start: datetime, end: datetime) -> FaultStats:
    """Per ward: luminaires, luminaires with an active fault (and critical ones) now, and for
    faults opened in [start, end): how many, mean time to acknowledge and to repair."""
    luminaires = dict(
        (await session.exec(select(Luminaire.ward, func.count()).group_by(Luminaire.ward))).all()
    )
    active = col(FaultRow.state) != FaultState.RESOLVED
    on_lum = col(FaultRow.luminaire_id).is_not(None)
    faulty = dict(
        (
            await session.exec(
                select(FaultRow.ward, func.count(func.distinct(FaultRow.luminaire_id)))
                .where(active, on_lum)
                .group_by(FaultRow.ward)
            )
        ).all()
    )
    critical = dict(
        (
            await session.exec(
                select(FaultRow.ward, func.count(func.distinct(FaultRow.luminaire_id)))
                .where(active, on_lum, FaultRow.severity == Severity.CRITICAL.value)
                .group_by(FaultRow.ward)
            )
        ).all()
    )
    period = (col(FaultRow.since) >= start, col(FaultRow.since) < end)
    rows = (
        await session.exec(
            select(
                FaultRow.ward, FaultRow.since, FaultRow.acknowledged_at, FaultRow.resolved_at
            ).where(*period)
        )
    ).all()
    per: dict[str | None, list[tuple[datetime, datetime | None, datetime | None]]] = {}
    for ward, since, acked, resolved in rows:
        per.setdefault(ward, []).append((since, acked, resolved))

    def mean(values: Iterable[float]) -> float | None:
        vals = list(values)
        return round(sum(vals) / len(vals), 1) if vals else None

    wards = sorted(set(luminaires) | {w for w in per if w})
    out = []
    for ward in wards:
        total = int(luminaires.get(ward, 0))
        f = int(faulty.get(ward, 0))
        c = int(critical.get(ward, 0))
        items = per.get(ward, [])
        out.append(
            WardStats(
                ward=ward,
                luminaires=total,
                faulty=f,
                faulty_ratio=round(f / total, 4) if total else 0.0,
                critical=c,
                critical_ratio=round(c / total, 4) if total else 0.0,
                opened=len(items),
                mean_time_to_acknowledge_s=mean(
                    (a - s).total_seconds() for s, a, _r in items if a is not None
                ),
                mean_time_to_repair_s=mean(
                    (r - s).total_seconds() for s, _a, r in items if r is not None
                ),
            )
        )
    return FaultStats(period_from=start, period_to=end, wards=out)
