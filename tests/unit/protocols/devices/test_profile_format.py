"""Loading profiles: what is refused, and that the error names the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.core.errors import ConfigError
from protocols.devices.profile import (
    Format,
    Order,
    RegisterType,
    load_builtin_profile,
    load_profile,
    parse_profile,
)

BASE: dict[str, Any] = {
    "name": "test_meter",
    "kind": "meter",
    "description": "a meter for tests",
    "source": {"manual": "Test manual", "pages": "p. 1"},
    "points": {"voltage": {"table": "input", "address": 0, "format": "f32", "unit": "V"}},
}


def profile_text(**changes: Any) -> str:
    data = {**BASE, **changes}
    return yaml.safe_dump(data)


def with_point(**fields: Any) -> str:
    return profile_text(points={"p": {"table": "holding", "address": 0, **fields}})


def refused(text: str, *fragments: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_profile(text, source="meter.yaml")
    message = str(caught.value)
    assert message.startswith("meter.yaml: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_minimal_profile_and_defaults() -> None:
    profile = parse_profile(with_point())
    point = profile.point("p")
    assert (point.table, point.format, point.count, point.read, point.write) == (
        RegisterType.HOLDING,
        Format.U16,
        1,
        3,
        None,
    )
    assert (point.word_order, point.byte_order, point.scale, point.offset) == (
        Order.BIG,
        Order.BIG,
        1.0,
        0.0,
    )
    coil = parse_profile(profile_text(points={"r": {"table": "coil", "address": 3}})).point("r")
    assert (coil.format, coil.read) == (Format.BOOL, 1)


def test_profile_word_order_is_inherited_unless_a_point_sets_its_own() -> None:
    text = profile_text(
        word_order="little",
        points={
            "a": {"table": "input", "address": 0, "format": "u32"},
            "b": {"table": "input", "address": 2, "format": "u32", "word_order": "big"},
        },
    )
    profile = parse_profile(text)
    assert profile.point("a").word_order is Order.LITTLE
    assert profile.point("b").word_order is Order.BIG


def test_models_are_frozen() -> None:
    profile = load_builtin_profile("eastron_sdm630")
    with pytest.raises(ValueError, match="frozen"):
        profile.point("l1_voltage").scale = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (with_point(table="register"), ["points.p.table", "coil"]),
        (with_point(read=4, table="input", write=6), ["points.p", "cannot write a input"]),
        (with_point(read=1), ["points.p", "read function 1 cannot read a holding"]),
        (with_point(format="f32", count=1), ["points.p", "count 1 does not match format f32"]),
        (with_point(format="u64", write=6), ["points.p", "writes one register; use 16"]),
        (with_point(format="bool"), ["points.p", "format bool does not fit table holding"]),
        (with_point(format="f32", flags={"x": 0}), ["points.p", "need an integer format"]),
        (with_point(shift=12, width=8), ["points.p", "exceed 16 bits"]),
        (with_point(flags={"x": 9}, width=8), ["points.p", "flags.x: bit 9"]),
        (with_point(width=8, write=16), ["points.p", "bit field"]),
        (with_point(scale=0), ["points.p", "scale must not be 0"]),
        (with_point(address=70000), ["points.p", "70000"]),
        (with_point(address="ch * 10"), ["points.p.address", "ch", "not declared"]),
        (with_point(address="open('x')"), ["points.p.address", "only integers"]),
        (with_point(semantic="ElectricalMeter.totalEnergy"), ["not a TALQ 2.7.1 attribute"]),
        (
            with_point(semantic="ElectricalMeter.totalActiveEnergy", unit="Wh"),
            ["unit 'Wh' differs from the unit of ElectricalMeter.totalActiveEnergy ('kWh')"],
        ),
        (with_point(colour="red"), ["points.p.colour", "Extra inputs"]),
        (profile_text(source={"manual": "M"}), ["source.pages", "Field required"]),
        (profile_text(points={}), ["points"]),
        (profile_text(name="Bad Name"), ["name"]),
        (profile_text(max_read_registers=126), ["max_read_registers"]),
        ("name: [unclosed", ["invalid YAML"]),
        ("- a list", ["a profile is a mapping"]),
    ],
)
def test_refused_with_file_and_field(text: str, fragments: list[str]) -> None:
    refused(text, *fragments)


def test_formula_checked_over_every_value_of_its_variables() -> None:
    text = profile_text(
        variables={"sa": {"min": 0, "max": 63}},
        points={"p": {"table": "holding", "address": "65000 + 10*sa"}},
    )
    refused(text, "points.p.address", "65540 at {'sa': 54}", "outside 0..65535")


def test_trigger_steps_must_name_a_writable_point_with_fewer_variables() -> None:
    variables = {"ch": {"max": 1}, "sa": {"max": 63}}
    status = {"table": "holding", "address": "7000*ch + 100*sa + 5"}
    refused(
        profile_text(
            variables=variables,
            points={"status": {**status, "before_read": [{"point": "nope", "value": 1}]}},
        ),
        "points.status.before_read[0].point",
        "no point named 'nope'",
    )
    refused(
        profile_text(
            variables=variables,
            points={
                "status": {**status, "before_read": [{"point": "trigger", "value": 1}]},
                "trigger": {"table": "holding", "address": "7000*ch + 4"},
            },
        ),
        "has no write function",
    )
    refused(
        profile_text(
            variables=variables,
            points={
                "level": {
                    "table": "holding",
                    "address": "7000*ch + 15",
                    "write": 6,
                    "after_write": [{"point": "trigger", "value": 1}],
                },
                "trigger": {"table": "holding", "address": "7000*ch + 100*sa + 4", "write": 6},
            },
        ),
        "needs sa",
    )


def test_fixed_points_of_one_table_may_not_overlap_except_as_disjoint_bit_fields() -> None:
    def points(**specs: dict[str, Any]) -> str:
        return profile_text(points=specs)

    refused(
        points(
            a={"table": "input", "address": 0, "format": "f32"},
            b={"table": "input", "address": 1},
        ),
        "points.b.address: overlaps points.a (input 0..1)",
    )
    refused(
        points(
            a={"table": "input", "address": 0, "width": 9},
            b={"table": "input", "address": 0, "shift": 8, "width": 8},
        ),
        "points.b.address: overlaps points.a",
    )
    # Disjoint bit fields of one register, and the same address in another table, are fine.
    parse_profile(
        points(
            flags={"table": "input", "address": 0, "width": 8},
            level={"table": "input", "address": 0, "shift": 8, "width": 8},
            setting={"table": "holding", "address": 0, "format": "f32"},
        )
    )


def test_a_trigger_value_must_be_one_its_target_takes() -> None:
    refused(
        profile_text(
            points={
                "level": {"table": "holding", "address": 15, "write": 6,
                          "after_write": [{"point": "apply", "value": 2}]},
                "apply": {"table": "holding", "address": 4, "write": 6, "min": 0, "max": 1},
            }
        ),
        "points.level.after_write[0].value: 2 is outside apply's 0.0..1.0",
    )  # fmt: skip


def test_load_profile_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "my_meter.yaml"
    path.write_text(with_point(read=1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"my_meter\.yaml: points\.p"):
        load_profile(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_profile(tmp_path / "missing.yaml")


def test_unknown_builtin_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="eastron_sdm630"):
        load_builtin_profile("nope")
