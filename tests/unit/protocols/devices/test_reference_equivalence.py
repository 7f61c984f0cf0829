"""The reference gateway in the device format says what protocols/profiles/reference.toml says.

The running loop still uses the TOML map and ``protocols.modbus_codec``; the YAML profile
must describe the same registers. Registers written by the existing encoder (an independent
implementation) are decoded by the new codec and compared with the existing decoder.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.values import Address, DeviceFlag, Reading
from protocols import modbus_codec
from protocols.devices.codec import decode, key, plan_reads, record_keys
from protocols.devices.profile import load_builtin_profile
from protocols.register_map import load_builtin_profile as load_register_map
from tests.unit.protocols.devices.memory import answer

OLD = load_register_map("reference")
NEW = load_builtin_profile("streetlight_reference")
AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

# Old field -> (new point, factor from the old unit to the new one).
FIELDS = {
    "level_pct": ("level", 1.0),
    "power_w": ("power", 1.0),
    "voltage_v": ("voltage", 1.0),
    "current_ma": ("current", 0.001),
    "power_factor": ("power_factor", 1.0),
    "energy_wh": ("energy", 0.001),
    "operating_hours": ("operating_hours", 1.0),
    "switch_on_count": ("switch_on_count", 1.0),
    "temperature_c": ("temperature", 1.0),
    "flags": ("flags", 1.0),
}


@pytest.mark.parametrize("short", [0, 1, 31, 63])
def test_every_field_sits_at_the_same_register(short: int) -> None:
    for old_name, (new_name, _) in FIELDS.items():
        old = OLD.fields[old_name]
        new = NEW.point(new_name)
        assert new.address_at({"s": short}) == old.address(short), old_name
        assert new.count == old.spec.registers, old_name
        assert new.shift == old.spec.shift, old_name
        assert new.value_bits == old.spec.bits, old_name
    assert NEW.point("level_command").address_at({"s": short}) == OLD.command.level_base + short
    assert NEW.point("fade_time").address == OLD.command.fade_address
    assert dict(NEW.point("flags").flags) == dict(OLD.flag_bits)


readings = st.builds(
    Reading,
    address=st.just(Address(0)),
    at=st.just(AT),
    lamp_on=st.booleans(),
    level_pct=st.integers(0, 100),
    power_w=st.integers(0, 65535).map(lambda r: r / 10),
    voltage_v=st.integers(0, 5000).map(lambda r: r / 10),
    current_ma=st.integers(0, 65535),
    power_factor=st.integers(0, 1000).map(lambda r: r / 1000),
    energy_wh=st.integers(0, 2**32 - 1),
    operating_hours=st.integers(0, 2**32 - 1),
    switch_on_count=st.integers(0, 65535),
    temperature_c=st.integers(-400, 1500).map(lambda r: r / 10),
    flags=st.frozensets(st.sampled_from([DeviceFlag.LAMP_FAILURE, DeviceFlag.SUPPLY_FAULT])),
)


@settings(max_examples=200, deadline=None)
@given(reading=readings, short=st.integers(0, 63))
def test_new_codec_decodes_what_the_existing_encoder_wrote(reading: Reading, short: int) -> None:
    words = modbus_codec.encode_luminaire(OLD, reading, short)
    old = modbus_codec.decode_luminaire(OLD, words, short, address=Address(0), at=AT)
    memory = {(4, address): word for address, word in words.items()}
    slow = ("operating_hours", "switch_on_count", "temperature")
    keys = [*record_keys(NEW, s=short), *(key(name, s=short) for name in slow)]
    plan = plan_reads(NEW, keys)
    new = decode(NEW, plan.reads, [answer(r, memory) for r in plan.reads])
    for old_name, (new_name, factor) in FIELDS.items():
        if old_name == "flags":
            continue
        got = new[key(new_name, s=short)].value
        assert got == pytest.approx(getattr(old, old_name) * factor, abs=1e-9), old_name
    flags = new[key("flags", s=short)].flags
    assert flags["lamp_on"] is old.lamp_on
    assert flags["lamp_failure"] is (DeviceFlag.LAMP_FAILURE in old.flags)
    assert flags["supply_fault"] is (DeviceFlag.SUPPLY_FAULT in old.flags)
