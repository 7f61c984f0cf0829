"""Fault lifecycle: debounce, one open fault per (subject, type), clearing, suppression."""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.faults.rules import FaultType, Severity
from controller.faults.tracker import (
    Debounce,
    FaultTracker,
    OpenFault,
    Subject,
    TrackerConfig,
    Transition,
    TransitionKind,
)
from tests.unit.faults.builders import T0, gw_obs, lum_obs, secs

F = FaultType
K = TransitionKind
LAMP = F.LAMP_FAILURE


def run(
    tracker: FaultTracker,
    pattern: str,
    *,
    every_s: float = 10.0,
    fault: FaultType = LAMP,
    start: datetime = T0,
) -> list[tuple[int, Transition]]:
    """Feed luminaire 1 one observation per character: P present, A absent, U unknown."""
    out: list[tuple[int, Transition]] = []
    for i, ch in enumerate(pattern):
        at = start + secs(i * every_s)
        if ch == "P":
            obs = lum_obs(1, at, present=[fault])
        elif ch == "A":
            obs = lum_obs(1, at)
        else:
            obs = lum_obs(1, at, unknown=[fault])
        out.extend((i, t) for t in tracker.observe(obs))
    return out


def kinds(events: list[tuple[int, Transition]]) -> list[tuple[int, TransitionKind]]:
    return [(i, t.kind) for i, t in events if t.kind is not K.UPDATED]


# --- raising ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raise_count", "raise_s", "every_s"),
    [
        (3, 60.0, 10.0),
        (3, 0.0, 10.0),
        (1, 0.0, 10.0),
        (5, 30.0, 10.0),
        (2, 60.0, 60.0),
        (3, 60.0, 7.0),
    ],
)
def test_opens_after_count_and_duration(raise_count: int, raise_s: float, every_s: float) -> None:
    config = TrackerConfig(debounce=Debounce(raise_count=raise_count, raise_s=raise_s))
    events = run(FaultTracker(config), "P" * 20, every_s=every_s)
    expected_index = max(raise_count - 1, math.ceil(raise_s / every_s))
    assert kinds(events) == [(expected_index, K.OPENED)]
    opened = events[0][1]
    assert opened.since == T0  # the first observation of the streak
    assert opened.at == T0 + secs(expected_index * every_s)
    assert opened.count == expected_index + 1
    assert opened.severity is Severity.CRITICAL


def test_one_absent_observation_breaks_the_raise_streak() -> None:
    assert kinds(run(FaultTracker(), "PPPPPPA" + "P" * 10)) == [(13, K.OPENED)]


def test_unknown_neither_raises_nor_breaks_the_streak() -> None:
    assert kinds(run(FaultTracker(), "UUUUUUUUUU")) == []
    assert kinds(run(FaultTracker(), "PPPUUUP")) == [(6, K.OPENED)]


def test_a_stale_streak_starts_over() -> None:
    config = TrackerConfig(max_gap_s=30.0)
    # two presents, then 4 unknowns (40 s) then presents: the streak restarts at index 6
    assert kinds(run(FaultTracker(config), "PPUUUUPPPPPPPP")) == [(12, K.OPENED)]


# --- open faults -----------------------------------------------------------------------------


def test_repeated_detection_updates_the_open_fault_instead_of_opening_another() -> None:
    tracker = FaultTracker(TrackerConfig(update_every_s=None))
    events = run(tracker, "P" * 50)
    assert kinds(events) == [(6, K.OPENED)]
    [fault] = tracker.open_faults()
    assert fault.count == 50
    assert fault.last_seen == T0 + secs(49 * 10)
    assert fault.since == T0


def test_updates_are_periodic() -> None:
    tracker = FaultTracker(TrackerConfig(update_every_s=100.0))
    events = run(tracker, "P" * 30)
    updates = [(i, t.count) for i, t in events if t.kind is K.UPDATED]
    assert updates == [(16, 17), (26, 27)]


def test_clears_after_count_and_duration_and_a_blip_restarts_clearing() -> None:
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0, 3, 30.0)))
    # open at 0; absent from 1: resolved at index 4 (3 obs and 30 s from index 1)
    assert kinds(run(tracker, "PAAAA")) == [(0, K.OPENED), (4, K.RESOLVED)]
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0, 3, 30.0)))
    assert kinds(run(tracker, "PAAPAAAA")) == [(0, K.OPENED), (7, K.RESOLVED)]


def test_unknown_does_not_clear() -> None:
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0, 1, 0.0)))
    assert kinds(run(tracker, "PUUUUUUUU")) == [(0, K.OPENED)]
    assert tracker.is_open(Subject.luminaire(1), LAMP)


def test_resolved_transition_carries_the_fault_history() -> None:
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0, 1, 0.0)))
    events = run(tracker, "PPPA")
    resolved = events[-1][1]
    assert resolved.kind is K.RESOLVED
    assert (resolved.since, resolved.last_seen, resolved.at) == (T0, T0 + secs(20), T0 + secs(30))
    assert resolved.count == 3
    assert resolved.actor is None
    assert tracker.open_faults() == []


def test_each_subject_and_type_is_tracked_separately() -> None:
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0, 1, 0.0)))
    out = tracker.observe(lum_obs(1, T0, present=[LAMP, F.SUPPLY_VOLTAGE_TOO_HIGH]))
    out += tracker.observe(lum_obs(2, T0, present=[LAMP]))
    assert sorted((t.subject.id, t.fault_type) for t in out) == [
        (1, LAMP), (1, F.SUPPLY_VOLTAGE_TOO_HIGH), (2, LAMP),
    ]  # fmt: skip


def test_an_older_observation_is_ignored() -> None:
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0, 1, 0.0)))
    tracker.observe(lum_obs(1, T0 + secs(10), present=[LAMP]))
    assert tracker.observe(lum_obs(1, T0)) == []  # late absent: the newer present stands
    assert tracker.is_open(Subject.luminaire(1), LAMP)


def test_per_type_debounce_and_severity_overrides() -> None:
    config = TrackerConfig(per_type={LAMP: Debounce(1, 0.0)}, severities={LAMP: Severity.WARNING})
    events = run(FaultTracker(config), "P")
    assert kinds(events) == [(0, K.OPENED)]
    assert events[0][1].severity is Severity.WARNING


def test_debounce_is_validated() -> None:
    with pytest.raises(ValueError, match="count"):
        Debounce(raise_count=0)
    with pytest.raises(ValueError, match="_s"):
        Debounce(clear_s=-1.0)


# --- by hand and restarts --------------------------------------------------------------------


def test_resolved_by_hand_reopens_only_after_a_full_debounce() -> None:
    tracker = FaultTracker()
    run(tracker, "P" * 7)
    subject = Subject.luminaire(1)
    assert tracker.is_open(subject, LAMP)
    [closed] = tracker.resolve_by_hand(subject, LAMP, T0 + secs(65), actor="tổ 3")
    assert (closed.kind, closed.actor, closed.at) == (K.RESOLVED, "tổ 3", T0 + secs(65))
    assert not tracker.is_open(subject, LAMP)
    assert tracker.resolve_by_hand(subject, LAMP, T0 + secs(66)) == []
    reopened = []
    for i in range(7, 20):
        reopened += [(i, t) for t in tracker.observe(lum_obs(1, T0 + secs(i * 10), present=[LAMP]))]
    assert kinds(reopened) == [(13, K.OPENED)]  # 7 polls after the hand resolution
    assert reopened[0][1].since == T0 + secs(70)


def test_acknowledge_keeps_the_fault_open() -> None:
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0, 1, 0.0)))
    run(tracker, "P")
    subject = Subject.luminaire(1)
    [ack] = tracker.acknowledge(subject, LAMP, T0 + secs(5), actor="an")
    assert (ack.kind, ack.actor) == (K.ACKNOWLEDGED, "an")
    assert tracker.open_faults()[0].acknowledged
    assert tracker.acknowledge(subject, F.CYCLING_FAILURE, T0) == []
    # it still resolves by itself
    assert [t.kind for t in tracker.observe(lum_obs(1, T0 + secs(10)))] == [K.RESOLVED]


def test_restored_faults_are_not_opened_again() -> None:
    restored = OpenFault(
        subject=Subject.luminaire(1), fault_type=LAMP, severity=Severity.CRITICAL,
        since=T0 - secs(3600), last_seen=T0 - secs(10), count=40, gateway_id=1,
    )  # fmt: skip
    tracker = FaultTracker(TrackerConfig(update_every_s=None), open_faults=[restored])
    assert run(tracker, "P" * 10) == []
    assert tracker.open_faults()[0].count == 50
    events = run(tracker, "A" * 20, start=T0 + secs(100))
    assert [t.kind for _, t in events] == [K.RESOLVED]
    assert events[0][1].since == T0 - secs(3600)


# --- suppression -----------------------------------------------------------------------------


def test_mains_loss_of_a_gateway_yields_one_fault_not_one_per_luminaire() -> None:
    tracker = FaultTracker()
    opened: list[Transition] = []
    for i in range(20):
        at = T0 + secs(i * 10)
        gateway = gw_obs(1, at, present=[F.SUPPLY_LOSS])
        luminaires = [
            lum_obs(n, at, present=[F.SUPPLY_LOSS, F.LAMP_UNEXPECTED_OFF], gateway_id=1)
            for n in range(64)
        ]
        opened += tracker.observe_poll(gateway, luminaires)
    assert [(t.subject, t.fault_type) for t in opened] == [(Subject.gateway(1), F.SUPPLY_LOSS)]


def test_suppression_starts_with_the_gateway_condition_not_its_open_fault() -> None:
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0)))
    # the gateway's supplyLoss needs 2 polls to open; the luminaires would open at once
    out = tracker.observe_poll(
        gw_obs(1, T0, present=[F.SUPPLY_LOSS]), [lum_obs(5, T0, present=[F.LAMP_UNEXPECTED_OFF])]
    )
    assert out == []
    assert tracker.explains(1)


def test_unexplained_luminaire_faults_still_open_under_a_gateway_fault() -> None:
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0)))
    out = tracker.observe_poll(
        gw_obs(1, T0, present=[F.SUPPLY_LOSS]),
        [lum_obs(5, T0, present=[F.LAMP_UNEXPECTED_ON, F.LAMP_FAILURE])],
    )
    assert [t.fault_type for t in out] == [F.LAMP_UNEXPECTED_ON]


def test_gateway_offline_keeps_open_luminaire_faults_without_duplicating_them() -> None:
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0, 1, 0.0)))
    tracker.observe(lum_obs(5, T0, present=[LAMP]))
    assert tracker.is_open(Subject.luminaire(5), LAMP)
    events: list[Transition] = []
    for i in range(1, 10):
        at = T0 + secs(i * 10)
        # offline: the runtime reports every luminaire as missing, which is not their fault
        events += tracker.observe_poll(
            gw_obs(1, at, present=[F.GATEWAY_OFFLINE], unknown=[F.SUPPLY_LOSS]),
            [lum_obs(5, at, present=[F.CONTROL_GEAR_COMM_FAILURE], unknown=[LAMP])],
        )
    assert [(t.subject, t.fault_type, t.kind) for t in events] == [
        (Subject.gateway(1), F.GATEWAY_OFFLINE, K.OPENED)
    ]
    assert tracker.is_open(Subject.luminaire(5), LAMP)


def test_an_open_gateway_fault_keeps_suppressing_while_its_state_is_unknown() -> None:
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0)))
    tracker.observe(gw_obs(1, T0, present=[F.SUPPLY_LOSS]))
    tracker.observe(gw_obs(1, T0 + secs(10), present=[F.SUPPLY_LOSS]))
    assert tracker.is_open(Subject.gateway(1), F.SUPPLY_LOSS)
    # then the gateway goes silent: mains unknown, supplyLoss stays open and still explains
    tracker.observe(gw_obs(1, T0 + secs(20), present=[F.GATEWAY_OFFLINE], unknown=[F.SUPPLY_LOSS]))
    tracker.observe(gw_obs(1, T0 + secs(30), unknown=[F.SUPPLY_LOSS]))
    assert tracker.explains(1)
    assert tracker.observe(lum_obs(5, T0 + secs(30), present=[F.LAMP_UNEXPECTED_OFF])) == []


def test_a_streak_from_before_the_gateway_fault_does_not_complete_after_it() -> None:
    tracker = FaultTracker()  # 3 observations and 60 s
    poll = 0

    def step(gateway_present: list[FaultType], lamp_present: bool) -> list[Transition]:
        nonlocal poll
        at = T0 + secs(poll * 10)
        poll += 1
        return tracker.observe_poll(
            gw_obs(1, at, present=gateway_present),
            [lum_obs(5, at, present=[F.LAMP_UNEXPECTED_OFF] if lamp_present else [])],
        )

    for _ in range(5):
        assert step([], True) == []  # streak of 5 over 40 s: one more poll would open it
    for _ in range(3):
        assert all(t.subject == Subject.gateway(1) for t in step([F.SUPPLY_LOSS], True))
    # mains back: the gateway fault resolves after its clear debounce, suppressing till then
    resolved_at = None
    while resolved_at is None:
        for t in step([], True):
            assert t.subject == Subject.gateway(1)
            if t.kind is K.RESOLVED:
                resolved_at = poll - 1
    # the luminaire starts a fresh streak after that: 3 observations and 60 s again
    out: list[tuple[int, Transition]] = []
    while not out:
        out = [(poll - 1, t) for t in step([], True) if t.subject == Subject.luminaire(5)]
    # same poll as the resolution (gateway first) + 6 polls = 60 s
    assert [(i - resolved_at, t.kind) for i, t in out] == [(6, K.OPENED)]


def test_without_a_gateway_id_nothing_is_suppressed() -> None:
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0)))
    tracker.observe(gw_obs(1, T0, present=[F.SUPPLY_LOSS]))
    out = tracker.observe(lum_obs(5, T0, present=[LAMP], gateway_id=None))
    assert [t.fault_type for t in out] == [LAMP]


# --- properties --------------------------------------------------------------------------------


@given(
    pattern=st.text(alphabet="PAU", max_size=80),
    raise_count=st.integers(1, 5),
    clear_count=st.integers(1, 5),
    raise_s=st.sampled_from([0.0, 15.0, 60.0]),
)
def test_transitions_alternate_and_respect_the_debounce(
    pattern: str, raise_count: int, clear_count: int, raise_s: float
) -> None:
    config = TrackerConfig(
        debounce=Debounce(raise_count, raise_s, clear_count, 0.0), update_every_s=None
    )
    tracker = FaultTracker(config)
    events = run(tracker, pattern)
    seq = [t.kind for _, t in events]
    assert seq == [K.OPENED, K.RESOLVED] * (len(seq) // 2) + [K.OPENED] * (len(seq) % 2)
    assert tracker.is_open(Subject.luminaire(1), LAMP) == (len(seq) % 2 == 1)
    for i, t in events:
        if t.kind is K.OPENED:
            seen = pattern[: i + 1].replace("U", "")
            assert seen.endswith("P" * raise_count)
            assert (t.at - t.since).total_seconds() >= raise_s
            assert t.count >= raise_count
        else:
            assert pattern[: i + 1].replace("U", "").endswith("A" * clear_count)


@given(st.lists(st.sampled_from(["P", "A"]), min_size=1, max_size=40))
def test_suppressed_luminaires_never_open_explained_faults(pattern: list[str]) -> None:
    tracker = FaultTracker(TrackerConfig(debounce=Debounce(1, 0.0, 1, 0.0)))
    opened: list[datetime] = []
    for i, ch in enumerate(pattern):
        at = T0 + secs(i)
        out = tracker.observe_poll(
            gw_obs(1, at, present=[F.GATEWAY_OFFLINE]),
            [lum_obs(5, at, present=[LAMP, F.LAMP_UNEXPECTED_OFF] if ch == "P" else [])],
        )
        opened += [t.at for t in out if t.subject == Subject.luminaire(5)]
    assert opened == []
