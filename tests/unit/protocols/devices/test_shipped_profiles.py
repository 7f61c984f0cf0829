"""Every shipped profile against register values decoded by hand from its manual.

The register words in these tables are written out literally. Each was worked out from the
manual's own conventions (IEEE-754 single precision, most significant register first, the
device's scaler), and the comment gives the check (``struct.pack(">f", 230.1).hex()``), so
a table entry does not come from this package's encoder. A device "memory" answers the
planned reads (tests/unit/protocols/devices/memory.py); the decoded reading must be the
value the manual says.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import pytest

from protocols.devices.codec import (
    PointKey,
    Reading,
    decode,
    encode_point,
    key,
    plan_reads,
    plan_writes,
    polled_keys,
    record_keys,
)
from protocols.devices.profile import DeviceProfile, builtin_profile_names, load_builtin_profile
from tests.unit.protocols.devices.memory import answer

FC01, FC02, FC03, FC04 = 1, 2, 3, 4


def read_all(
    profile: DeviceProfile,
    memory: Mapping[tuple[int, int], int | bool],
    keys: list[PointKey] | None = None,
) -> dict[PointKey, Reading]:
    plan = plan_reads(profile, keys)
    return decode(profile, plan.reads, [answer(r, memory) for r in plan.reads])


def test_the_table_words_are_the_ieee754_values_they_claim() -> None:
    # The premise of the float tables below, checked once with the standard library.
    assert struct.pack(">f", 230.1).hex() == "4366199a"
    assert struct.pack(">f", 12345.5).hex() == "4640e600"
    assert struct.pack(">f", 1840.0).hex() == "44e60000"
    assert struct.pack(">f", 2301.0).hex() == "450fd000"
    assert struct.pack(">f", 18400.0).hex() == "468fc000"
    assert struct.pack(">f", 60.0).hex() == "42700000"


def test_every_shipped_profile_loads_and_cites_its_source() -> None:
    names = builtin_profile_names()
    assert set(names) >= {
        "eastron_sdm630",
        "eastron_sdm120",
        "schneider_iem3000",
        "chint_dtsu666",
        "moxa_iologik_e1214",
        "intesis_dali",
        "streetlight_reference",
    }
    for name in names:
        profile = load_builtin_profile(name)
        assert profile.name == name
        assert profile.source.manual and profile.source.pages


# -- Eastron SDM630: input registers, f32, big word and byte order (manual p. 2) ------------

SDM630 = load_builtin_profile("eastron_sdm630")
SDM630_MEMORY = {
    (FC04, 0x0000): 0x4366, (FC04, 0x0001): 0x199A,  # L1 230.1 V   ('4366199a')
    (FC04, 0x0034): 0x44E6, (FC04, 0x0035): 0x0000,  # total 1840 W ('44e60000') = 1.84 kW
    (FC04, 0x0046): 0x4248, (FC04, 0x0047): 0x0000,  # 50.0 Hz      ('42480000')
    (FC04, 0x0156): 0x4640, (FC04, 0x0157): 0xE600,  # 12345.5 kWh  ('4640e600')
    (FC04, 0x0166): 0x3FC0, (FC04, 0x0167): 0x0000,  # L1 1.5 kWh   ('3fc00000')
}  # fmt: skip


@pytest.mark.parametrize(
    ("point", "value", "unit", "semantic"),
    [
        ("l1_voltage", 230.1, "V", "ElectricalMeter.phase1Voltage"),
        ("total_power", 1.84, "kW", "ElectricalMeter.totalPower"),
        ("frequency", 50.0, "Hz", "ElectricalMeter.frequency"),
        ("total_energy", 12345.5, "kWh", "ElectricalMeter.totalActiveEnergy"),
        ("l1_energy", 1.5, "kWh", "ElectricalMeter.phase1ActiveEnergy"),
        ("l2_voltage", 0.0, "V", "ElectricalMeter.phase2Voltage"),
    ],
)
def test_sdm630_hand_table(point: str, value: float, unit: str, semantic: str) -> None:
    reading = read_all(SDM630, SDM630_MEMORY)[key(point)]
    assert reading.value == pytest.approx(value, rel=1e-6)
    assert (reading.unit, reading.semantic) == (unit, semantic)


def test_sdm630_poll_is_three_reads_of_fc04() -> None:
    plan = plan_reads(SDM630)
    assert [(r.function, r.address, r.count) for r in plan.reads] == [
        (4, 0x0000, 76),  # 0x0000..0x004B: phases, totals, frequency, import/export
        (4, 0x00E0, 16),  # neutral current, voltage THD
        (4, 0x0156, 22),  # energies
    ]
    assert plan.before == ()


def test_sdm630_holding_examples_of_the_manual_p12() -> None:
    # Read example: Demand Time answers 3F 80 00 00 = 1.
    plan = plan_reads(SDM630, [key("demand_time")])
    assert [(r.function, r.address, r.count) for r in plan.reads] == [(3, 0x0000, 2)]
    readings = decode(SDM630, plan.reads, [[0x3F80, 0x0000]])
    assert readings[key("demand_time")].value == 1.0
    # Write example: Demand Period 60 is FC16 at 0x0002 with 42 70 00 00.
    writes = plan_writes(SDM630, {key("demand_period"): 60})
    assert [(w.function, w.address, w.values) for w in writes] == [(16, 0x0002, (0x4270, 0x0000))]


def test_sdm630_settings_go_one_parameter_per_message() -> None:
    # "Write to only one parameter per message" (p. 5): adjacent settings are not merged.
    writes = plan_writes(SDM630, {key("password"): 1000, key("baud_rate"): 2})
    assert [(w.function, w.address, len(w.values)) for w in writes] == [
        (16, 0x0018, 2),
        (16, 0x001C, 2),
    ]


# -- Eastron SDM120 --------------------------------------------------------------------------

SDM120 = load_builtin_profile("eastron_sdm120")


def test_sdm120_hand_table() -> None:
    memory = {
        (FC04, 0x0000): 0x4365, (FC04, 0x0001): 0xCCCD,  # 229.8 V ('4365cccd')
        (FC04, 0x001E): 0x3F73, (FC04, 0x001F): 0x3333,  # PF 0.95 ('3f733333')
        (FC04, 0x0156): 0x4640, (FC04, 0x0157): 0xE600,  # 12345.5 kWh
    }  # fmt: skip
    readings = read_all(SDM120, memory)
    assert readings[key("voltage")].value == pytest.approx(229.8, rel=1e-6)
    assert readings[key("power_factor")].value == pytest.approx(0.95, rel=1e-6)
    assert readings[key("total_energy")].value == pytest.approx(12345.5)
    assert readings[key("total_energy")].semantic == "ElectricalMeter.totalActiveEnergy"
    assert len(plan_reads(SDM120).reads) == 2


# -- Schneider iEM3xxx: holding, f32 and int64 Wh ---------------------------------------------

IEM = load_builtin_profile("schneider_iem3000")


def test_iem3000_int64_energy_across_four_registers() -> None:
    # 123 456 789 Wh = 0x00000000_075BCD15, most significant register first.
    memory = {
        (FC03, 0x0C83): 0x0000, (FC03, 0x0C84): 0x0000,
        (FC03, 0x0C85): 0x075B, (FC03, 0x0C86): 0xCD15,
        (FC03, 0x0BD3): 0x4367, (FC03, 0x0BD4): 0x0000,  # L1-N 231.0 V ('43670000')
        (FC03, 0x0BF3): 0x4060, (FC03, 0x0BF4): 0x0000,  # total 3.5 kW ('40600000')
    }  # fmt: skip
    readings = read_all(IEM, memory)
    energy = readings[key("import_energy")]
    assert energy.raw == 123_456_789
    assert energy.value == pytest.approx(123_456.789)
    assert (energy.unit, energy.semantic) == ("kWh", "ElectricalMeter.totalActiveEnergy")
    assert readings[key("l1_voltage")].value == 231.0
    assert readings[key("total_power")].value == 3.5


def test_iem3000_negative_int64_is_signed() -> None:
    # Export register with -1 Wh (all ones): s64 two's complement.
    plan = plan_reads(IEM, [key("export_energy")])
    readings = decode(IEM, plan.reads, [[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF]])
    assert readings[key("export_energy")].raw == -1


def test_iem3000_poll_is_six_reads() -> None:
    assert len(plan_reads(IEM).reads) == 6


# -- Chint DTSU666: holding, f32 with a scaler ------------------------------------------------

DTSU = load_builtin_profile("chint_dtsu666")


def test_dtsu666_floats_with_their_scalers() -> None:
    memory = {
        (FC03, 0x2006): 0x450F, (FC03, 0x2007): 0xD000,  # 2301.0 ('450fd000') / 10 = 230.1 V
        (FC03, 0x200C): 0x449A, (FC03, 0x200D): 0x4000,  # 1234.0 ('449a4000') / 1000 = 1.234 A
        (FC03, 0x2012): 0x468F, (FC03, 0x2013): 0xC000,  # 18400.0 ('468fc000') 0.1 W = 1.84 kW
        (FC03, 0x2044): 0x459C, (FC03, 0x2045): 0x4000,  # 5000.0 ('459c4000') / 100 = 50 Hz
        (FC03, 0x101E): 0x4640, (FC03, 0x101F): 0xE600,  # 12345.5 kWh, no scaler
    }  # fmt: skip
    readings = read_all(DTSU, memory)
    assert readings[key("l1_voltage")].value == pytest.approx(230.1)
    assert readings[key("l1_voltage")].raw == 2301.0
    assert readings[key("l1_current")].value == pytest.approx(1.234)
    assert readings[key("total_power")].value == pytest.approx(1.84)
    assert readings[key("frequency")].value == pytest.approx(50.0)
    assert readings[key("import_energy")].value == 12345.5


# -- Moxa ioLogik E1214: coils and discrete inputs --------------------------------------------

E1214 = load_builtin_profile("moxa_iologik_e1214")


def test_e1214_coil_and_input_bits() -> None:
    relays = [True, False, True, False, False, True]
    inputs = [False, True, False, False, True, False]
    memory: dict[tuple[int, int], int | bool] = {}
    memory.update({(FC01, i): bit for i, bit in enumerate(relays)})
    memory.update({(FC02, i): bit for i, bit in enumerate(inputs)})
    plan = plan_reads(E1214)
    assert [(r.function, r.address, r.count) for r in plan.reads] == [(1, 0, 6), (2, 0, 6)]
    readings = decode(E1214, plan.reads, [answer(r, memory) for r in plan.reads])
    assert [readings[key(f"relay_{i}")].value for i in range(6)] == relays
    assert [readings[key(f"di_{i}")].value for i in range(6)] == inputs


def test_e1214_switching_two_adjacent_relays_is_one_fc15() -> None:
    writes = plan_writes(E1214, {key("relay_1"): True, key("relay_2"): False})
    assert [(w.function, w.address, w.values) for w in writes] == [(15, 1, (True, False))]


# -- Intesis DALI: formulas over ch / sa / gr, status bits, write-then-trigger --------------

INTESIS = load_builtin_profile("intesis_dali")


def test_intesis_status_bits_and_level_of_ballast_5_on_channel_1() -> None:
    # 7000*1 + 100*5 + 5 = 7505 status, + 6 = 7506 actual level (manual p. 10).
    memory = {(FC03, 7505): 0b0000_0110, (FC03, 7506): 50}  # b1 LampFail, b2 LampPwrOn; 50 %
    keys = list(record_keys(INTESIS, ch=1, sa=5))
    assert set(keys) == {key("ballast_status", ch=1, sa=5), key("actual_level", ch=1, sa=5)}
    plan = plan_reads(INTESIS, keys)
    assert [(r.function, r.address, r.count) for r in plan.reads] == [(3, 7505, 2)]
    readings = decode(INTESIS, plan.reads, [answer(r, memory) for r in plan.reads])
    status = readings[key("ballast_status", ch=1, sa=5)]
    assert status.flags["lamp_failure"] is True
    assert status.flags["lamp_power_on"] is True
    assert status.flags["ballast_failure"] is False
    assert readings[key("actual_level", ch=1, sa=5)].value == 50
    assert readings[key("actual_level", ch=1, sa=5)].semantic == "LampActuator.actualLightState"


def test_intesis_status_poll_triggers_update_once_per_channel() -> None:
    keys = [k for sa in range(64) for k in record_keys(INTESIS, ch=0, sa=sa)]
    plan = plan_reads(INTESIS, keys)
    # "Update All ECG Status" n=4: write 1 (FC06) at 7000*0 + 4, once, before the reads.
    assert [(w.function, w.address, w.values) for w in plan.before] == [(6, 4, (1,))]
    assert len(plan.reads) == 64  # records 100 registers apart; no gap reading is assumed


def test_intesis_level_group_and_broadcast_addresses() -> None:
    writes = plan_writes(
        INTESIS,
        {
            key("arc_power_level", ch=0, sa=12): 75,  # 7000*0 + 100*12 + 15 = 1215
            key("group_arc_power_level", ch=1, gr=3): 40,  # 7000 + 6400 + 20*3 = 13460
            key("broadcast_arc_power_level", ch=0): 0,  # 6800
        },
    )
    assert sorted((w.function, w.address, w.values) for w in writes) == [
        (6, 1215, (75,)),
        (6, 6800, (0,)),
        (6, 13460, (40,)),
    ]


def test_intesis_d4i_energy_of_ballast_2() -> None:
    # 25000 + 3200*0 + 100*2 + 34 = 25234: 1 234 567 Wh = 0x0012_D687.
    at = key("active_energy", ch=0, sa=2)
    plan = plan_reads(INTESIS, [at])
    assert [(r.address, r.count) for r in plan.reads] == [(25234, 2)]
    reading = decode(INTESIS, plan.reads, [[0x0012, 0xD687]])[at]
    assert reading.raw == 1_234_567
    assert reading.value == pytest.approx(1234.567)
    assert reading.semantic == "EnergyDataDaliPart252.activeEnergy"


# -- The reference luminaire gateway ----------------------------------------------------------

REFERENCE = load_builtin_profile("streetlight_reference")


def test_reference_record_of_short_address_2() -> None:
    # docs/protocol/modbus.md §2: status record of s at 16 + 7*s, so s = 2 starts at 30.
    memory = {
        (FC04, 0): 1,  # map version
        (FC04, 30): 0x5001,  # level 80 % (high byte), flags 0x01 = lamp_on (low byte)
        (FC04, 31): 500,  # 50.0 W
        (FC04, 32): 2300,  # 230.0 V
        (FC04, 33): 218,  # 218 mA
        (FC04, 34): 950,  # PF 0.950
        (FC04, 35): 0x0001, (FC04, 36): 0x86A0,  # 100 000 Wh, high word first
    }  # fmt: skip
    keys = [*polled_keys(REFERENCE), *record_keys(REFERENCE, s=2)]
    readings = read_all(REFERENCE, memory, keys)
    assert readings[key("map_version")].value == 1
    assert readings[key("level", s=2)].value == 80
    flags = readings[key("flags", s=2)].flags
    assert flags["lamp_on"] is True
    assert not any(v for k, v in flags.items() if k != "lamp_on")
    assert readings[key("power", s=2)].value == pytest.approx(50.0)
    assert readings[key("voltage", s=2)].value == pytest.approx(230.0)
    assert readings[key("current", s=2)].value == pytest.approx(0.218)
    assert readings[key("power_factor", s=2)].value == pytest.approx(0.95)
    assert readings[key("energy", s=2)].value == pytest.approx(100.0)
    assert readings[key("energy", s=2)].unit == "kWh"


def test_reference_full_line_poll_is_the_documented_four_reads() -> None:
    # docs/protocol/modbus.md §3: 0..120, 121..239, 240..358, 359..463.
    keys = [*polled_keys(REFERENCE), *(k for s in range(64) for k in record_keys(REFERENCE, s=s))]
    plan = plan_reads(REFERENCE, keys)
    assert [(r.address, r.count) for r in plan.reads] == [
        (0, 121),
        (121, 119),
        (240, 119),
        (359, 105),
    ]


def test_reference_level_write_is_one_fc16_for_a_line() -> None:
    values = {key("fade_time"): 2.5} | {key("level_command", s=s): 60 for s in range(64)}
    writes = plan_writes(REFERENCE, values)
    assert len(writes) == 1
    assert (writes[0].function, writes[0].address, len(writes[0].values)) == (16, 0, 65)
    assert writes[0].values[:3] == (25, 60, 60)


def test_encoding_an_sdm630_voltage_gives_the_manual_words() -> None:
    # The other direction of the first table row, for the fake devices to serve.
    assert encode_point(SDM630.point("l1_voltage"), 230.1) == (0x4366, 0x199A)
