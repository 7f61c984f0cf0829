"""What a light is doing, in one word, from what it reports (pure).

The one rule behind the state summary API, the Prometheus gauge and the dashboard: the
word comes from the *actual* level the luminaire reports, not from its target.
"""

from __future__ import annotations

from enum import StrEnum


class LightState(StrEnum):
    ON = "on"
    DIMMED = "dimmed"
    OFF = "off"
    OFFLINE = "offline"


def light_state(*, online: bool, actual: int | None) -> LightState:
    """``offline`` when the luminaire (or its gateway) does not answer or has reported no
    level yet; otherwise ``on`` at 100 %, ``off`` at 0 % and ``dimmed`` in between."""
    if not online or actual is None:
        return LightState.OFFLINE
    if actual >= 100:
        return LightState.ON
    if actual > 0:
        return LightState.DIMMED
    return LightState.OFF
