"""Small builders shared by the fault tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from controller.core.values import Address, DeviceFlag, Level, Reading
from controller.faults.rules import (
    Evaluation,
    Evidence,
    FaultType,
    LampHistory,
    LampType,
    Quantity,
    SubjectKind,
    applies_to,
    evaluate_luminaire,
)
from controller.faults.tracker import Observation, Subject

T0 = datetime(2026, 6, 21, 11, 0, tzinfo=UTC)
"""18:00 in Đông Hà."""
LAMP = LampType()


def secs(n: float) -> timedelta:
    return timedelta(seconds=n)


def reading(
    *,
    level: int = 100,
    power_w: float | None = None,
    lamp_on: bool | None = None,
    voltage_v: float = 220.0,
    pf: float = 0.95,
    temperature_c: float = 58.0,
    flags: Iterable[DeviceFlag] = (),
    at: datetime = T0,
    address: int = 0,
) -> Reading:
    """A healthy 100 W luminaire at ``level`` unless told otherwise."""
    if power_w is None:
        power_w = LAMP.expected_power_w(level) if level > 0 else 0.5
    return Reading(
        address=Address(address), at=at, lamp_on=power_w > 2 if lamp_on is None else lamp_on,
        level_pct=level, power_w=power_w, voltage_v=voltage_v, current_ma=0,
        power_factor=pf, energy_wh=0, operating_hours=0, switch_on_count=0,
        temperature_c=temperature_c, flags=frozenset(flags),
    )  # fmt: skip


def judge(
    r: Reading | None,
    *,
    target: int | None = 100,
    acked: int | None = None,
    settle_until: datetime | None = None,
    history: LampHistory | None = None,
    lamp: LampType = LAMP,
    at: datetime | None = None,
) -> Evaluation:
    """evaluate_luminaire with settled defaults: acked = target, no fade, no recent switch."""
    return evaluate_luminaire(
        r,
        at=at if at is not None else (r.at if r is not None else T0),
        target=None if target is None else Level(target),
        acked=Level(acked) if acked is not None else (None if target is None else Level(target)),
        settle_until=settle_until,
        lamp=lamp,
        history=history if history is not None else LampHistory(lit=r.lamp_on if r else None),
    )


def lum_obs(
    luminaire_id: int,
    at: datetime,
    present: Iterable[FaultType] = (),
    unknown: Iterable[FaultType] = (),
    gateway_id: int | None = 1,
) -> Observation:
    """A luminaire observation with the given present/unknown types (the rest absent)."""
    ev = Evaluation(
        SubjectKind.LUMINAIRE,
        {f: Evidence(Quantity.FLAG) for f in present},
        frozenset(unknown),
    )
    return Observation(Subject.luminaire(luminaire_id), at, ev, gateway_id)


def gw_obs(
    gateway_id: int,
    at: datetime,
    present: Iterable[FaultType] = (),
    unknown: Iterable[FaultType] = (),
) -> Observation:
    ev = Evaluation(
        SubjectKind.GATEWAY, {f: Evidence(Quantity.MAINS) for f in present}, frozenset(unknown)
    )
    return Observation(Subject.gateway(gateway_id), at, ev)


ALL_LUMINAIRE = applies_to(SubjectKind.LUMINAIRE)
