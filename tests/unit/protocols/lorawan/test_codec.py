"""The codec interface: partial telemetry merged into readings, and the registry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.core.values import Address, DeviceFlag, Reading
from protocols.lorawan.codec import Frame, Telemetry
from protocols.lorawan.registry import CodecRegistry, UnknownCodec, builtin_registry

T0 = datetime(2026, 6, 21, 15, 0, tzinfo=UTC)


def test_a_partial_uplink_keeps_the_previous_values() -> None:
    previous = Reading(
        address=Address(3),
        at=T0,
        lamp_on=True,
        level_pct=70,
        power_w=73.6,
        voltage_v=221.4,
        current_ma=393,
        power_factor=0.84,
        energy_wh=100,
        operating_hours=5,
        switch_on_count=2,
        temperature_c=40.0,
        flags=frozenset({DeviceFlag.LAMP_FAILURE}),
    )
    later = datetime(2026, 6, 21, 15, 5, tzinfo=UTC)
    reading = Telemetry(level_pct=30, energy_wh=120).reading(
        address=Address(3), at=later, previous=previous
    )
    assert reading.level_pct == 30 and reading.energy_wh == 120
    assert reading.power_w == 73.6 and reading.flags == {DeviceFlag.LAMP_FAILURE}
    assert reading.at == later


def test_without_a_previous_reading_missing_fields_are_zero() -> None:
    reading = Telemetry(lamp_on=True).reading(address=Address(0), at=T0, previous=None)
    assert reading.lamp_on is True
    assert (reading.level_pct, reading.power_w, reading.flags) == (0, 0.0, frozenset())


def test_merged_prefers_the_newer_fields() -> None:
    assert Telemetry(level_pct=10, voltage_v=230.0).merged(Telemetry(level_pct=20)) == Telemetry(
        level_pct=20, voltage_v=230.0
    )


@pytest.mark.parametrize("port", [0, 224, -1])
def test_frames_live_on_application_ports(port: int) -> None:
    with pytest.raises(ValueError, match="fPort"):
        Frame(port, b"\x00")


def test_builtin_registry_names_every_shipped_codec() -> None:
    registry = builtin_registry()
    assert registry.names() == ("dali-dapc", "milesight-ws558", "streetlight-reference")
    for name in registry.names():
        assert registry.get(name).name == name


def test_unknown_codec_names_the_known_ones() -> None:
    with pytest.raises(UnknownCodec, match="'acme' \\(known: dali-dapc, milesight-ws558"):
        builtin_registry().get("acme")


def test_a_name_is_registered_once() -> None:
    registry = CodecRegistry()
    registry.register("x", builtin_registry().get("dali-dapc").__class__)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("x", builtin_registry().get("dali-dapc").__class__)
