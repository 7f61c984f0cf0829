"""SQLModel table models: storage only.

Table models do not validate on ``__init__`` (SQLModel), so every write goes
through the data models in :mod:`controller.inventory.schemas` first. All datetimes are
timezone-aware UTC (SQLModel maps ``datetime`` to a tz-aware column).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class GatewayRow(SQLModel, table=True):
    """A device the controller talks to; it fronts many luminaires."""

    __tablename__ = "gateway"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    protocol: str = Field(max_length=10)
    host: str | None = Field(default=None, max_length=255)
    port: int | None = None
    unit_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    mqtt_id: str | None = Field(default=None, max_length=128, unique=True)
    ward: str | None = Field(default=None, max_length=100, index=True)
    latitude: float | None = None
    longitude: float | None = None
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class LampTypeRow(SQLModel, table=True):
    """A luminaire model: what power to expect at each level."""

    __tablename__ = "lamp_type"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    rated_power_w: float
    power_tolerance_pct: float
    min_dim_level_pct: int
    nominal_voltage_v: float
    description: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Luminaire(SQLModel, table=True):
    """One lantern on one pole, reachable at one address of one gateway."""

    __table_args__ = (
        UniqueConstraint("gateway_id", "address", name="uq_luminaire_gateway_address"),
        Index("ix_luminaire_ward_street", "ward", "street"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    gateway_id: int = Field(foreign_key="gateway.id", index=True, ondelete="RESTRICT")
    address: int
    lamp_type_id: int = Field(foreign_key="lamp_type.id", index=True, ondelete="RESTRICT")
    latitude: float
    longitude: float
    street: str = Field(max_length=200)
    ward: str = Field(max_length=100)
    installed_on: date | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class LuminaireGroup(SQLModel, table=True):
    """A set of luminaires: explicit members, or every luminaire of a ward/street/gateway.

    Rule-based groups are resolved at query time, so they stay current as the
    inventory changes.
    """

    __tablename__ = "luminaire_group"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    description: str | None = Field(default=None, max_length=500)
    kind: str = Field(max_length=20)
    selector: str | None = Field(default=None, max_length=200)
    priority: int = 0
    calendar_id: int | None = Field(
        default=None, foreign_key="calendar.id", index=True, ondelete="RESTRICT"
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class GroupMember(SQLModel, table=True):
    """Explicit membership of a luminaire in an ``explicit`` group."""

    __tablename__ = "group_member"

    group_id: int = Field(foreign_key="luminaire_group.id", primary_key=True, ondelete="CASCADE")
    luminaire_id: int = Field(
        foreign_key="luminaire.id", primary_key=True, index=True, ondelete="CASCADE"
    )


class ApiKey(SQLModel, table=True):
    """An API key; only its SHA-256 is stored. ``prefix`` identifies it in listings."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    role: str = Field(max_length=20)
    prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    """Who changed what, when, with the entity before and after."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=100)
    role: str = Field(max_length=20)
    action: str = Field(max_length=40)
    entity: str = Field(max_length=40, index=True)
    entity_id: str | None = Field(default=None, max_length=100)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


class ProgramRow(SQLModel, table=True):
    """A night program: steps as JSON (see :class:`schedules.program.Step`)."""

    __tablename__ = "program"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    description: str | None = Field(default=None, max_length=500)
    steps: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    default_level: int = 0
    builtin: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class CalendarRow(SQLModel, table=True):
    """Ordered rules (JSON, first match wins) and a default program."""

    __tablename__ = "calendar"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    description: str | None = Field(default=None, max_length=500)
    rules: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    default_program_id: int | None = Field(
        default=None, foreign_key="program.id", ondelete="RESTRICT"
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class OverrideRow(SQLModel, table=True):
    """A manual level for some luminaires over a time window; reverts by itself at ``ends_at``.

    Ending early sets ``cancelled_at``; the effective end is the earlier of the two.
    """

    __tablename__ = "override"

    id: int | None = Field(default=None, primary_key=True)
    level: int
    starts_at: datetime = Field(index=True)
    ends_at: datetime = Field(index=True)
    reason: str = Field(max_length=500)
    all_luminaires: bool = False
    luminaire_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    group_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    cancelled_at: datetime | None = None
    cancelled_by: str | None = Field(default=None, max_length=100)


class ReadingRow(SQLModel, table=True):
    """Raw telemetry of one luminaire at one instant (kept for a configurable retention)."""

    __tablename__ = "reading"
    __table_args__ = (Index("ix_reading_luminaire_at", "luminaire_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    luminaire_id: int = Field(foreign_key="luminaire.id", ondelete="CASCADE")
    at: datetime = Field(index=True)
    lamp_on: bool
    level_pct: int
    power_w: float
    voltage_v: float
    current_ma: int
    power_factor: float
    energy_wh: int | None = None
    operating_hours: int | None = None
    switch_on_count: int | None = None
    temperature_c: float | None = None
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class StateChange(SQLModel, table=True):
    """History of a luminaire's target, acknowledged command and actual level, with the source."""

    __tablename__ = "state_change"
    __table_args__ = (Index("ix_state_change_luminaire_at", "luminaire_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    luminaire_id: int = Field(foreign_key="luminaire.id", ondelete="CASCADE")
    at: datetime = Field(index=True)
    kind: str = Field(max_length=10)  # target | command | actual
    level: int
    source: str | None = Field(default=None, max_length=20)
    detail: str | None = Field(default=None, max_length=200)


class EnergyHourly(SQLModel, table=True):
    """Energy per luminaire per hour (UTC hour start); kept for good.

    ``covered_s`` is the part of the hour telemetry covered (consecutive readings at most
    ``energy.coverage_max_gap_s`` apart, :mod:`controller.energy.coverage`),
    ``covered_dark_s`` the dark part of that: the baseline counts only it.
    """

    __tablename__ = "energy_hourly"
    __table_args__ = (Index("ix_energy_hourly_hour", "hour"),)

    luminaire_id: int = Field(foreign_key="luminaire.id", primary_key=True, ondelete="CASCADE")
    hour: datetime = Field(primary_key=True)
    energy_wh: float = 0.0
    burning_s: float = 0.0
    samples: int = 0
    covered_s: float = 0.0
    covered_dark_s: float = 0.0


class EnergyDaily(SQLModel, table=True):
    """Energy per luminaire per local day (site zone); kept for good.

    ``ward`` and ``gateway_id`` are copied from the inventory when the energy is
    recorded, so per-ward and per-gateway sums stay true to where the energy was
    used even if a luminaire is later moved; group sums join the current membership.
    ``covered_s`` and ``covered_dark_s`` as in :class:`EnergyHourly`, for the local day.
    """

    __tablename__ = "energy_daily"
    __table_args__ = (Index("ix_energy_daily_day", "day"),)

    luminaire_id: int = Field(foreign_key="luminaire.id", primary_key=True, ondelete="CASCADE")
    day: date = Field(primary_key=True)
    ward: str = Field(max_length=100)
    gateway_id: int
    energy_wh: float = 0.0
    burning_s: float = 0.0
    samples: int = 0
    covered_s: float = 0.0
    covered_dark_s: float = 0.0


class EnergyMonthly(SQLModel, table=True):
    """Energy per luminaire per local month, summed from ``energy_daily`` (kept for good).

    Built by :mod:`controller.energy.rollup`, one row per month (its first day), ward and
    gateway as booked in ``energy_daily`` (a luminaire moved during the month has a row for
    each), and luminaire. ``days`` is how many days it reported; the other measures are the
    sums of its days' (the baseline is the current rated power x ``covered_dark_s``, as the
    daily path computes it). Which days a month's rows cover, and whether they are still
    current, is in :class:`EnergyMonthlyState`.

    The primary key leads with the month, then the ward: a report reads a month's rows in
    ward order. On SQLite the table is clustered on it (``WITHOUT ROWID``).
    """

    __tablename__ = "energy_monthly"
    __table_args__ = (
        Index("ix_energy_monthly_luminaire_id", "luminaire_id"),
        {"sqlite_with_rowid": False},
    )

    month: date = Field(primary_key=True)
    ward: str = Field(max_length=100, primary_key=True)
    gateway_id: int = Field(primary_key=True)
    luminaire_id: int = Field(foreign_key="luminaire.id", primary_key=True, ondelete="CASCADE")
    energy_wh: float = 0.0
    burning_s: float = 0.0
    samples: int = 0
    days: int = 0
    covered_s: float = 0.0
    covered_dark_s: float = 0.0


class EnergyMonthlyState(SQLModel, table=True):
    """What ``energy_monthly`` holds for one month: days ``month``..``through_day``.

    ``site`` is the site ``dark_s`` (the dark seconds of those days, the denominator of the
    reports' coverage) was computed for (latitude, longitude, elevation, zone). ``stale``
    is set by the telemetry writer when it books energy on a day already summed; reports
    then read that month from ``energy_daily`` until the next rollup.
    ``rows`` above ``luminaires`` means a luminaire was moved during the month.
    """

    __tablename__ = "energy_monthly_state"

    month: date = Field(primary_key=True)
    through_day: date
    site: str = Field(max_length=200)
    stale: bool = False
    rows: int = 0
    luminaires: int = 0
    dark_s: float = 0.0
    built_at: datetime = Field(default_factory=utcnow)


class FaultRow(SQLModel, table=True):
    """A fault on a luminaire or a gateway: one open record per (subject, type).

    ``state`` is open, acknowledged or resolved; a partial unique index keeps one
    unresolved record per (subject, type), so repeated detections update it.
    """

    __tablename__ = "fault"
    __table_args__ = (
        Index(
            "uq_fault_open_subject_type",
            "subject_kind",
            "subject_id",
            "fault_type",
            unique=True,
            sqlite_where=text("state != 'resolved'"),
            postgresql_where=text("state != 'resolved'"),
        ),
        Index("ix_fault_state_ward", "state", "ward"),
        # faults opened in a period, with what the statistics read: no table lookups
        Index("ix_fault_since_stats", "since", "ward", "acknowledged_at", "resolved_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subject_kind: str = Field(max_length=10)
    subject_id: int
    luminaire_id: int | None = Field(
        default=None, foreign_key="luminaire.id", index=True, ondelete="SET NULL"
    )
    gateway_id: int | None = Field(default=None, index=True)
    fault_type: str = Field(max_length=40, index=True)
    severity: str = Field(max_length=10)
    state: str = Field(max_length=15)
    ward: str | None = Field(default=None, max_length=100)
    street: str | None = Field(default=None, max_length=200)
    since: datetime
    last_seen: datetime
    count: int = 1
    evidence: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = Field(default=None, max_length=100)
    acknowledged_note: str | None = Field(default=None, max_length=1000)
    resolved_at: datetime | None = Field(default=None, index=True)
    resolved_by: str | None = Field(default=None, max_length=100)
    resolved_note: str | None = Field(default=None, max_length=1000)


class FaultEvent(SQLModel, table=True):
    """The history of a fault: every transition, with who did it for hand actions."""

    __tablename__ = "fault_event"

    id: int | None = Field(default=None, primary_key=True)
    fault_id: int = Field(foreign_key="fault.id", index=True, ondelete="CASCADE")
    at: datetime
    kind: str = Field(max_length=15)
    actor: str | None = Field(default=None, max_length=100)
    note: str | None = Field(default=None, max_length=1000)
    count: int = 1
    evidence: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


class AlertOutbox(SQLModel, table=True):
    """An alert to deliver on one channel; persisted so nothing is lost across restarts."""

    __tablename__ = "alert_outbox"
    __table_args__ = (Index("ix_alert_outbox_due", "delivered_at", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    fault_event_id: int = Field(foreign_key="fault_event.id", index=True, ondelete="CASCADE")
    channel: str = Field(max_length=10)  # mqtt | webhook | email
    target: str = Field(max_length=200)  # topic, webhook name, or email rule name
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    idempotency_key: str = Field(max_length=100)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None
    gave_up_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)


class ControllerInstance(SQLModel, table=True):
    """A running controller process (cluster mode): its heartbeat."""

    __tablename__ = "controller_instance"

    id: str = Field(primary_key=True, max_length=100)
    started_at: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)


class Lease(SQLModel, table=True):
    """Who drives a gateway (``gateway:<id>``) or leads housekeeping (``leader``), until when.

    Times are the database server's (``now()``), so instances never compare clocks.
    """

    __tablename__ = "lease"

    name: str = Field(primary_key=True, max_length=100)
    owner: str = Field(max_length=100, index=True)
    expires_at: datetime
    acquired_at: datetime = Field(default_factory=utcnow)


class IngestBatch(SQLModel, table=True):
    """Telemetry batches that landed (written in the same transaction as their rows), so a
    batch retried after a lost COMMIT is not written twice. Pruned after a few days."""

    __tablename__ = "ingest_batch"

    id: str = Field(primary_key=True, max_length=32)
    at: datetime = Field(index=True)


class NgsiOutbox(SQLModel, table=True):
    """One row per exported NGSI-LD entity: its newest content and what each channel has.

    The publisher (:mod:`controller.export.publisher`) writes ``body``/``digest`` when the
    entity changes (a newer content replaces the older one: one row per entity, however many
    changes); a channel is pending while its ``*_digest`` differs from ``digest``. ``body``
    ``None`` means the entity is gone and its deletion is pending.
    """

    __tablename__ = "ngsi_outbox"

    entity_id: str = Field(primary_key=True, max_length=300)
    entity_type: str = Field(max_length=50)
    body: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    digest: str = Field(max_length=64)
    broker_digest: str | None = Field(default=None, max_length=64)
    mqtt_digest: str | None = Field(default=None, max_length=64)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=500)
    changed_at: datetime = Field(default_factory=utcnow)


class WorkOrder(SQLModel, table=True):
    """A crew's job: one or several faults on one street or gateway, from new to verified.

    ``state`` is new, assigned, on_site, fixed, verified or cancelled
    (:mod:`controller.faults.work_orders` holds the allowed moves); each move stamps its
    instant, so time to repair is ``fixed_at - created_at``.
    """

    __tablename__ = "work_order"
    __table_args__ = (Index("ix_work_order_state_ward", "state", "ward"),)

    id: int | None = Field(default=None, primary_key=True)
    state: str = Field(max_length=15)
    crew: str | None = Field(default=None, max_length=100, index=True)
    assignee: str | None = Field(default=None, max_length=100)  # an API key's name
    ward: str | None = Field(default=None, max_length=100)
    street: str | None = Field(default=None, max_length=200)
    gateway_id: int | None = None
    created_by: str = Field(max_length=100)
    created_at: datetime
    assigned_at: datetime | None = None
    on_site_at: datetime | None = None
    fixed_at: datetime | None = None
    verified_at: datetime | None = None
    verified_by: str | None = Field(default=None, max_length=100)
    verified_reason: str | None = Field(default=None, max_length=1000)
    cancelled_at: datetime | None = None
    cancelled_reason: str | None = Field(default=None, max_length=1000)
    minutes_spent: int = 0
    updated_at: datetime


class WorkOrderFault(SQLModel, table=True):
    """Which faults a work order covers (a fault is in at most one order not closed)."""

    __tablename__ = "work_order_fault"

    work_order_id: int = Field(foreign_key="work_order.id", primary_key=True, ondelete="CASCADE")
    fault_id: int = Field(foreign_key="fault.id", primary_key=True, index=True, ondelete="CASCADE")


class WorkOrderNote(SQLModel, table=True):
    """A note on a work order, append-only, with the minutes it reports."""

    __tablename__ = "work_order_note"

    id: int | None = Field(default=None, primary_key=True)
    work_order_id: int = Field(foreign_key="work_order.id", index=True, ondelete="CASCADE")
    at: datetime
    author: str = Field(max_length=100)
    text: str = Field(max_length=1000)
    minutes: int = 0
