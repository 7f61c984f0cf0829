"""Energy accounting, pure: counter deltas (wrap and reset), power integration, baseline.

A luminaire's energy comes from its device counter (Wh, monotonic, 32-bit on the
reference Modbus map). Between two readings the consumed energy is the counter
delta, with two traps:

* **wrap**: the counter passed 2**32 - 1 and started again from 0;
* **reset**: the driver was replaced or reset and the counter restarted near 0.

Both show as a decrease. A decrease from near the top of the range to near the
bottom is a wrap; any other decrease is a reset, and then the new value is the
energy since the reset (the part before it, since the previous reading, is lost
and is estimated from power instead). When a device has no counter, energy is
the trapezoid of reported power over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

COUNTER_MODULUS = 1 << 32
"""Range of a 32-bit Wh counter."""
WRAP_WINDOW = 1 << 24
"""A decrease counts as a wrap only when the old value was within this of the top and the new
value within this of zero (16.7 MWh: far more than a luminaire uses between two polls)."""
MAX_GAP_S = 3600.0
"""Readings further apart than this are not integrated by power (the luminaire's state
in between is unknown); counter deltas are still used."""


@dataclass(frozen=True, slots=True)
class Sample:
    """The part of a reading energy accounting needs."""

    at: datetime
    energy_wh: int | None
    power_w: float


@dataclass(frozen=True, slots=True)
class Delta:
    """Energy between two samples and how it was obtained."""

    energy_wh: float
    method: str  # "counter", "counter_wrap", "counter_reset", "power", "none"


def counter_delta(previous: int, current: int, modulus: int = COUNTER_MODULUS) -> tuple[int, str]:
    """Wh consumed between two counter values, and whether it wrapped or was reset."""
    if current >= previous:
        return current - previous, "counter"
    if previous >= modulus - WRAP_WINDOW and current < WRAP_WINDOW:
        return modulus - previous + current, "counter_wrap"
    return current, "counter_reset"


def power_delta_wh(previous: Sample, current: Sample) -> float:
    """Trapezoid of power over the interval, in Wh (0 for gaps over MAX_GAP_S or backwards)."""
    seconds = (current.at - previous.at).total_seconds()
    if seconds <= 0 or seconds > MAX_GAP_S:
        return 0.0
    return (previous.power_w + current.power_w) / 2.0 * seconds / 3600.0


def energy_between(previous: Sample, current: Sample) -> Delta:
    """Energy from ``previous`` to ``current``: by counter when both have one, else by power."""
    if previous.energy_wh is not None and current.energy_wh is not None:
        wh, method = counter_delta(previous.energy_wh, current.energy_wh)
        return Delta(float(wh), method)
    wh_f = power_delta_wh(previous, current)
    return Delta(wh_f, "power" if wh_f > 0 else "none")


def baseline_wh(rated_power_w: float, burning_seconds: float) -> float:
    """What the same luminaire would have used at 100 % for the given burning time."""
    return rated_power_w * max(0.0, burning_seconds) / 3600.0


def co2_kg(energy_wh: float, t_per_mwh: float) -> float:
    """CO2 in kg for an energy in Wh at a grid factor in tCO2/MWh (== kg/kWh)."""
    return energy_wh / 1000.0 * t_per_mwh
