"""Mapping profiles: validation errors name the field; the shipped profiles load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.core.errors import ConfigError
from protocols.mapping.profile import (
    builtin_profile_names,
    load_builtin_profile,
    load_profile,
    parse_profile,
)


def minimal(**changes: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "name": "acme-lamp",
        "source": "ACME MQTT manual v2, section 4",
        "states": [{"topic": "acme/{device}/state", "fields": {"level_pct": {"path": "level"}}}],
        "command": {"topic": "acme/{device}/set", "payload": '{"level": {level}}'},
    }
    profile.update(changes)
    return profile


def test_a_minimal_profile_loads() -> None:
    profile = parse_profile(minimal(), "test")
    assert profile.name == "acme-lamp"
    assert profile.command.qos == 1


def test_every_builtin_profile_loads() -> None:
    assert "tasmota-dimmer" in builtin_profile_names()
    for name in builtin_profile_names():
        assert load_builtin_profile(name).name == name


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "Bad Name"}, "name: String should match pattern"),
        ({"source": ""}, "source: String should have at least 1 character"),
        ({"states": []}, "states: List should have at least 1 item"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        (
            {"states": [{"topic": "acme/{device}/state", "fields": {"level": {"path": "x"}}}]},
            "states.0.fields.level.\\[key\\]: Input should be 'lamp_on'",
        ),
        (
            {"states": [{"topic": "acme/{device}/state", "fields": {"level_pct": {}}}]},
            "states.0.fields.level_pct: Value error, give exactly one of path or expr",
        ),
        (
            {
                "states": [
                    {
                        "topic": "acme/{device}/state",
                        "fields": {"level_pct": {"path": "a", "expr": "b"}},
                    }
                ]
            },
            "give exactly one of path or expr",
        ),
        (
            {
                "states": [
                    {
                        "topic": "acme/{device}/state",
                        "fields": {"energy_wh": {"path": "e", "unit": "J"}},
                    }
                ]
            },
            "fields.energy_wh.unit: 'J' is not one of",
        ),
        (
            {"states": [{"topic": "acme/{device}/state", "fields": {"power_w": {"expr": "a +"}}}]},
            "states.0.fields.power_w.expr: Value error, expression 'a \\+' ends too early",
        ),
        (
            {"states": [{"topic": "acme/{device}/state", "fields": {"power_w": {"path": "a..b"}}}]},
            "states.0.fields.power_w.path: Value error, bad JSON path",
        ),
        (
            {"states": [{"topic": "acme/{site}/state", "fields": {"power_w": {"path": "p"}}}]},
            "states.0.topic: Value error, unknown placeholder\\(s\\) \\['site'\\]",
        ),
        (
            {"states": [{"topic": "acme/all/state", "fields": {"power_w": {"path": "p"}}}]},
            "states.0.topic: Value error, a topic must contain \\{device\\}",
        ),
        (
            {"states": [{"topic": "acme/{device}/state"}]},
            "states.0: Value error, a state topic must map at least one field or flag",
        ),
        (
            {"states": [{"topic": "acme/{device}/state", "flags": {"burning": {"path": "x"}}}]},
            "states.0.flags.burning.\\[key\\]: Input should be 'lampFailure'",
        ),
        (
            {"command": {"topic": "acme/{device}/set", "payload": "{level}", "qos": 3}},
            "command.qos: Input should be less than or equal to 2",
        ),
        (
            {"command": {"topic": "acme/{device}/set", "payload": "{value}", "value": "level *"}},
            "command.value: Value error",
        ),
        (
            {"availability": {"topic": "acme/{device}/state"}},
            "a topic is mapped twice: \\['acme/\\{device\\}/state'\\]",
        ),
    ],
)
def test_errors_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_profile(minimal(**changes), "test")


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_profile(minimal(name="", source=""), "acme.yaml")
    text = str(caught.value)
    assert text.startswith("mapping profile acme.yaml:")
    assert "name:" in text and "source:" in text


def test_yaml_and_toml_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "acme.yaml"
    yaml_file.write_text(
        "name: acme-lamp\nsource: manual\nstates:\n"
        "  - topic: 'acme/{device}/state'\n    fields: {level_pct: {path: level}}\n"
        "command: {topic: 'acme/{device}/set', payload: '{level}'}\n"
    )
    toml_file = tmp_path / "acme.toml"
    toml_file.write_text(
        'name = "acme-lamp"\nsource = "manual"\n'
        '[[states]]\ntopic = "acme/{device}/state"\nfields.level_pct.path = "level"\n'
        '[command]\ntopic = "acme/{device}/set"\npayload = "{level}"\n'
    )
    assert load_profile(yaml_file) == load_profile(toml_file)


def test_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_profile(bad)
    wrong = tmp_path / "x.json"
    wrong.write_text("{}")
    with pytest.raises(ConfigError, match=r"use \.yaml, \.yml or \.toml"):
        load_profile(wrong)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n")
    with pytest.raises(ConfigError, match="top level must be"):
        load_profile(listing)


def test_unknown_builtin() -> None:
    with pytest.raises(ConfigError, match="no built-in mapping profile 'nope'"):
        load_builtin_profile("nope")
