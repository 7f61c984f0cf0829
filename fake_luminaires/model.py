"""A pure model of luminaires behind a gateway: physics and faults, no I/O, no clock.

Both fronts (Modbus and MQTT) serve this one model. Every method that depends on
time takes the instant as an argument, so an accelerated clock only passes later
instants and a whole night is a unit test.

Physics, per luminaire (stated here so tests and fault rules can rely on it):

* The driver output level ``L`` (0..100 %) follows the command with a linear fade
  over ``fade_s`` seconds from wherever it was when the command arrived.
* Lamp lit: ``P = rated_w x trim x (0.08 + 0.92 x L/100)`` (an LED driver is roughly
  linear with a small floor), where ``trim`` is a fixed per-luminaire factor in
  0.99..1.01 drawn from the seed (the +-1 % spread between real units).
  Lamp dark (off, failed, cycling off-phase): standby ``0.5 W x trim``.
  No mains: 0 W.
* Power factor: lit ``0.60 + 0.35 x L/100`` (0.95 at full), standby 0.50.
* Supply voltage: nominal (220 V) +-1 % slow deterministic noise; 185 V / 250 V
  nominal under the ``voltage_low`` / ``voltage_high`` faults; 0 V without mains.
* Current: ``P / (V x PF)`` in mA.
* Energy (Wh, monotonic) is integrated exactly: power is linear in time within
  every stretch where the lamp state does not change, so the trapezoid over the
  stretches (split at fade ends and cycling flips) is the closed form.
* Operating hours count lamp-lit time; the switch-on count counts dark-to-lit
  transitions; temperature is ambient (28 C) + 0.3 C per % while lit, +-0.5 C.

Faults are sets of flags changed without a time argument: a change takes effect
from the last instant the luminaire was advanced to (call ``reading``/``snapshot``
at the instant first if that matters).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from controller.core.values import Address, DeviceFlag, GatewayReading, Reading

__all__ = [
    "AMBIENT_C",
    "CYCLE_PERIOD_S",
    "OVER_TEMPERATURE_C",
    "POWER_FLOOR",
    "STANDBY_W",
    "FakeGateway",
    "FakeLuminaire",
    "GatewayFault",
    "LuminaireFault",
    "lit_power_w",
]

POWER_FLOOR = 0.08
"""Fraction of rated power drawn at the lowest dimming level."""
STANDBY_W = 0.5
"""Driver standby draw with the lamp dark (mains present)."""
CYCLE_PERIOD_S = 30.0
"""Under the ``cycling`` fault the lamp flips every this many seconds while commanded on."""
AMBIENT_C = 28.0
OVER_TEMPERATURE_C = 92.0
VOLTAGE_LOW_V = 185.0
VOLTAGE_HIGH_V = 250.0
POWER_FAULT_FACTOR = 0.30
_NOISE_BUCKET_S = 10.0
_MASK64 = (1 << 64) - 1


class LuminaireFault(StrEnum):
    """Faults one luminaire can be given (what a real device would show is in the module doc)."""

    LAMP_FAILURE = "lamp_failure"
    DRIVER_FAILURE = "driver_failure"
    NOT_ANSWERING = "not_answering"
    STUCK_ON = "stuck_on"
    POWER_HIGH = "power_high"
    POWER_LOW = "power_low"
    VOLTAGE_LOW = "voltage_low"
    VOLTAGE_HIGH = "voltage_high"
    CYCLING = "cycling"
    OVER_TEMPERATURE = "over_temperature"


class GatewayFault(StrEnum):
    """Faults of the gateway as a whole.

    ``offline``: stops answering (Modbus requests get no response, the MQTT front
    goes silent). ``disconnect``: drops its connections (MQTT: dies so its Last
    Will fires). ``mains_loss``: every luminaire dark at 0 W and 0 V with the
    supply-fault flag; the gateway (on its UPS) reports ``mains_present`` False.
    """

    OFFLINE = "offline"
    DISCONNECT = "disconnect"
    MAINS_LOSS = "mains_loss"


def _mix64(value: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread integer hash."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _noise(*keys: int) -> float:
    """A deterministic value in [-1, 1) from integer keys."""
    h = 0
    for key in keys:
        h = _mix64(h ^ (key & _MASK64))
    return (h >> 11) / float(1 << 52) - 1.0


def lit_power_w(rated_power_w: float, level_pct: float) -> float:
    """Nominal power (no trim, no fault) of a lit lamp at ``level_pct``."""
    return rated_power_w * (POWER_FLOOR + (1.0 - POWER_FLOOR) * level_pct / 100.0)


@dataclass(frozen=True, slots=True)
class _Fade:
    """Driver output as a linear ramp from ``from_pct`` at ``start_s`` to ``to_pct``."""

    from_pct: float
    to_pct: float
    start_s: float
    end_s: float

    def level_at(self, t_s: float) -> float:
        if t_s >= self.end_s:
            return self.to_pct
        if t_s <= self.start_s:
            return self.from_pct
        frac = (t_s - self.start_s) / (self.end_s - self.start_s)
        return self.from_pct + (self.to_pct - self.from_pct) * frac


class FakeLuminaire:
    """One simulated luminaire (LED lantern + D4i-like driver).

    Time only moves forward: an instant earlier than the last one seen is
    clamped to it.
    """

    def __init__(
        self,
        address: Address,
        *,
        start: datetime,
        seed: int = 0,
        rated_power_w: float = 100.0,
        nominal_voltage_v: float = 220.0,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.address = address
        self.rated_power_w = float(rated_power_w)
        self.nominal_voltage_v = float(nominal_voltage_v)
        self.faults: set[LuminaireFault] = set()
        self.mains_present = True
        """Set by the gateway under ``mains_loss``."""
        self._seed = seed
        self.trim = 1.0 + 0.01 * _noise(seed, int(address), 1)
        """This unit's fixed power deviation from nominal (0.99..1.01)."""
        t0 = start.timestamp()
        self._fade = _Fade(0.0, 0.0, t0, t0)
        self._t_s = t0
        # A used luminaire: counters do not start at zero.
        self._energy_wh = 1000.0 + 49_000.0 * (0.5 + 0.5 * _noise(seed, int(address), 2))
        self._lit_s = 3600.0 * math.floor(10_000 * (0.5 + 0.5 * _noise(seed, int(address), 3)))
        self._switch_ons = 1000 + int(4000 * (0.5 + 0.5 * _noise(seed, int(address), 4)))
        self._lit = False
        self._last_answer: Reading | None = None

    # -- state in time -------------------------------------------------------------

    @property
    def commanded_level(self) -> int:
        """The level of the last accepted command (the end of any fade)."""
        return round(self._fade.to_pct)

    def level_at(self, at: datetime) -> float:
        """Driver output level (0..100, fractional during a fade) at ``at``."""
        return self._fade.level_at(max(at.timestamp(), self._t_s))

    def command(self, level: int, at: datetime, fade_s: float = 0.0) -> None:
        """Set the level (0..100 %), reached linearly over ``fade_s`` seconds from now."""
        if isinstance(level, bool) or not 0 <= level <= 100:
            raise ValueError(f"level must be 0..100 %, got {level!r}")
        if fade_s < 0 or not math.isfinite(fade_s):
            raise ValueError(f"fade_s must be >= 0, got {fade_s!r}")
        t_s = self._advance(at.timestamp())
        current = self._fade.level_at(t_s)
        self._fade = _Fade(current, float(level), t_s, t_s + fade_s)

    def reading(self, at: datetime) -> Reading:
        """Telemetry at ``at``; advances the counters to ``at``.

        While ``not_answering`` the values are zero, the counters stale (the last
        ones reported) and the flags say ``NOT_ANSWERING``.
        """
        t_s = self._advance(at.timestamp())
        when = at if at.timestamp() >= t_s else _from_ts(t_s, at)
        if LuminaireFault.NOT_ANSWERING in self.faults:
            last = self._last_answer
            return Reading(
                address=self.address,
                at=when,
                lamp_on=False,
                level_pct=0,
                power_w=0.0,
                voltage_v=0.0,
                current_ma=0,
                power_factor=0.0,
                energy_wh=last.energy_wh if last else math.floor(self._energy_wh),
                operating_hours=last.operating_hours if last else math.floor(self._lit_s / 3600),
                switch_on_count=last.switch_on_count if last else self._switch_ons,
                temperature_c=0.0,
                flags=frozenset({DeviceFlag.NOT_ANSWERING}),
            )
        level_pct, lit = self._output_at(t_s)
        power_w = self._power_w(level_pct, lit)
        voltage_v = self._voltage_v(t_s)
        pf = (0.60 + 0.35 * level_pct / 100.0) if lit else (0.50 if self.mains_present else 0.0)
        current_ma = round(power_w / (voltage_v * pf) * 1000.0) if voltage_v > 0 and pf > 0 else 0
        noise_c = 0.5 * _noise(self._seed, int(self.address), 5, int(t_s // _NOISE_BUCKET_S))
        if LuminaireFault.OVER_TEMPERATURE in self.faults:
            temperature_c = OVER_TEMPERATURE_C + noise_c
        else:
            temperature_c = AMBIENT_C + (0.3 * level_pct if lit else 0.0) + noise_c
        flags: set[DeviceFlag] = set()
        if LuminaireFault.LAMP_FAILURE in self.faults:
            flags.add(DeviceFlag.LAMP_FAILURE)
        if LuminaireFault.DRIVER_FAILURE in self.faults:
            flags.add(DeviceFlag.DRIVER_FAILURE)
        if LuminaireFault.OVER_TEMPERATURE in self.faults:
            flags.add(DeviceFlag.OVER_TEMPERATURE)
        if not self.mains_present:
            flags.add(DeviceFlag.SUPPLY_FAULT)
        reported_level = 100 if LuminaireFault.STUCK_ON in self.faults else self._fade.level_at(t_s)
        result = Reading(
            address=self.address,
            at=when,
            lamp_on=lit,
            level_pct=round(reported_level),
            power_w=round(power_w, 3),
            voltage_v=round(voltage_v, 2),
            current_ma=current_ma,
            power_factor=round(pf, 3),
            energy_wh=math.floor(self._energy_wh),
            operating_hours=math.floor(self._lit_s / 3600.0),
            switch_on_count=self._switch_ons,
            temperature_c=round(temperature_c, 2),
            flags=frozenset(flags),
        )
        self._last_answer = result
        return result

    @property
    def energy_wh_exact(self) -> float:
        """The energy counter without rounding (for tests of the integration)."""
        return self._energy_wh

    # -- internals -----------------------------------------------------------------

    def _output_at(self, t_s: float) -> tuple[float, bool]:
        """(effective output level %, lamp lit) at ``t_s``, faults applied."""
        if not self.mains_present:
            return 0.0, False
        level_pct = self._effective_level(t_s)
        if level_pct <= 0.0 or LuminaireFault.LAMP_FAILURE in self.faults:
            return level_pct, False
        if LuminaireFault.CYCLING in self.faults and math.floor(t_s / CYCLE_PERIOD_S) % 2 == 1:
            return level_pct, False
        return level_pct, True

    def _power_w(self, level_pct: float, lit: bool) -> float:
        if not self.mains_present:
            return 0.0
        if not lit:
            return STANDBY_W * self.trim
        factor = 1.0
        if LuminaireFault.POWER_HIGH in self.faults:
            factor += POWER_FAULT_FACTOR
        if LuminaireFault.POWER_LOW in self.faults:
            factor -= POWER_FAULT_FACTOR
        return lit_power_w(self.rated_power_w, level_pct) * self.trim * factor

    def _voltage_v(self, t_s: float) -> float:
        if not self.mains_present:
            return 0.0
        nominal = self.nominal_voltage_v
        if LuminaireFault.VOLTAGE_LOW in self.faults:
            nominal = VOLTAGE_LOW_V
        elif LuminaireFault.VOLTAGE_HIGH in self.faults:
            nominal = VOLTAGE_HIGH_V
        bucket = int(t_s // _NOISE_BUCKET_S)
        return nominal * (1.0 + 0.01 * _noise(self._seed, int(self.address), 6, bucket))

    def _breakpoints(self, t0: float, t1: float) -> list[float]:
        """Instants in (t0, t1) where the lamp state or the power slope can change."""
        points = {t1}
        if t0 < self._fade.end_s < t1:
            points.add(self._fade.end_s)
        if LuminaireFault.CYCLING in self.faults:
            k = math.floor(t0 / CYCLE_PERIOD_S) + 1
            while k * CYCLE_PERIOD_S < t1:
                points.add(k * CYCLE_PERIOD_S)
                k += 1
        return sorted(points)

    def _advance(self, t_s: float) -> float:
        """Integrate energy, lit time and switch-ons up to ``t_s``; return the effective instant."""
        if t_s <= self._t_s:
            return self._t_s
        start = self._t_s
        for end in self._breakpoints(start, t_s):
            mid = 0.5 * (start + end)
            _, lit = self._output_at(mid)
            if lit and not self._lit:
                self._switch_ons += 1
            self._lit = lit
            if lit:
                self._lit_s += end - start
                # Power is linear in the level, which is linear in time here: trapezoid is exact.
                p0 = self._power_w(self._effective_level(start), True)
                p1 = self._power_w(self._effective_level(end), True)
                self._energy_wh += 0.5 * (p0 + p1) * (end - start) / 3600.0
            else:
                self._energy_wh += self._power_w(0.0, False) * (end - start) / 3600.0
            start = end
        self._t_s = t_s
        return t_s

    def _effective_level(self, t_s: float) -> float:
        if LuminaireFault.STUCK_ON in self.faults:
            return 100.0
        return self._fade.level_at(t_s)


def _from_ts(t_s: float, like: datetime) -> datetime:
    return datetime.fromtimestamp(t_s, tz=like.tzinfo)


class FakeGateway:
    """A simulated gateway fronting ``count`` luminaires at addresses 0..count-1."""

    def __init__(
        self,
        gateway_id: str,
        count: int,
        *,
        start: datetime,
        seed: int = 0,
        rated_power_w: float = 100.0,
        nominal_voltage_v: float = 220.0,
    ) -> None:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.gateway_id = gateway_id
        self.started_at = start
        self.faults: set[GatewayFault] = set()
        self.luminaires: dict[Address, FakeLuminaire] = {
            Address(i): FakeLuminaire(
                Address(i),
                start=start,
                seed=seed,
                rated_power_w=rated_power_w,
                nominal_voltage_v=nominal_voltage_v,
            )
            for i in range(count)
        }

    @property
    def answering(self) -> bool:
        """False while ``offline`` or ``disconnect`` is injected."""
        return not ({GatewayFault.OFFLINE, GatewayFault.DISCONNECT} & self.faults)

    @property
    def mains_present(self) -> bool:
        return GatewayFault.MAINS_LOSS not in self.faults

    def command(
        self, levels: Mapping[Address, int], at: datetime, fade_s: float = 0.0
    ) -> dict[Address, str]:
        """Apply what can be applied; return the refused addresses with the reason."""
        rejected: dict[Address, str] = {}
        for address, value in levels.items():
            lum = self.luminaires.get(address)
            if not self.answering:
                rejected[address] = "gateway offline"
            elif lum is None:
                rejected[address] = "unknown address"
            elif isinstance(value, bool) or not 0 <= value <= 100:
                rejected[address] = "level out of range"
            elif LuminaireFault.NOT_ANSWERING in lum.faults:
                rejected[address] = "not answering"
            else:
                lum.command(value, at, fade_s)
        return rejected

    def snapshot(self, at: datetime) -> GatewayReading:
        """Every luminaire's reading at ``at`` plus the gateway's own block."""
        uptime_s = max(0, math.floor((at - self.started_at) / timedelta(seconds=1)))
        return GatewayReading(
            at=at,
            mains_present=self.mains_present,
            uptime_s=uptime_s,
            luminaires={address: lum.reading(at) for address, lum in self.luminaires.items()},
        )

    def inject(self, fault: LuminaireFault | GatewayFault, address: Address | None = None) -> None:
        """Start ``fault`` (on ``address`` for a luminaire fault)."""
        if isinstance(fault, GatewayFault):
            self.faults.add(fault)
            if fault is GatewayFault.MAINS_LOSS:
                for lum in self.luminaires.values():
                    lum.mains_present = False
            return
        self._luminaire(fault, address).faults.add(fault)

    def clear(self, fault: LuminaireFault | GatewayFault, address: Address | None = None) -> None:
        """End ``fault`` (clearing one that is not active is a no-op)."""
        if isinstance(fault, GatewayFault):
            self.faults.discard(fault)
            if fault is GatewayFault.MAINS_LOSS:
                for lum in self.luminaires.values():
                    lum.mains_present = True
            return
        self._luminaire(fault, address).faults.discard(fault)

    def _luminaire(self, fault: LuminaireFault, address: Address | None) -> FakeLuminaire:
        if address is None:
            raise ValueError(f"luminaire fault {fault} needs an address")
        try:
            return self.luminaires[address]
        except KeyError:
            raise ValueError(f"no luminaire at address {address} on {self.gateway_id}") from None
