"""Loading register-map profiles: the shipped ones load, broken ones are refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.core.errors import ConfigError
from protocols.register_map import (
    Table,
    WordOrder,
    builtin_profile_names,
    load_builtin_profile,
    load_profile,
    parse_profile,
)

PROFILE_DIR = Path(__file__).resolve().parents[3] / "protocols" / "profiles"
REFERENCE_TEXT = (PROFILE_DIR / "reference.toml").read_text(encoding="utf-8")


def test_shipped_profiles() -> None:
    assert {"reference", "acme_dali_gw"} <= set(builtin_profile_names())
    ref = load_builtin_profile("reference")
    acme = load_builtin_profile("acme_dali_gw")
    assert (ref.read_table, acme.read_table) == (Table.INPUT, Table.HOLDING)
    assert ref.fields["energy_wh"].spec.word_order is WordOrder.BIG
    assert acme.fields["energy_wh"].spec.word_order is WordOrder.LITTLE
    assert ref.command.fade_adjacent and not acme.command.fade_adjacent
    assert load_profile(PROFILE_DIR / "reference.toml") == ref


def test_unknown_builtin_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="reference"):
        load_builtin_profile("nope")


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_profile(PROFILE_DIR / "missing.toml")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "max_read_gap = 16",
            "max_read_gap = 16\nmax_reed = 3",
            r"profile: unknown key\(s\) max_reed",
        ),
        ('read_table = "input"', 'read_table = "coils"', r"profile\.read_table"),
        ("power_w = { block", "power_w = { width = 24, block", r"fields\.power_w\.width"),
        (
            'power_w = { block = "status", offset = 1',
            'power_w = { block = "status", offset = 0',
            r"fields\.power_w.*overlaps fields\.flags",
        ),
        (
            'energy_wh = { block = "status", offset = 5',
            'energy_wh = { block = "status", offset = 6',
            r"fields\.energy_wh: does not fit",
        ),
        ("base = 512", "base = 400", r"block counters.*overlaps block status"),
        (
            "supply_fault = 5",
            "supply_fault = 4",
            r"flag_bits\.supply_fault: bit 4 is assigned twice",
        ),
        ("supply_fault = 5", "supply_fault = 8", r"flag_bits\.supply_fault: must be 0\.\.7"),
        ("fade_address = 0 ", "fade_address = 5 ", r"command\.fade_address: overlaps"),
        ("level_base = 1 ", "level_base = 65500 ", r"command\.level_base: must be"),
        (
            '{ block = "status", offset = 2, scale = 0.1',
            '{ block = "status", offset = 2, scale = -1',
            r"voltage_v\.scale",
        ),
        (
            'block = "counters", offset = 2 }',
            'block = "kounters", offset = 2 }',
            r"no block named 'kounters'",
        ),
        (
            "uptime_s = { address = 3",
            "uptime_s = { offset = 3",
            r"gateway\.uptime_s: use 'address'",
        ),
        ("map_version = 1\n", "", r"profile\.map_version: required"),
    ],
)
def test_broken_profiles_are_refused_naming_the_key(old: str, new: str, message: str) -> None:
    assert old in REFERENCE_TEXT
    with pytest.raises(ConfigError, match=message):
        parse_profile(REFERENCE_TEXT.replace(old, new, 1), source="broken.toml")


def test_missing_field_is_refused() -> None:
    text = "\n".join(
        line for line in REFERENCE_TEXT.splitlines() if not line.startswith("current_ma")
    )
    with pytest.raises(ConfigError, match=r"fields\.current_ma: required"):
        parse_profile(text)


def test_invalid_toml() -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        parse_profile("[profile\nname=", source="x.toml")
