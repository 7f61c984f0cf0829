"""plan(): a diff between targets and what the gateway acknowledged and reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from controller.reconcile import (
    MAX_ATTEMPTS,
    SETTLE_S,
    Batch,
    Target,
    Tracked,
    plan,
    record_readings,
    record_sent,
)
from controller.values import Address, CommandResult, Level, Reading, Source

NOW = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)


def reading(address: int, level: int, at: datetime = NOW, lamp_on: bool | None = None) -> Reading:
    return Reading(
        address=Address(address), at=at, lamp_on=level > 0 if lamp_on is None else lamp_on,
        level_pct=level, power_w=level, voltage_v=220.0, current_ma=0, power_factor=0.9,
        energy_wh=0, operating_hours=0, switch_on_count=0, temperature_c=30.0,
    )  # fmt: skip


def t(level: int, source: Source = Source.PROGRAM, fade: float = 0.0) -> Target:
    return Target(Level(level), source, fade_s=fade)


def test_nothing_known_sends_everything_in_one_batch() -> None:
    targets = {Address(a): t(70) for a in range(64)}
    batches = plan(targets, {}, NOW)
    assert len(batches) == 1
    assert dict(batches[0].levels) == {Address(a): 70 for a in range(64)}


def test_batches_split_by_source_and_fade() -> None:
    targets = {Address(0): t(100), Address(1): t(30, Source.OVERRIDE), Address(2): t(100)}
    batches = plan(targets, {}, NOW)
    assert [(b.source, sorted(b.levels)) for b in batches] == [
        (Source.OVERRIDE, [Address(1)]),
        (Source.PROGRAM, [Address(0), Address(2)]),
    ]


def test_acknowledged_and_reported_means_no_command() -> None:
    tracked = {Address(0): Tracked(acked=Level(50), actual=Level(50), actual_at=NOW)}
    assert plan({Address(0): t(50)}, tracked, NOW) == []
    assert plan({Address(0): t(50)}, tracked, NOW, refresh=True) == [
        Batch(Source.PROGRAM, 0.0, {Address(0): Level(50)})
    ]


def test_verify_by_read_resends_only_after_the_fade_settles() -> None:
    tracked: dict[Address, Tracked] = {}
    [batch] = plan({Address(0): t(100, fade=60)}, tracked, NOW)
    record_sent(tracked, batch, CommandResult("c1", frozenset({Address(0)})), NOW)
    # mid-fade the device reports 40 %: not a miss
    record_readings(tracked, [reading(0, 40, NOW + timedelta(seconds=20))])
    assert plan({Address(0): t(100, fade=60)}, tracked, NOW + timedelta(seconds=20)) == []
    # long after the fade it still reports 40 %: the command did not take, send again
    later = NOW + timedelta(seconds=60 + SETTLE_S + 1)
    record_readings(tracked, [reading(0, 40, later)])
    assert plan({Address(0): t(100, fade=60)}, tracked, later) != []


def test_a_broken_lamp_is_not_spammed() -> None:
    tracked: dict[Address, Tracked] = {}
    target = {Address(0): t(100)}
    now = NOW
    sends = 0
    for _ in range(10):
        batches = plan(target, tracked, now)
        for b in batches:
            sends += 1
            record_sent(tracked, b, CommandResult("c", frozenset(b.levels)), now)
        now += timedelta(seconds=30)
        record_readings(tracked, [reading(0, 100, now, lamp_on=False)])  # lamp failed: dark
    assert sends == MAX_ATTEMPTS
    # a full refresh tries again
    assert plan(target, tracked, now, refresh=True) != []


def test_rejected_addresses_are_remembered_and_retried() -> None:
    tracked: dict[Address, Tracked] = {}
    [batch] = plan({Address(0): t(80), Address(1): t(80)}, tracked, NOW)
    changed = record_sent(
        tracked, batch,
        CommandResult("c", frozenset({Address(0)}), {Address(1): "not answering"}), NOW,
    )  # fmt: skip
    assert changed == [Address(0)]
    assert tracked[Address(1)].rejected == "not answering"
    [again] = plan({Address(0): t(80), Address(1): t(80)}, tracked, NOW)
    assert list(again.levels) == [Address(1)]


levels = st.integers(min_value=0, max_value=100).map(Level)
addresses = st.integers(min_value=0, max_value=255).map(Address)


@given(st.dictionaries(addresses, levels, max_size=64))
def test_plan_of_a_converged_state_is_empty(state: dict[Address, Level]) -> None:
    targets = {a: t(lv) for a, lv in state.items()}
    tracked = {a: Tracked(acked=lv, actual=lv, actual_at=NOW) for a, lv in state.items()}
    assert plan(targets, tracked, NOW) == []


@given(st.dictionaries(addresses, levels, max_size=64), st.dictionaries(addresses, levels))
def test_after_sending_and_reading_the_plan_is_empty(
    want: dict[Address, Level], had: dict[Address, Level]
) -> None:
    tracked = {a: Tracked(acked=lv, actual=lv, actual_at=NOW) for a, lv in had.items()}
    targets = {a: t(lv) for a, lv in want.items()}
    for batch in plan(targets, tracked, NOW):
        assert set(batch.levels) <= set(targets)
        assert all(targets[a].level == lv for a, lv in batch.levels.items())
        record_sent(tracked, batch, CommandResult("c", frozenset(batch.levels)), NOW)
    later = NOW + timedelta(seconds=SETTLE_S + 1)
    record_readings(tracked, [reading(a, lv, later) for a, lv in want.items()])
    assert plan(targets, tracked, later) == []
