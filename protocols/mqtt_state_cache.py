"""The MQTT link's view of each gateway, without I/O: a plain class fed with messages.

A :class:`StateCache` keeps, per gateway, the latest ``state`` and what the gateway last
said about itself (``availability``), and answers ``read`` from them: the latest reading,
or :class:`GatewayUnavailable` when there is none, the gateway says it is offline, or the
reading is older than ``stale_after_s``. Times are arguments (the link's clock), so every
rule is a unit test without a broker (tests/unit/protocols).

A state is decoded when it is read, not when it arrives: at scale most states are
replaced by the next one before the controller looks, and decoding them all would hold
up the acks behind them. A state that arrives while the gateway is offline is decoded at
once, because it may prove the gateway back (see :meth:`StateCache.on_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controller.core.errors import GatewayUnavailable
from controller.core.values import GatewayReading
from protocols.mqtt_codec import Availability, decode_state

__all__ = ["StateCache"]


@dataclass(slots=True)
class _Gateway:
    reading: GatewayReading | None = None
    received_at: datetime | None = None
    """When the state of ``reading`` arrived (staleness is judged on this)."""
    availability: Availability | None = None
    availability_at: datetime | None = None
    """When the latest availability notice arrived."""
    payload: bytes | None = None
    """The latest state, not decoded yet (a newer one may replace it first)."""
    payload_at: datetime | None = None


class StateCache:
    """Latest state and availability of every gateway heard from on one link."""

    def __init__(self, *, stale_after_s: float) -> None:
        if stale_after_s <= 0:
            raise ValueError("stale_after_s must be positive")
        self.stale_after_s = stale_after_s
        self._gateways: dict[str, _Gateway] = {}

    def _gateway(self, gateway_id: str) -> _Gateway:
        gateway = self._gateways.get(gateway_id)
        if gateway is None:
            gateway = self._gateways[gateway_id] = _Gateway()
        return gateway

    def on_state(self, gateway_id: str, payload: bytes, at: datetime) -> bool:
        """A ``state`` payload arrived at ``at``; True if it proves the gateway back online.

        Kept undecoded while the gateway is not offline. While it is offline, decoded
        at once (:class:`ProtocolViolation` if it breaks the contract): a state measured
        after the gateway was said to be offline means it is back, whatever order the
        broker replayed the notices in (a broker restart can deliver a stale Last Will
        after the retained ``online``).
        """
        gateway = self._gateway(gateway_id)
        if gateway.availability is not Availability.OFFLINE:
            gateway.payload, gateway.payload_at = payload, at
            return False
        reading = decode_state(payload)
        gateway.reading, gateway.received_at = reading, at
        gateway.payload = gateway.payload_at = None
        if gateway.availability_at is not None and reading.at > gateway.availability_at:
            gateway.availability, gateway.availability_at = Availability.ONLINE, at
            return True
        return False

    def on_availability(self, gateway_id: str, availability: Availability, at: datetime) -> bool:
        """An ``availability`` notice arrived at ``at``; True if it changes what we knew."""
        gateway = self._gateway(gateway_id)
        if availability is gateway.availability:
            return False
        gateway.availability, gateway.availability_at = availability, at
        return True

    def online(self, gateway_id: str) -> bool | None:
        """What the gateway last said about itself: True online, False offline, None unknown."""
        gateway = self._gateways.get(gateway_id)
        if gateway is None or gateway.availability is None:
            return None
        return gateway.availability is Availability.ONLINE

    def decode_latest(self, gateway_id: str) -> None:
        """Decode the state that arrived last, if not decoded yet (``read`` answers from it).

        :class:`ProtocolViolation` if it breaks the contract: it is dropped and the
        previous reading stands.
        """
        gateway = self._gateways.get(gateway_id)
        if gateway is None or gateway.payload is None:
            return
        payload, at = gateway.payload, gateway.payload_at
        gateway.payload = gateway.payload_at = None
        gateway.reading, gateway.received_at = decode_state(payload), at

    def read(self, gateway_id: str, now: datetime) -> GatewayReading:
        """The latest decoded reading (call :meth:`decode_latest` first), as of ``now``.

        :class:`GatewayUnavailable` if the gateway never reported a state, says it is
        offline, or its latest state arrived more than ``stale_after_s`` before ``now``.
        """
        gateway = self._gateways.get(gateway_id)
        if gateway is None or gateway.reading is None or gateway.received_at is None:
            raise GatewayUnavailable(f"MQTT gateway {gateway_id}: has not reported any state")
        if gateway.availability is Availability.OFFLINE:
            raise GatewayUnavailable(f"MQTT gateway {gateway_id}: reports itself offline")
        age_s = (now - gateway.received_at).total_seconds()
        if age_s > self.stale_after_s:
            raise GatewayUnavailable(
                f"MQTT gateway {gateway_id}: latest state is {age_s:.0f} s old "
                f"(limit {self.stale_after_s:g} s)"
            )
        return gateway.reading
