"""The MQTT link's state cache (protocols.mqtt_state_cache), without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.core.errors import GatewayUnavailable, ProtocolViolation
from controller.core.values import GatewayReading
from protocols.mqtt_codec import Availability, encode_state
from protocols.mqtt_state_cache import StateCache

T0 = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)


def state(measured_at: datetime, uptime_s: int = 60) -> bytes:
    return encode_state(GatewayReading(at=measured_at, mains_present=True, uptime_s=uptime_s))


def seconds(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def read(cache: StateCache, gateway_id: str, now: datetime) -> GatewayReading:
    cache.decode_latest(gateway_id)
    return cache.read(gateway_id, now)


def test_a_gateway_never_heard_from_is_unavailable() -> None:
    cache = StateCache(stale_after_s=60)
    assert cache.online("gw-1") is None
    with pytest.raises(GatewayUnavailable, match="gw-1: has not reported any state"):
        read(cache, "gw-1", T0)


def test_the_latest_state_is_read_until_it_is_stale() -> None:
    cache = StateCache(stale_after_s=60)
    assert not cache.on_state("gw-1", state(T0, uptime_s=1), seconds(0))
    assert not cache.on_state("gw-1", state(T0, uptime_s=2), seconds(10))
    assert read(cache, "gw-1", seconds(70)).uptime_s == 2  # 60 s after it arrived
    with pytest.raises(GatewayUnavailable, match=r"latest state is 61 s old \(limit 60 s\)"):
        read(cache, "gw-1", seconds(71))


def test_a_state_is_decoded_only_when_read() -> None:
    cache = StateCache(stale_after_s=60)
    assert not cache.on_state("gw-1", b"{not json", seconds(0))  # no error on arrival
    with pytest.raises(ProtocolViolation):
        cache.decode_latest("gw-1")
    cache.decode_latest("gw-1")  # dropped: not decoded (nor refused) twice


def test_a_malformed_state_leaves_the_last_good_one() -> None:
    cache = StateCache(stale_after_s=60)
    cache.on_state("gw-1", state(T0, uptime_s=7), seconds(0))
    assert read(cache, "gw-1", seconds(1)).uptime_s == 7
    cache.on_state("gw-1", b"{not json", seconds(5))
    with pytest.raises(ProtocolViolation):
        cache.decode_latest("gw-1")
    assert cache.read("gw-1", seconds(60)).uptime_s == 7  # and its age counts from 0 s
    with pytest.raises(GatewayUnavailable, match="61 s old"):
        cache.read("gw-1", seconds(61))


def test_a_gateway_that_says_it_is_offline_is_unavailable() -> None:
    cache = StateCache(stale_after_s=60)
    cache.on_state("gw-1", state(T0), seconds(0))
    assert cache.on_availability("gw-1", Availability.ONLINE, seconds(0))
    assert not cache.on_availability("gw-1", Availability.ONLINE, seconds(1))  # no change
    assert cache.online("gw-1") is True
    assert cache.on_availability("gw-1", Availability.OFFLINE, seconds(2))
    assert cache.online("gw-1") is False
    with pytest.raises(GatewayUnavailable, match="gw-1: reports itself offline"):
        read(cache, "gw-1", seconds(3))


def test_a_state_measured_after_the_offline_notice_brings_the_gateway_back() -> None:
    cache = StateCache(stale_after_s=60)
    cache.on_availability("gw-1", Availability.OFFLINE, seconds(10))
    # Measured before the notice (replayed by the broker, say): still offline.
    assert not cache.on_state("gw-1", state(seconds(5)), seconds(11))
    assert cache.online("gw-1") is False
    # Measured after it: back, as of its arrival.
    assert cache.on_state("gw-1", state(seconds(12), uptime_s=3), seconds(13))
    assert cache.online("gw-1") is True
    assert read(cache, "gw-1", seconds(73)).uptime_s == 3
    with pytest.raises(GatewayUnavailable, match="61 s old"):
        read(cache, "gw-1", seconds(74))


def test_a_state_while_offline_is_decoded_at_once() -> None:
    cache = StateCache(stale_after_s=60)
    cache.on_availability("gw-1", Availability.OFFLINE, seconds(0))
    with pytest.raises(ProtocolViolation):
        cache.on_state("gw-1", b"{not json", seconds(1))
    assert cache.online("gw-1") is False


def test_gateways_are_kept_apart() -> None:
    cache = StateCache(stale_after_s=60)
    cache.on_state("gw-1", state(T0, uptime_s=1), seconds(0))
    cache.on_availability("gw-2", Availability.OFFLINE, seconds(0))
    assert read(cache, "gw-1", seconds(1)).uptime_s == 1
    assert cache.online("gw-1") is None
    with pytest.raises(GatewayUnavailable, match="gw-2: has not reported any state"):
        read(cache, "gw-2", seconds(1))


def test_stale_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        StateCache(stale_after_s=0)
