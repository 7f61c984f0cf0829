"""The downlink tracker: txack keeps a command pending; an ack or a matching uplink settles it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.core.values import Address, Level
from protocols.lorawan.codec import Telemetry, expected_report
from protocols.lorawan.dali_dapc import DaliDapcCodec
from protocols.lorawan.events import Device, DownlinkEvent, DownlinkStage
from protocols.lorawan.pending import DownlinkTracker, Settled, Settlement
from protocols.lorawan.ws558 import Ws558Codec

T0 = datetime(2026, 6, 21, 18, 0, tzinfo=UTC)
DEVICE = Device(device_id="0101010101010101", application_id="app")
A0 = Address(0)


def event(stage: DownlinkStage, correlation: str = "c1") -> DownlinkEvent:
    return DownlinkEvent(device=DEVICE, at=T0, stage=stage, correlation=correlation)


def tracker() -> DownlinkTracker:
    t = DownlinkTracker(latency=timedelta(minutes=15))
    t.queue("eui", "c1", {A0: Level(70)}, T0)
    return t


def test_txack_is_not_a_confirmation() -> None:
    t = tracker()
    assert t.on_downlink_event("eui", event(DownlinkStage.SENT)) is None
    pending = t.pending("eui")
    assert pending is not None and pending.stage is DownlinkStage.SENT


def test_an_ack_settles_it() -> None:
    t = tracker()
    assert t.on_downlink_event("eui", event(DownlinkStage.ACKED)) == Settled(
        "eui", "c1", Settlement.ACKNOWLEDGED
    )
    assert t.pending("eui") is None


def test_an_uplink_showing_the_level_settles_it() -> None:
    t = tracker()
    assert t.on_uplink("eui", {A0: Telemetry(level_pct=30)}) is None
    assert t.on_uplink("eui", {A0: Telemetry(voltage_v=230.0)}) is None
    assert t.on_uplink("eui", {A0: Telemetry(level_pct=70)}) == Settled(
        "eui", "c1", Settlement.REPORTED
    )


def test_events_of_a_replaced_downlink_are_ignored() -> None:
    t = tracker()
    t.queue("eui", "c2", {A0: Level(20)}, T0 + timedelta(minutes=1))
    assert t.on_downlink_event("eui", event(DownlinkStage.ACKED, "c1")) is None
    pending = t.pending("eui")
    assert pending is not None and pending.correlation == "c2"


def test_due_only_after_the_latency_or_a_refusal() -> None:
    t = tracker()
    assert t.due(T0 + timedelta(minutes=15)) == ()
    assert t.due(T0 + timedelta(minutes=15, seconds=1)) == ("eui",)
    t2 = tracker()
    t2.on_downlink_event("eui", event(DownlinkStage.NOT_ACKED))
    assert t2.due(T0) == ("eui",)
    t2.queue("eui", "c3", {A0: Level(70)}, T0)  # sent again: waiting again
    assert t2.due(T0) == ()


def test_a_relay_commanded_to_70_reports_100() -> None:
    codec = Ws558Codec()
    expected = expected_report(codec, {A0: Level(70), Address(3): Level(0)})
    assert expected == {A0: 100, Address(3): 0}
    t = DownlinkTracker(latency=timedelta(minutes=10))
    t.queue("ws558", "c1", expected, T0)
    uplink = codec.decode_uplink(85, bytes.fromhex("08310001"))  # relay 1 on, others off
    assert t.on_uplink("ws558", uplink.luminaires) == Settled("ws558", "c1", Settlement.REPORTED)


def test_a_dapc_level_is_reported_as_commanded() -> None:
    assert expected_report(DaliDapcCodec(), {A0: Level(42)}) == {A0: 42}


def test_latency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="latency"):
        DownlinkTracker(latency=timedelta(0))
