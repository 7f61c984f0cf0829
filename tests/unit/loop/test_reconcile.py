"""plan(): a diff between targets and what the gateway acknowledged and reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from controller.core.values import Address, CommandResult, CommandSource, Level, Reading
from controller.loop.reconcile import (
    MAX_ATTEMPTS,
    SETTLE_S,
    Batch,
    Target,
    Tracked,
    plan,
    quiet_until,
    record_readings,
    record_sent,
)

NOW = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)


def reading(address: int, level: int, at: datetime = NOW, lamp_on: bool | None = None) -> Reading:
    return Reading(
        address=Address(address), at=at, lamp_on=level > 0 if lamp_on is None else lamp_on,
        level_pct=level, power_w=level, voltage_v=220.0, current_ma=0, power_factor=0.9,
        energy_wh=0, operating_hours=0, switch_on_count=0, temperature_c=30.0,
    )  # fmt: skip


def t(level: int, source: CommandSource = CommandSource.PROGRAM, fade: float = 0.0) -> Target:
    return Target(Level(level), source, fade_s=fade)


def test_nothing_known_sends_everything_in_one_batch() -> None:
    targets = {Address(a): t(70) for a in range(64)}
    batches = plan(targets, {}, NOW)
    assert len(batches) == 1
    assert dict(batches[0].levels) == {Address(a): 70 for a in range(64)}


def test_batches_split_by_source_and_fade() -> None:
    targets = {Address(0): t(100), Address(1): t(30, CommandSource.OVERRIDE), Address(2): t(100)}
    batches = plan(targets, {}, NOW)
    assert [(b.source, sorted(b.levels)) for b in batches] == [
        (CommandSource.OVERRIDE, [Address(1)]),
        (CommandSource.PROGRAM, [Address(0), Address(2)]),
    ]


def test_acknowledged_and_reported_means_no_command() -> None:
    tracked = {Address(0): Tracked(acked=Level(50), actual=Level(50), actual_at=NOW)}
    assert plan({Address(0): t(50)}, tracked, NOW) == []
    assert plan({Address(0): t(50)}, tracked, NOW, refresh=True) == [
        Batch(CommandSource.PROGRAM, 0.0, {Address(0): Level(50)})
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


def test_quiet_until_names_the_settle_instant_of_a_wrong_report_after_the_fade() -> None:
    tracked: dict[Address, Tracked] = {}
    target = {Address(0): t(100, fade=60), Address(1): t(100, fade=60)}
    [batch] = plan(target, tracked, NOW)
    record_sent(tracked, batch, CommandResult("c1", frozenset(batch.levels)), NOW)
    # address 0 reports right; address 1 reports 40 % just after its fade ended
    just_after = NOW + timedelta(seconds=61)
    record_readings(tracked, [reading(0, 100, just_after), reading(1, 40, just_after)])
    assert plan(target, tracked, just_after) == []
    due = quiet_until(target, tracked, just_after)
    assert due == NOW + timedelta(seconds=60 + SETTLE_S)
    assert plan(target, tracked, due - timedelta(milliseconds=1)) == []
    assert [list(b.levels) for b in plan(target, tracked, due)] == [[Address(1)]]


def test_quiet_until_is_none_when_only_new_input_can_change_the_diff() -> None:
    tracked: dict[Address, Tracked] = {}
    target = {Address(0): t(100, fade=60)}
    [batch] = plan(target, tracked, NOW)
    record_sent(tracked, batch, CommandResult("c1", frozenset(batch.levels)), NOW)
    # mid-fade report: the verdict waits for a report after the fade, i.e. new input
    record_readings(tracked, [reading(0, 40, NOW + timedelta(seconds=20))])
    assert plan(target, tracked, NOW + timedelta(seconds=20)) == []
    assert quiet_until(target, tracked, NOW + timedelta(seconds=20)) is None
    assert plan(target, tracked, NOW + timedelta(days=1)) == []


tracked_states = st.builds(
    Tracked,
    acked=st.none() | levels,
    fade_until=st.none() | st.integers(-120, 120).map(lambda s: NOW + timedelta(seconds=s)),
    actual=st.none() | levels,
    actual_at=st.none() | st.integers(-120, 120).map(lambda s: NOW + timedelta(seconds=s)),
    attempts=st.integers(0, MAX_ATTEMPTS),
)


@given(
    st.dictionaries(addresses, levels, max_size=16),
    st.dictionaries(addresses, tracked_states, max_size=16),
    st.lists(st.floats(min_value=0, max_value=600), max_size=8),
)
def test_an_empty_plan_stays_empty_until_quiet_until(
    want: dict[Address, Level], tracked: dict[Address, Tracked], later_s: list[float]
) -> None:
    targets = {a: t(lv, fade=30) for a, lv in want.items()}
    if plan(targets, tracked, NOW):
        return
    due = quiet_until(targets, tracked, NOW)
    for s in later_s:
        at = NOW + timedelta(seconds=s)
        if due is None or at < due:
            assert plan(targets, tracked, at) == []
    if due is not None:
        assert due > NOW
        assert plan(targets, tracked, due) != []
