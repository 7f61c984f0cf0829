"""The retry budget of :func:`plan` is per target value: a new target is always sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.core.values import Address, CommandResult, CommandSource, Level, Reading
from controller.loop.reconcile import (
    MAX_ATTEMPTS,
    Target,
    Tracked,
    plan,
    record_readings,
    record_sent,
)

NOW = datetime(2026, 6, 21, 22, 0, tzinfo=UTC)
LAMP = Address(0)


def dark(at: datetime) -> Reading:
    """A luminaire whose lamp failed: it answers, but reports no light."""
    return Reading(
        address=LAMP, at=at, lamp_on=False, level_pct=0, power_w=0, voltage_v=220.0,
        current_ma=0, power_factor=0.0, energy_wh=0, operating_hours=0, switch_on_count=0,
        temperature_c=30.0,
    )  # fmt: skip


def drive(target: Target, tracked: dict[Address, Tracked], now: datetime, turns: int) -> int:
    """``turns`` poll cycles against a dark lamp; returns how many commands went out."""
    sent = 0
    for _ in range(turns):
        for batch in plan({LAMP: target}, tracked, now):
            sent += 1
            record_sent(tracked, batch, CommandResult("c", frozenset(batch.levels)), now)
        now += timedelta(seconds=30)
        record_readings(tracked, [dark(now)])
    return sent


def test_a_new_target_is_sent_after_the_budget_of_the_old_one_is_spent() -> None:
    tracked: dict[Address, Tracked] = {}
    override = Target(Level(37), CommandSource.OVERRIDE, "override:12")
    assert drive(override, tracked, NOW, turns=10) == MAX_ATTEMPTS  # the failed lamp: no spam
    schedule = Target(Level(0), CommandSource.PROGRAM, "program:standard#4")
    later = NOW + timedelta(minutes=10)
    assert plan({LAMP: schedule}, tracked, later) != []  # the override ended: level 0 goes out
    sent = drive(schedule, tracked, later, turns=1)
    assert sent == 1
    assert tracked[LAMP].acked == Level(0)


def test_each_target_value_has_its_own_budget() -> None:
    tracked: dict[Address, Tracked] = {}
    sends = [
        drive(
            Target(Level(level), CommandSource.PROGRAM), tracked, NOW + timedelta(hours=i), turns=10
        )
        for i, level in enumerate((100, 60, 100))
    ]
    assert sends == [MAX_ATTEMPTS, MAX_ATTEMPTS, MAX_ATTEMPTS]
