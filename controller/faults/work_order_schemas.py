"""Work orders at the edges: states, the moves between them, and the API's models."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_ID = 2**31 - 1
FaultId = Annotated[int, Field(ge=1, le=MAX_ID)]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Text = Annotated[str, Field(min_length=1, max_length=1000)]


class WorkState(StrEnum):
    """Where a work order is: new → assigned → on_site → fixed → verified, or cancelled."""

    NEW = "new"
    ASSIGNED = "assigned"
    ON_SITE = "on_site"
    FIXED = "fixed"
    VERIFIED = "verified"
    CANCELLED = "cancelled"


MOVES: dict[WorkState, frozenset[WorkState]] = {
    WorkState.NEW: frozenset({WorkState.ASSIGNED, WorkState.CANCELLED}),
    WorkState.ASSIGNED: frozenset({WorkState.ON_SITE, WorkState.CANCELLED}),
    WorkState.ON_SITE: frozenset({WorkState.FIXED, WorkState.CANCELLED}),
    # back on site when the repair did not hold (the fault came back before verification)
    WorkState.FIXED: frozenset({WorkState.VERIFIED, WorkState.ON_SITE}),
    WorkState.VERIFIED: frozenset(),
    WorkState.CANCELLED: frozenset(),
}
"""The moves allowed from each state; anything else is refused (409) naming the state."""

OPEN_STATES = frozenset(s for s, moves in MOVES.items() if moves)
"""States a work order can still leave: a fault is in at most one order in these."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class WorkOrderCreate(_In):
    """Faults on one street or one gateway; with a crew, the order starts ``assigned``."""

    fault_ids: list[FaultId] = Field(min_length=1, max_length=200)
    crew: Name | None = None
    assignee: Name | None = Field(default=None, description="The crew member's API key name")
    note: Text | None = None


class WorkOrderAssign(_In):
    """A new crew or crew member (only the fields sent change; null clears ``assignee``)."""

    crew: Name | None = None
    assignee: Name | None = None


class WorkOrderMove(_In):
    """A move to another state. ``reason`` is required to verify by hand and to cancel;
    ``crew`` / ``assignee`` may come with a move to ``assigned``."""

    to: WorkState
    reason: Text | None = None
    crew: Name | None = None
    assignee: Name | None = None


class WorkOrderNoteCreate(_In):
    text: Text
    minutes: int = Field(default=0, ge=0, le=24 * 60, description="Time spent, in minutes")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class WorkNotePublic(_Out):
    at: datetime
    author: str
    text: str
    minutes: int


class WorkFault(_Out):
    """A fault as a work order shows it."""

    id: int
    type: str = Field(validation_alias="fault_type")
    severity: str
    state: str
    subject_kind: str
    subject_id: int
    luminaire_id: int | None
    ward: str | None
    street: str | None
    since: datetime
    resolved_at: datetime | None
    resolved_by: str | None


class WorkOrderPublic(_Out):
    id: int
    state: WorkState
    crew: str | None
    assignee: str | None
    ward: str | None
    street: str | None
    gateway_id: int | None
    created_by: str
    created_at: datetime
    assigned_at: datetime | None
    on_site_at: datetime | None
    fixed_at: datetime | None
    verified_at: datetime | None
    verified_by: str | None
    verified_reason: str | None
    cancelled_at: datetime | None
    cancelled_reason: str | None
    minutes_spent: int
    updated_at: datetime
    fault_ids: list[int] = Field(default_factory=list)


class WorkOrderDetail(WorkOrderPublic):
    faults: list[WorkFault] = Field(default_factory=list)
    notes: list[WorkNotePublic] = Field(default_factory=list)


class RepairTimes(BaseModel):
    """Work orders created in a period, in one ward: how many, and the mean times from
    creation to ``fixed`` and to ``verified`` (seconds; ``None`` without any)."""

    created: int = 0
    mean_time_to_fix_s: float | None = None
    mean_time_to_verify_s: float | None = None
