"""Arbitrary input: the engine raises only ProtocolViolation, profile loading only ConfigError."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.errors import ConfigError, ProtocolViolation
from controller.core.values import Address
from protocols.mapping.engine import MappingEngine
from protocols.mapping.profile import load_builtin_profile, parse_profile

ENGINE = MappingEngine(load_builtin_profile("tasmota-dimmer"), {"lamp1": Address(0)})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = ["POWER", "Dimmer", "ENERGY", "Power", "Total", "Current", "Voltage", "Factor"]
documents = st.dictionaries(
    st.sampled_from(KEYS),
    json_values | st.dictionaries(st.sampled_from(KEYS), json_values),
    max_size=5,
)


@settings(max_examples=300)
@given(
    st.sampled_from(
        ["stat/lamp1/RESULT", "tele/lamp1/STATE", "tele/lamp1/SENSOR", "tele/lamp1/LWT"]
    ),
    documents | st.binary(max_size=40),
)
def test_the_engine_on_arbitrary_payloads(topic: str, doc: dict[str, Any] | bytes) -> None:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with contextlib.suppress(ProtocolViolation):
        ENGINE.decode(topic, payload)


PROFILE_KEYS = [
    "name",
    "source",
    "states",
    "command",
    "availability",
    "topic",
    "fields",
    "flags",
    "path",
    "expr",
    "unit",
    "map",
    "payload",
    "off_command",
    "qos",
    "level_pct",
    "lamp_on",
]
profiles = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(PROFILE_KEYS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(PROFILE_KEYS), profiles, max_size=6))
def test_profile_loading_on_arbitrary_data(data: dict[str, Any]) -> None:
    with contextlib.suppress(ConfigError):
        parse_profile(data, "fuzz")
