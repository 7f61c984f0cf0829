"""Topic names of the MQTT contract."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.mqtt_topics import CONTROLLER_SUBSCRIPTIONS, TopicKind, Topics, check_gateway_id


def test_topics_under_a_prefix() -> None:
    topics = Topics("city/streetlight")
    assert topics.topic("gw-01", TopicKind.CMD) == "city/streetlight/gw/gw-01/cmd"
    assert topics.wildcard(TopicKind.STATE) == "city/streetlight/gw/+/state"
    assert [topics.wildcard(k) for k in CONTROLLER_SUBSCRIPTIONS] == [
        "city/streetlight/gw/+/ack",
        "city/streetlight/gw/+/state",
        "city/streetlight/gw/+/events",
        "city/streetlight/gw/+/availability",
    ]


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("streetlight/gw/gw-1/ack", ("gw-1", TopicKind.ACK)),
        ("streetlight/gw/gw-1/availability", ("gw-1", TopicKind.AVAILABILITY)),
        ("streetlight/gw/gw-1/telemetry", None),
        ("streetlight/gw/gw-1/ack/extra", None),
        ("streetlight/gw//ack", None),
        ("streetlight/gw/gw-1", None),
        ("other/gw/gw-1/ack", None),
        ("streetlight/gateway/gw-1/ack", None),
        ("streetlightx/gw/gw-1/ack", None),
    ],
)
def test_parse(topic: str, parsed: tuple[str, TopicKind] | None) -> None:
    assert Topics("streetlight").parse(topic) == parsed


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "tab\there", "x" * 129])
def test_gateway_ids_must_be_one_topic_level(bad: str) -> None:
    with pytest.raises(ValueError, match="gateway id"):
        check_gateway_id(bad)
    with pytest.raises(ValueError, match="gateway id"):
        Topics("streetlight").topic(bad, TopicKind.CMD)


@pytest.mark.parametrize("bad", ["", "/a", "a/", "a/+/b", "a#"])
def test_prefix_must_be_usable(bad: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        Topics(bad)


@given(
    st.text(
        st.characters(blacklist_characters="/+#", blacklist_categories=("Cc", "Cs")),
        min_size=1,
        max_size=128,
    ),
    st.sampled_from(list(TopicKind)),
)
def test_parse_inverts_topic(gateway_id: str, kind: TopicKind) -> None:
    topics = Topics("a/b")
    assert topics.parse(topics.topic(gateway_id, kind)) == (gateway_id, kind)
