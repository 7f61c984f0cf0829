"""The Modbus codec over both shipped profiles: tables, request plans, round-trip properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.errors import ProtocolViolation
from controller.core.values import Address, DeviceFlag, Reading
from protocols.modbus_codec import (
    INTEGER_FIELDS,
    GatewayBlock,
    RegisterViolation,
    decode_gateway_block,
    decode_luminaire,
    decode_telemetry,
    decode_write,
    encode_gateway_block,
    encode_levels,
    encode_luminaire,
    luminaire_registers,
    plan_reads,
)
from protocols.register_map import RegisterProfile, load_builtin_profile

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
REFERENCE = load_builtin_profile("reference")
ACME = load_builtin_profile("acme_dali_gw")
PROFILES = {"reference": REFERENCE, "acme_dali_gw": ACME}

READING = Reading(
    address=Address(2),
    at=AT,
    lamp_on=True,
    level_pct=75,
    power_w=76.3,
    voltage_v=221.4,
    current_ma=362,
    power_factor=0.912,
    energy_wh=70_000,
    operating_hours=12_345,
    switch_on_count=4_321,
    temperature_c=-5.5,
    flags=frozenset({DeviceFlag.OVER_TEMPERATURE}),
)

# The registers each map shows for READING at short address 2, worked out by hand from the
# docs (docs/protocol/modbus.md), not from the code.
EXPECTED_REGISTERS: dict[str, dict[int, int]] = {
    "reference": {
        30: (75 << 8) | 0b1_0001,  # level in the high byte; lamp_on (bit 0) + over-temp (bit 4)
        31: 763,  # 0.1 W
        32: 2214,  # 0.1 V
        33: 362,  # mA
        34: 912,  # x 1000
        35: 0x0001,  # energy 70 000 Wh = 0x0001_1170, high word first
        36: 0x1170,
        520: 0,  # operating hours, high word first
        521: 12_345,
        522: 4_321,
        523: 0x10000 - 55,  # -5.5 C in 0.1 C, two's complement
    },
    "acme_dali_gw": {
        1024: 0x8000 | 0x0008,  # lamp_on bit 15, over-temperature bit 3
        1025: 75,
        1026: 7630,  # 0.01 W, 32 bit, low word first
        1027: 0,
        1028: 22_140,  # 0.01 V
        1029: 36,  # 10 mA steps
        1030: 91,  # x 100
        1031: 0x1170,  # energy, low word first
        1032: 0x0001,
        1033: 0x10000 - 6,  # whole degrees (round half to even: -5.5 -> -6)
        1034: 12_345,
        1035: 4_321,
    },
}
# What comes back: the same reading at each map's resolution.
DECODED: dict[str, dict[str, Any]] = {
    "reference": {},
    "acme_dali_gw": {"current_ma": 360, "power_factor": 0.91, "temperature_c": -6.0},
}


@pytest.mark.parametrize("name", PROFILES)
def test_encode_luminaire_table(name: str) -> None:
    assert encode_luminaire(PROFILES[name], READING, 2) == EXPECTED_REGISTERS[name]


@pytest.mark.parametrize("name", PROFILES)
def test_decode_luminaire_table(name: str) -> None:
    decoded = decode_luminaire(
        PROFILES[name], EXPECTED_REGISTERS[name], 2, address=Address(66), at=AT
    )
    assert decoded == replace(READING, address=Address(66), **DECODED[name])


@pytest.mark.parametrize(
    ("name", "registers", "block"),
    [
        (
            "reference",
            {0: 1, 1: 64, 2: 1, 3: 0x0001, 4: 0x86A0},
            GatewayBlock(1, 64, True, 100_000),
        ),
        ("reference", {0: 1, 1: 3, 2: 0, 3: 0, 4: 42}, GatewayBlock(1, 3, False, 42)),
        # Uptime in minutes, low word first.
        (
            "acme_dali_gw",
            {4000: 3, 4001: 64, 4002: 1, 4004: 1667, 4005: 0},
            GatewayBlock(3, 64, True, 100_020),
        ),
    ],
)
def test_gateway_block_table(name: str, registers: dict[int, int], block: GatewayBlock) -> None:
    profile = PROFILES[name]
    assert decode_gateway_block(profile, registers) == block
    assert encode_gateway_block(profile, block) == registers


def test_wrong_map_version_is_a_violation() -> None:
    with pytest.raises(RegisterViolation, match=r"register 0 \(map_version\) = 2") as info:
        decode_gateway_block(REFERENCE, {0: 2, 1: 64, 2: 1, 3: 0, 4: 0})
    assert info.value.register == 0


@pytest.mark.parametrize(
    ("name", "register", "value", "field"),
    [
        ("reference", 30, (101 << 8) | 1, "level_pct"),
        ("reference", 34, 1200, "power_factor"),
        ("reference", 32, 6000, "voltage_v"),
        ("reference", 523, 2000, "temperature_c"),
        ("acme_dali_gw", 1025, 255, "level_pct"),
        ("acme_dali_gw", 1033, 0x10000 - 80, "temperature_c"),
    ],
)
def test_implausible_registers_are_violations_naming_the_register(
    name: str, register: int, value: int, field: str
) -> None:
    regs = dict(EXPECTED_REGISTERS[name])
    regs[register] = value
    with pytest.raises(RegisterViolation, match=rf"register {register} \({field}\)") as info:
        decode_luminaire(PROFILES[name], regs, 2, address=Address(2), at=AT)
    assert isinstance(info.value, ProtocolViolation)
    assert (info.value.register, info.value.field) == (register, field)


def test_decode_telemetry_numbers_addresses_from_the_unit_start() -> None:
    regs: dict[int, int] = {}
    for short in range(3):
        regs.update(encode_luminaire(REFERENCE, READING, short))
    readings = decode_telemetry(REFERENCE, regs, AT, count=3, first_address=64)
    assert sorted(readings) == [64, 65, 66]
    assert readings[Address(65)].address == 65


# -- request plans ---------------------------------------------------------------------------


def test_reference_polls_64_luminaires_in_4_reads() -> None:
    plan = plan_reads(REFERENCE, 64, every_poll_only=True)
    assert len(plan) == 4
    assert all(r.count <= 125 for r in plan)
    assert plan[0].address == 0  # the gateway block rides along in the first read
    counters = plan_reads(REFERENCE, 64, gateway_block=False)
    assert len(counters) == 7  # 4 + the slow counters in 3 more


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("count", [0, 1, 17, 63, 64])
@pytest.mark.parametrize("every_poll_only", [False, True])
def test_plans_cover_every_record_unsplit_within_limits(
    name: str, count: int, every_poll_only: bool
) -> None:
    profile = PROFILES[name]
    plan = plan_reads(profile, count, every_poll_only=every_poll_only)
    assert all(1 <= r.count <= profile.max_read_registers for r in plan)
    covered = [range(r.address, r.end) for r in plan]
    for short in range(count):
        for block in profile.blocks:
            if every_poll_only and not block.every_poll:
                continue
            record = range(block.record(short), block.record(short) + block.stride)
            holders = [c for c in covered if record[0] in c]
            assert len(holders) == 1 and record[-1] in holders[0], (short, block.name)
    for spec in profile.gateway.values():
        assert any(spec.offset in c for c in covered)
    starts = [r.address for r in plan]
    assert starts == sorted(starts)
    assert all(a.end <= b.address for a, b in pairwise(plan))


def test_full_line_of_levels_is_one_write_with_the_fade() -> None:
    writes = encode_levels(REFERENCE, dict.fromkeys(range(64), 40), fade_s=2.5)
    assert len(writes) == 1
    assert writes[0].address == 0
    assert writes[0].values == (25, *([40] * 64))
    assert writes[0].shorts == tuple(range(64))


@pytest.mark.parametrize(
    ("name", "levels", "fade_s", "expected"),
    [
        ("reference", {3: 50, 4: 60, 9: 1}, None, [(4, (50, 60)), (10, (1,))]),
        ("reference", {3: 50, 4: 60, 9: 1}, 1.0, [(0, (10,)), (4, (50, 60)), (10, (1,))]),
        ("reference", {0: 7, 1: 8}, 0.0, [(0, (0, 7, 8))]),
        ("acme_dali_gw", {0: 7, 1: 8}, 0.0, [(90, (0,)), (100, (7, 8))]),
        ("acme_dali_gw", {63: 100}, 30.0, [(90, (30,)), (163, (100,))]),
        ("acme_dali_gw", {}, 30.0, []),
    ],
)
def test_encode_levels_table(
    name: str,
    levels: dict[int, int],
    fade_s: float | None,
    expected: list[tuple[int, tuple[int, ...]]],
) -> None:
    writes = encode_levels(PROFILES[name], levels, fade_s)
    assert [(w.address, w.values) for w in writes] == expected


def test_acme_splits_long_writes_at_its_limit() -> None:
    small = replace(ACME, max_write_registers=10)
    writes = encode_levels(small, dict.fromkeys(range(25), 1))
    assert [len(w.values) for w in writes] == [10, 10, 5]


def test_encode_levels_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        encode_levels(REFERENCE, {0: 101})
    with pytest.raises(ValueError, match="short address"):
        encode_levels(REFERENCE, {64: 1})
    with pytest.raises(ValueError, match="fade_s"):
        encode_levels(REFERENCE, {0: 1}, fade_s=10_000)


def test_decode_write_refuses_out_of_range_levels_and_other_registers() -> None:
    with pytest.raises(RegisterViolation, match="register 5") as info:
        decode_write(REFERENCE, 1, [10, 20, 30, 40, 101])
    assert info.value.register == 5
    with pytest.raises(ProtocolViolation, match="register 200 is not a command register"):
        decode_write(REFERENCE, 200, [1])
    assert decode_write(ACME, 90, [12]).fade_s == 12.0


# -- properties ------------------------------------------------------------------------------


def grid_value(profile: RegisterProfile, name: str, draw: st.DrawFn) -> float | int:
    """A value exactly on the map's grid, within its plausible range."""
    spec = profile.fields[name].spec
    low, high = spec.raw_min, spec.raw_max
    if spec.minimum is not None:
        low = max(low, int(spec.minimum / spec.scale))
    if spec.maximum is not None:
        high = min(high, int(spec.maximum / spec.scale))
    if name == "level_pct":
        high = min(high, 100)
    if name == "power_factor":
        high = min(high, round(1 / spec.scale))
    raw = draw(st.integers(min_value=max(low, spec.raw_min), max_value=high))
    if name in INTEGER_FIELDS:
        return round(raw * spec.scale)
    return round(raw * spec.scale, spec.decimals)


@st.composite
def grid_readings(draw: st.DrawFn, profile: RegisterProfile) -> Reading:
    values = {name: grid_value(profile, name, draw) for name in profile.fields if name != "flags"}
    return Reading(
        address=Address(draw(st.integers(0, 63))),
        at=AT,
        lamp_on=draw(st.booleans()),
        flags=frozenset(draw(st.sets(st.sampled_from(list(DeviceFlag))))),
        level_pct=int(values["level_pct"]),
        power_w=float(values["power_w"]),
        voltage_v=float(values["voltage_v"]),
        current_ma=int(values["current_ma"]),
        power_factor=float(values["power_factor"]),
        energy_wh=int(values["energy_wh"]),
        operating_hours=int(values["operating_hours"]),
        switch_on_count=int(values["switch_on_count"]),
        temperature_c=float(values["temperature_c"]),
    )


@pytest.mark.parametrize("name", PROFILES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_round_trip_on_the_grid_is_exact(name: str, data: st.DataObject) -> None:
    profile = PROFILES[name]
    reading = data.draw(grid_readings(profile))
    short = int(reading.address)
    regs = encode_luminaire(profile, reading, short)
    assert set(regs) == set(luminaire_registers(profile, short))
    assert all(0 <= v <= 0xFFFF for v in regs.values())
    assert decode_luminaire(profile, regs, short, address=reading.address, at=AT) == reading


@pytest.mark.parametrize("name", PROFILES)
@settings(max_examples=100, deadline=None)
@given(
    power=st.floats(0, 400),
    voltage=st.floats(0, 400),
    pf=st.floats(0, 1),
    temperature=st.floats(-30, 120),
)
def test_round_trip_off_the_grid_is_within_half_a_step(
    name: str, power: float, voltage: float, pf: float, temperature: float
) -> None:
    profile = PROFILES[name]
    reading = replace(
        READING, power_w=power, voltage_v=voltage, power_factor=pf, temperature_c=temperature
    )
    back = decode_luminaire(
        profile, encode_luminaire(profile, reading, 5), 5, address=Address(2), at=AT
    )
    for field in ("power_w", "voltage_v", "power_factor", "temperature_c"):
        step = profile.fields[field].spec.scale
        assert abs(getattr(back, field) - getattr(reading, field)) <= step / 2 + 1e-9, field


@pytest.mark.parametrize("name", PROFILES)
@settings(max_examples=100, deadline=None)
@given(
    levels=st.dictionaries(st.integers(0, 63), st.integers(0, 100), max_size=64),
    fade_steps=st.integers(0, 3000),
)
def test_levels_round_trip_through_the_writes(
    name: str, levels: dict[int, int], fade_steps: int
) -> None:
    profile = PROFILES[name]
    fade_s = fade_steps * profile.command.fade_scale_s
    seen: dict[int, int] = {}
    fades: list[float] = []
    writes = encode_levels(profile, levels, fade_s)
    for write in writes:
        assert len(write.values) <= profile.max_write_registers
        decoded = decode_write(profile, write.address, write.values)
        assert not (seen.keys() & decoded.levels.keys())  # each luminaire written once
        seen.update(decoded.levels)
        if decoded.fade_s is not None:
            assert not seen or fades or decoded.levels  # the fade goes first
            fades.append(decoded.fade_s)
    assert seen == levels
    if levels:
        assert fades == [pytest.approx(fade_s)]
    if levels and len(levels) == 64 and profile.command.fade_adjacent:
        assert len(writes) == 1
