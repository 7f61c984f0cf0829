"""Rules + tracker against the simulated luminaires: each injected fault opens exactly its fault.

The fake model (fake_luminaires/model.py) is pure, so a whole evening of 10 s polls is a
unit test. The loop here stands in for the controller's fault loop: poll, remember, judge,
track.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pytest

from controller.core.values import Address, Level
from controller.faults.rules import (
    FaultType,
    LampHistory,
    LampType,
    evaluate_gateway,
    evaluate_luminaire,
    remember,
)
from controller.faults.tracker import FaultTracker, Observation, Subject, Transition, TransitionKind
from fake_luminaires.model import FakeGateway, GatewayFault, LuminaireFault
from tests.unit.faults.builders import T0, secs

F = FaultType
LF = LuminaireFault
GATEWAY_ID = 1
POLL_S = 10.0


class Rig:
    """One fake gateway, the controller's memory of it, and a fault tracker."""

    def __init__(self, count: int, *, rated_power_w: float = 100.0) -> None:
        self.gw = FakeGateway("gw-1", count, start=T0, seed=7, rated_power_w=rated_power_w)
        self.lamp = LampType(rated_power_w=rated_power_w)
        self.tracker = FaultTracker()
        self.now = T0
        addresses = list(self.gw.luminaires)
        self.history = {a: LampHistory() for a in addresses}
        self.target: dict[Address, Level] = {}
        self.acked: dict[Address, Level] = {}
        self.settle: dict[Address, datetime] = {}

    def command(self, level: int, fade_s: float = 0.0, *, lost: Iterable[int] = ()) -> None:
        """Set every target to ``level``; the addresses in ``lost`` never get the command."""
        lost_set = {Address(a) for a in lost}
        sent = {a: level for a in self.gw.luminaires if a not in lost_set}
        rejected = self.gw.command(sent, self.now, fade_s)
        for address in self.gw.luminaires:
            self.target[address] = Level(level)
            if address in sent and address not in rejected:
                self.acked[address] = Level(level)
                self.settle[address] = self.now + secs(fade_s)

    def poll(self) -> list[Transition]:
        gateway = Subject.gateway(GATEWAY_ID)
        if not self.gw.answering:
            gw_ev = evaluate_gateway(answering=False, mains_present=None)
            return self.tracker.observe_poll(Observation(gateway, self.now, gw_ev), [])
        snap = self.gw.snapshot(self.now)
        gw_ev = evaluate_gateway(answering=True, mains_present=snap.mains_present)
        observations = []
        for address, reading in snap.luminaires.items():
            self.history[address] = remember(self.history[address], reading, self.lamp)
            ev = evaluate_luminaire(
                reading,
                at=self.now,
                target=self.target.get(address),
                acked=self.acked.get(address),
                settle_until=self.settle.get(address),
                lamp=self.lamp,
                history=self.history[address],
            )
            subject = Subject.luminaire(100 + address)
            observations.append(Observation(subject, self.now, ev, GATEWAY_ID))
        return self.tracker.observe_poll(Observation(gateway, self.now, gw_ev), observations)

    def run(self, seconds: float) -> list[Transition]:
        out: list[Transition] = []
        for _ in range(round(seconds / POLL_S)):
            out += self.poll()
            self.now += secs(POLL_S)
        return out


def opened(events: Iterable[Transition]) -> set[tuple[int, FaultType]]:
    return {(t.subject.id, t.fault_type) for t in events if t.kind is TransitionKind.OPENED}


def resolved(events: Iterable[Transition]) -> set[tuple[int, FaultType]]:
    return {(t.subject.id, t.fault_type) for t in events if t.kind is TransitionKind.RESOLVED}


def test_a_healthy_evening_raises_nothing() -> None:
    rig = Rig(8)
    events = rig.run(60)  # daytime, off
    rig.command(100, fade_s=60)  # dusk: fade up
    events += rig.run(1800)
    rig.command(70, fade_s=120)  # dim with a slow fade
    events += rig.run(1800)
    rig.command(50, fade_s=0)  # a step
    events += rig.run(900)
    rig.command(0, fade_s=30)  # dawn
    events += rig.run(600)
    assert events == []


@pytest.mark.parametrize(
    ("fault", "level", "expected"),
    [
        (LF.LAMP_FAILURE, 70, {F.LAMP_FAILURE}),
        (LF.DRIVER_FAILURE, 70, {F.CONTROL_GEAR_FAILURE}),
        (LF.NOT_ANSWERING, 70, {F.CONTROL_GEAR_COMM_FAILURE}),
        (LF.STUCK_ON, 50, {F.LAMP_POWER_TOO_HIGH}),
        (LF.STUCK_ON, 0, {F.LAMP_UNEXPECTED_ON}),
        (LF.POWER_HIGH, 70, {F.LAMP_POWER_TOO_HIGH}),
        (LF.POWER_LOW, 70, {F.LAMP_POWER_TOO_LOW}),
        (LF.VOLTAGE_LOW, 70, {F.SUPPLY_VOLTAGE_TOO_LOW}),
        (LF.VOLTAGE_HIGH, 0, {F.SUPPLY_VOLTAGE_TOO_HIGH}),
        (LF.CYCLING, 100, {F.CYCLING_FAILURE}),
        (LF.OVER_TEMPERATURE, 70, {F.CONTROL_GEAR_THERMAL_DERATING}),
    ],
)
def test_each_injected_fault_opens_its_fault_and_clears_after_repair(
    fault: LuminaireFault, level: int, expected: set[FaultType]
) -> None:
    rig = Rig(4)
    rig.command(level, fade_s=30)
    assert rig.run(300) == []
    rig.gw.inject(fault, Address(2))
    events = rig.run(900)
    assert opened(events) == {(102, f) for f in expected}
    assert resolved(events) == set()
    rig.gw.clear(fault, Address(2))
    events = rig.run(1200)
    assert resolved(events) == {(102, f) for f in expected}
    assert opened(events) == set()


def test_a_lost_command_leaves_the_lamp_out_at_night() -> None:
    rig = Rig(4)
    rig.command(100, fade_s=30, lost=[3])
    events = rig.run(600)
    assert opened(events) == {(103, F.LAMP_UNEXPECTED_OFF)}
    [event] = events
    assert event.severity == "critical"
    assert event.since == T0  # no command in effect for it, so nothing to wait for
    assert event.at == T0 + secs(60)  # 3 observations and 60 s


def test_mains_loss_behind_a_full_gateway_is_one_fault() -> None:
    rig = Rig(64)
    rig.command(100)
    assert rig.run(300) == []
    rig.gw.inject(GatewayFault.MAINS_LOSS)
    events = rig.run(1800)
    assert [(t.subject, t.fault_type, t.kind) for t in events] == [
        (Subject.gateway(GATEWAY_ID), F.SUPPLY_LOSS, TransitionKind.OPENED),
        (Subject.gateway(GATEWAY_ID), F.SUPPLY_LOSS, TransitionKind.UPDATED),  # after 15 min
    ]
    rig.gw.clear(GatewayFault.MAINS_LOSS)
    events = rig.run(1800)
    assert [(t.subject, t.fault_type, t.kind) for t in events] == [
        (Subject.gateway(GATEWAY_ID), F.SUPPLY_LOSS, TransitionKind.RESOLVED)
    ]


def test_an_offline_gateway_is_one_fault() -> None:
    rig = Rig(16)
    rig.command(70)
    rig.run(300)
    rig.gw.inject(GatewayFault.OFFLINE)
    events = rig.run(600)
    assert opened(events) == {(GATEWAY_ID, F.GATEWAY_OFFLINE)}
    rig.gw.clear(GatewayFault.OFFLINE)
    events = rig.run(600)
    assert [(t.fault_type, t.kind) for t in events] == [
        (F.GATEWAY_OFFLINE, TransitionKind.RESOLVED)
    ]


def test_a_fault_open_before_the_mains_loss_is_kept_not_duplicated() -> None:
    rig = Rig(4)
    rig.command(100)
    rig.gw.inject(LF.LAMP_FAILURE, Address(1))
    assert opened(rig.run(600)) == {(101, F.LAMP_FAILURE)}
    rig.gw.inject(GatewayFault.MAINS_LOSS)
    events = rig.run(1200)
    rig.gw.clear(GatewayFault.MAINS_LOSS)
    events += rig.run(1200)
    assert opened(events) == {(GATEWAY_ID, F.SUPPLY_LOSS)}
    assert resolved(events) == {(GATEWAY_ID, F.SUPPLY_LOSS)}
    assert rig.tracker.is_open(Subject.luminaire(101), F.LAMP_FAILURE)
