"""Which commanded levels a LoRaWAN node has not yet confirmed: a tracker without I/O.

A class A node hears a downlink only after its next uplink, so a command can wait
minutes, and the server's events tell different things (see
:class:`~protocols.lorawan.events.DownlinkStage`): ``SENT`` (ChirpStack ``txack``)
only means a gateway took it. The tracker keeps, per device, the one downlink in
flight and settles it when

* the node acknowledges it (``ACKED``: a confirmed downlink), or
* an uplink reports the levels it commanded (``expected``: what the node will
  *report* after applying it, e.g. 100 for a WS558 relay commanded to 70).

Until then the levels stay pending. A newer command for the device replaces the
pending one (one downlink per node, never a stack). A downlink not settled
within the device's expected latency (its uplink interval and a margin), or
refused (``NOT_ACKED``, ``FAILED``), is *due*: the bridge sends the current
desired state again, once, and the tracker starts waiting again. The clock is an
argument; events for another correlation (a replaced downlink) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from controller.core.values import Address, Level
from protocols.lorawan.codec import Telemetry
from protocols.lorawan.events import DownlinkEvent, DownlinkStage


class Settlement(StrEnum):
    """Why a pending downlink stopped being pending."""

    ACKNOWLEDGED = "acknowledged"
    """The node confirmed the (confirmed) downlink."""
    REPORTED = "reported"
    """An uplink showed every commanded level."""


@dataclass(frozen=True, slots=True)
class Pending:
    """The downlink in flight for one device."""

    correlation: str
    expected: Mapping[Address, Level]
    queued_at: datetime
    stage: DownlinkStage | None = None
    """The furthest stage heard of; ``None`` until the server says anything."""
    refused: bool = False


@dataclass(frozen=True, slots=True)
class Settled:
    device: str
    correlation: str
    how: Settlement


class DownlinkTracker:
    """One pending downlink per device, settled by an ack or by an uplink that shows it."""

    def __init__(self, latency: timedelta) -> None:
        if latency <= timedelta(0):
            raise ValueError(f"latency must be positive, got {latency}")
        self.latency = latency
        self._pending: dict[str, Pending] = {}

    def queue(
        self, device: str, correlation: str, expected: Mapping[Address, Level], at: datetime
    ) -> None:
        """A downlink was published for ``device``; it replaces any pending one."""
        if not expected:
            raise ValueError("a downlink must command at least one level")
        self._pending[device] = Pending(correlation, dict(expected), at)

    def pending(self, device: str) -> Pending | None:
        return self._pending.get(device)

    def on_downlink_event(self, device: str, event: DownlinkEvent) -> Settled | None:
        current = self._pending.get(device)
        if current is None or event.correlation != current.correlation:
            return None  # a replaced downlink, or one we did not send
        if event.stage is DownlinkStage.ACKED:
            del self._pending[device]
            return Settled(device, current.correlation, Settlement.ACKNOWLEDGED)
        refused = event.stage in (DownlinkStage.NOT_ACKED, DownlinkStage.FAILED)
        self._pending[device] = replace(
            current, stage=event.stage, refused=current.refused or refused
        )
        return None

    def on_uplink(self, device: str, luminaires: Mapping[Address, Telemetry]) -> Settled | None:
        current = self._pending.get(device)
        if current is None:
            return None
        for address, level in current.expected.items():
            reported = luminaires.get(address)
            if reported is None or reported.level_pct != level:
                return None
        del self._pending[device]
        return Settled(device, current.correlation, Settlement.REPORTED)

    def due(self, now: datetime) -> tuple[str, ...]:
        """Devices whose downlink was refused or has waited longer than the latency."""
        return tuple(
            sorted(
                device
                for device, p in self._pending.items()
                if p.refused or now - p.queued_at > self.latency
            )
        )
