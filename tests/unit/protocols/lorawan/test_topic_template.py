"""Topic templates: fill, wildcard, parse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.lorawan.topic_template import TopicTemplate

T = TopicTemplate("application/{application_id}/device/{dev_eui}/event/{event}")


def test_fill_wildcard_parse() -> None:
    assert T.fill(application_id="a", dev_eui="e", event="up") == "application/a/device/e/event/up"
    assert T.wildcard(application_id="a") == "application/a/device/+/event/+"
    assert T.parse("application/a/device/e/event/up") == {
        "application_id": "a",
        "dev_eui": "e",
        "event": "up",
    }
    assert T.parse("application/a/device/e/event/up/x") is None
    assert T.parse("application/a/device//event/up") is None


def test_a_tail_spans_levels() -> None:
    tail = TopicTemplate("v3/{app}/devices/{device_id}/{kind...}")
    assert tail.parse("v3/a@t/devices/d/down/ack") == {
        "app": "a@t",
        "device_id": "d",
        "kind": "down/ack",
    }
    assert tail.wildcard(app="a") == "v3/a/devices/+/#"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("a/{x}/{x}", "appears twice"),
        ("a/+/{x}", "bad literal"),
        ("{x...}/a", "must end it"),
        ("/a/{x}", "not start with /"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TopicTemplate(template)


@pytest.mark.parametrize("value", ["", "a/b", "+", "#"])
def test_values_are_one_level(value: str) -> None:
    with pytest.raises(ValueError, match="one topic level"):
        T.fill(application_id=value, dev_eui="e", event="up")


def test_fill_needs_every_placeholder() -> None:
    with pytest.raises(ValueError, match="needs"):
        T.fill(application_id="a")


level = st.text(
    st.characters(blacklist_characters="/+#", blacklist_categories=("Cc", "Cs")),
    min_size=1,
    max_size=20,
)


@given(level, level, level)
def test_parse_inverts_fill(app: str, eui: str, event: str) -> None:
    assert T.parse(T.fill(application_id=app, dev_eui=eui, event=event)) == {
        "application_id": app,
        "dev_eui": eui,
        "event": event,
    }
