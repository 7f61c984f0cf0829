"""What fault monitoring and alert delivery need from the rest of the controller.

Small structural interfaces, so that :mod:`controller.alerts` never imports the loop: the
loop's own types (``TargetBook``, ``GatewayState``, ``Controller``) satisfy them as they
are, and tests pass plain objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from controller.core.values import Address, Level


class Leadership(Protocol):
    """Whether this instance delivers alerts: in a cluster only the leader does, so nothing
    goes out twice."""

    @property
    def leader(self) -> bool: ...


class SoleInstance:
    """A controller running alone: always the leader."""

    @property
    def leader(self) -> bool:
        return True


class AlertPublisher(Protocol):
    """Publishes an alert on MQTT (the controller's link); raises
    :class:`controller.core.errors.GatewayUnavailable` when it cannot now."""

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None: ...


# --- the inventory and the loop's memory, as the fault rules read them -----------------------


class GatewayView(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def ward(self) -> str | None: ...
    @property
    def latitude(self) -> float | None: ...
    @property
    def longitude(self) -> float | None: ...


class LuminaireView(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def gateway_id(self) -> int: ...
    @property
    def ward(self) -> str: ...
    @property
    def street(self) -> str: ...
    @property
    def rated_power_w(self) -> float: ...
    @property
    def lamp_type_id(self) -> int: ...
    @property
    def latitude(self) -> float | None: ...
    @property
    def longitude(self) -> float | None: ...


class LampTypeView(Protocol):
    @property
    def rated_power_w(self) -> float: ...
    @property
    def power_tolerance_pct(self) -> float: ...
    @property
    def min_dim_level_pct(self) -> int: ...
    @property
    def nominal_voltage_v(self) -> float: ...


class Inventory(Protocol):
    """The inventory the faults are judged against (the loop's ``TargetBook``)."""

    @property
    def gateways(self) -> Mapping[int, GatewayView]: ...
    @property
    def luminaires(self) -> Mapping[int, LuminaireView]: ...
    @property
    def lamp_types(self) -> Mapping[int, LampTypeView]: ...


class CommandMemory(Protocol):
    """What the loop remembers of its last command to one luminaire."""

    @property
    def acked(self) -> Level | None: ...
    @property
    def fade_until(self) -> datetime | None: ...


class TargetLevel(Protocol):
    @property
    def level(self) -> Level: ...


class PolledGateway(Protocol):
    """One gateway as its loop knows it after a poll (the loop's ``GatewayState``)."""

    @property
    def info(self) -> GatewayView: ...
    @property
    def last_seen(self) -> datetime | None: ...
    @property
    def addresses(self) -> Mapping[Address, int]: ...
    @property
    def tracked(self) -> Mapping[Address, CommandMemory]: ...
    @property
    def targets(self) -> Mapping[Address, TargetLevel]: ...
