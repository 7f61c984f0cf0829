"""Fault detection rules, pure: one observation in, the fault conditions that hold now out.

No I/O, no clock: every instant is an argument. Names follow TALQ 2.7.1 where TALQ has
one (``LampMonitorFunction`` attributes, ``DiagnosticsAndMaintenanceDataDaliPart253``),
see docs/faults.md for the catalogue, thresholds and why each default was chosen.

A rule answers, for each fault type that applies to the subject, one of three things:

* **present**: the condition holds in this observation (with the evidence: measured value,
  expected value, limits);
* **absent**: the condition was judged and does not hold (this counts towards clearing);
* **unknown**: the observation cannot tell (a fade in progress, warm-up after a switch-on,
  the lamp dark so its power cannot be judged, no target known...). The tracker neither
  raises nor clears on an unknown.

Everything electrical assumes the lamp-type power curve (see :class:`PowerCurve`): a lit
LED driver at level ``L`` draws ``rated_power_w x (floor + (1 - floor) x L / 100)`` with
``floor = 0.08`` by default, the same curve the simulated luminaires follow.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from controller.core.fault_types import FaultType as FaultType
from controller.core.fault_types import Severity as Severity
from controller.core.values import DeviceFlag, Level, Reading

__all__ = [
    "DEFAULT_THRESHOLDS",
    "EXPLAINED_BY_GATEWAY",
    "FAULTS",
    "GATEWAY_FAULTS",
    "GATEWAY_SUPPRESSORS",
    "LUMINAIRE_FAULTS",
    "Evaluation",
    "Evidence",
    "FaultSpec",
    "FaultType",
    "LampHistory",
    "LampType",
    "PowerCurve",
    "Quantity",
    "Severity",
    "SubjectKind",
    "Thresholds",
    "applies_to",
    "dark_limit_w",
    "evaluate_gateway",
    "evaluate_luminaire",
    "is_lit",
    "is_silent",
    "remember",
]


class SubjectKind(StrEnum):
    """What a fault is about."""

    LUMINAIRE = "luminaire"
    GATEWAY = "gateway"


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """Static facts about one fault type."""

    severity: Severity
    subjects: frozenset[SubjectKind]
    talq: str | None
    """Where TALQ 2.7.1 defines it (``Function.attribute``), None if it does not."""


_L = frozenset({SubjectKind.LUMINAIRE})
_G = frozenset({SubjectKind.GATEWAY})

FAULTS: Mapping[FaultType, FaultSpec] = MappingProxyType(
    {
        FaultType.LAMP_FAILURE: FaultSpec(Severity.CRITICAL, _L, "LampMonitorFunction.lampFailure"),
        FaultType.CONTROL_GEAR_FAILURE: FaultSpec(
            Severity.CRITICAL, _L, "ControlGearDaliPart102Function.controlGearFailure"
        ),
        FaultType.CONTROL_GEAR_COMM_FAILURE: FaultSpec(
            Severity.WARNING, _L, "LampMonitorFunction.controlGearCommFailure"
        ),
        FaultType.LAMP_UNEXPECTED_ON: FaultSpec(
            Severity.WARNING, _L, "LampMonitorFunction.lampUnexpectedOn"
        ),
        FaultType.LAMP_UNEXPECTED_OFF: FaultSpec(Severity.CRITICAL, _L, None),
        FaultType.LAMP_POWER_TOO_HIGH: FaultSpec(
            Severity.WARNING, _L, "LampMonitorFunction.lampPowerTooHigh"
        ),
        FaultType.LAMP_POWER_TOO_LOW: FaultSpec(
            Severity.WARNING, _L, "LampMonitorFunction.lampPowerTooLow"
        ),
        FaultType.SUPPLY_VOLTAGE_TOO_HIGH: FaultSpec(
            Severity.CRITICAL, _L, "LampMonitorFunction.supplyVoltageTooHigh"
        ),
        FaultType.SUPPLY_VOLTAGE_TOO_LOW: FaultSpec(
            Severity.WARNING, _L, "LampMonitorFunction.supplyVoltageTooLow"
        ),
        FaultType.POWER_FACTOR_TOO_LOW: FaultSpec(
            Severity.WARNING, _L, "LampMonitorFunction.powerFactorTooLow"
        ),
        FaultType.CYCLING_FAILURE: FaultSpec(
            Severity.WARNING, _L, "LampMonitorFunction.cyclingFailure"
        ),
        FaultType.CONTROL_GEAR_THERMAL_DERATING: FaultSpec(
            Severity.WARNING,
            _L,
            "DiagnosticsAndMaintenanceDataDaliPart253Function.controlGearThermalDerating",
        ),
        FaultType.SUPPLY_LOSS: FaultSpec(
            Severity.CRITICAL, _L | _G, "LampMonitorFunction.supplyLoss"
        ),
        FaultType.GATEWAY_OFFLINE: FaultSpec(Severity.CRITICAL, _G, None),
    }
)
"""Default severity, subjects and TALQ origin of every fault type."""


@functools.cache
def applies_to(kind: SubjectKind) -> frozenset[FaultType]:
    """The fault types a subject of this kind can have."""
    return frozenset(t for t, spec in FAULTS.items() if kind in spec.subjects)


LUMINAIRE_FAULTS = applies_to(SubjectKind.LUMINAIRE)
GATEWAY_FAULTS = applies_to(SubjectKind.GATEWAY)

GATEWAY_SUPPRESSORS = frozenset({FaultType.GATEWAY_OFFLINE, FaultType.SUPPLY_LOSS})
"""Gateway faults that explain faults of the luminaires behind the gateway."""

EXPLAINED_BY_GATEWAY = frozenset(
    {
        FaultType.LAMP_FAILURE,
        FaultType.LAMP_UNEXPECTED_OFF,
        FaultType.CONTROL_GEAR_COMM_FAILURE,
        FaultType.LAMP_POWER_TOO_LOW,
        FaultType.SUPPLY_VOLTAGE_TOO_LOW,
        FaultType.POWER_FACTOR_TOO_LOW,
        FaultType.CYCLING_FAILURE,
        FaultType.SUPPLY_LOSS,
    }
)
"""Luminaire faults a dead or unreachable gateway accounts for: dark, silent, unpowered.

Not in the set (a gateway fault does not explain them): lampUnexpectedOn, lampPowerTooHigh,
supplyVoltageTooHigh, controlGearFailure, controlGearThermalDerating.
"""


class Quantity(StrEnum):
    """What a piece of evidence measures (the unit is in the name)."""

    POWER_W = "power_w"
    VOLTAGE_V = "voltage_v"
    POWER_FACTOR = "power_factor"
    TEMPERATURE_C = "temperature_c"
    FLIPS = "flips"
    LEVEL_PCT = "level_pct"
    FLAG = "flag"
    SILENCE_S = "silence_s"
    MAINS = "mains"


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a condition holds: measured against expected, for the crews' message.

    ``low``/``high`` are the limits that were crossed (only one may be set); ``window_s``
    is the time window a count refers to (cycling). ``flag`` is the device flag that
    reported the condition, if that is how it was known.
    """

    quantity: Quantity
    measured: float | None = None
    expected: float | None = None
    low: float | None = None
    high: float | None = None
    window_s: float | None = None
    flag: DeviceFlag | None = None


# --- lamp types and thresholds ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PowerCurve:
    """Fraction of rated power a lit lamp draws at a level.

    Default: linear with a floor, ``floor + (1 - floor) x L/100`` (LED driver, the
    simulated luminaires use ``floor = 0.08``). An alternative curve is a table of
    ``(level_pct, fraction)`` points, interpolated linearly and held flat beyond its ends;
    when ``points`` is set, ``floor`` is ignored.
    """

    floor: float = 0.08
    points: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {self.floor}")
        levels = [p[0] for p in self.points]
        if levels != sorted(set(levels)):
            raise ValueError("curve points must have strictly increasing levels")
        if any(not 0.0 < f <= 2.0 for _, f in self.points):
            raise ValueError("curve fractions must be in (0, 2]")

    def fraction(self, level_pct: float) -> float:
        """Fraction of rated power at ``level_pct`` (0..100) while lit."""
        if not self.points:
            return self.floor + (1.0 - self.floor) * level_pct / 100.0
        levels = [p[0] for p in self.points]
        i = bisect.bisect_left(levels, level_pct)
        if i == 0:
            return self.points[0][1]
        if i == len(self.points):
            return self.points[-1][1]
        (l0, f0), (l1, f1) = self.points[i - 1], self.points[i]
        return f0 + (f1 - f0) * (level_pct - l0) / (l1 - l0)


@dataclass(frozen=True, slots=True)
class LampType:
    """What to expect of one luminaire model (mirrors the ``lamp_type`` table).

    ``min_dim_level_pct``: levels from 1 up to (excluding) this are not power-checked,
    because drivers differ below their physical minimum (DALI clamps to it, others do
    not). ``metered``: the driver measures power, voltage and PF (D4i); without it only
    flags and ``lamp_on`` are used.
    """

    rated_power_w: float = 100.0
    power_tolerance_pct: float = 15.0
    min_dim_level_pct: int = 0
    nominal_voltage_v: float = 220.0
    curve: PowerCurve = field(default_factory=PowerCurve)
    metered: bool = True

    def __post_init__(self) -> None:
        if not self.rated_power_w > 0:
            raise ValueError(f"rated_power_w must be > 0, got {self.rated_power_w}")
        if not 0 < self.power_tolerance_pct < 100:
            raise ValueError(
                f"power_tolerance_pct must be in (0, 100), got {self.power_tolerance_pct}"
            )
        if not 0 <= self.min_dim_level_pct <= 100:
            raise ValueError(f"min_dim_level_pct must be 0..100, got {self.min_dim_level_pct}")
        if not self.nominal_voltage_v > 0:
            raise ValueError(f"nominal_voltage_v must be > 0, got {self.nominal_voltage_v}")

    def expected_power_w(self, level_pct: float) -> float:
        """Expected power in W of a lit lamp at ``level_pct``; 0 at level 0 (off)."""
        if level_pct <= 0:
            return 0.0
        return self.rated_power_w * self.curve.fraction(min(level_pct, 100.0))

    def power_band_w(self, level_pct: float) -> tuple[float, float]:
        """(low, high) limits in W: expected power -/+ the tolerance. Inside is healthy."""
        expected = self.expected_power_w(level_pct)
        spread = expected * self.power_tolerance_pct / 100.0
        return expected - spread, expected + spread


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Site-wide detection thresholds (per lamp type values live in :class:`LampType`)."""

    voltage_high_pct: float = 10.0
    """supplyVoltageTooHigh above nominal x (1 + this/100): 242 V at 220 V."""
    voltage_low_pct: float = 15.0
    """supplyVoltageTooLow below nominal x (1 - this/100): 187 V at 220 V."""
    supply_loss_v: float = 50.0
    """A metered supply voltage below this (V) means the luminaire has no mains."""
    pf_min: float = 0.85
    """Minimum power factor at 100 %."""
    pf_slope_per_pct: float = 0.0035
    """The minimum drops by this much per % below 100 (drivers' PF falls when dimmed):
    0.675 at 50 %. The simulated driver has 0.60 + 0.35 L/100, always 0.10 above it."""
    pf_check_min_level_pct: int = 50
    """The power factor is not judged below this level."""
    dark_power_w: float = 2.0
    """At or below this power (W) a metered lamp is dark (driver standby is about 0.5 W)."""
    settle_grace_s: float = 10.0
    """After the last command's fade ends, wait this long (s) before judging level/power."""
    warmup_s: float = 60.0
    """After a switch-on (dark to lit), power and PF are not judged for this long (s)."""
    cycling_window_s: float = 600.0
    """cyclingFailure when at least ``cycling_min_flips`` lamp on/off flips fall in this
    window (s). Flips are only seen if polls come faster than the lamp flips."""
    cycling_min_flips: int = 6
    over_temperature_c: float = 85.0
    """controlGearThermalDerating at or above this driver temperature (degrees C), when the
    driver does not raise its own thermal-derating flag."""

    def __post_init__(self) -> None:
        if self.cycling_min_flips < 2:
            raise ValueError("cycling_min_flips must be >= 2")
        if self.cycling_window_s <= 0 or self.warmup_s < 0 or self.settle_grace_s < 0:
            raise ValueError("windows and grace periods must be >= 0 (cycling window > 0)")
        if not 0 < self.voltage_low_pct < 100 or self.voltage_high_pct <= 0:
            raise ValueError("voltage limits must be positive percentages")

    def voltage_limits_v(self, nominal_v: float) -> tuple[float, float]:
        """(low, high) supply voltage limits in V around ``nominal_v``."""
        return (
            nominal_v * (1.0 - self.voltage_low_pct / 100.0),
            nominal_v * (1.0 + self.voltage_high_pct / 100.0),
        )

    def pf_min_at(self, level_pct: float) -> float:
        """The minimum power factor at ``level_pct``."""
        return self.pf_min - self.pf_slope_per_pct * (100.0 - min(level_pct, 100.0))


DEFAULT_THRESHOLDS = Thresholds()


# --- per-luminaire history --------------------------------------------------------------


def dark_limit_w(lamp: LampType, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> float:
    """Power (W) at or below which a metered lamp counts as dark.

    ``thresholds.dark_power_w``, lowered to half the lamp's lowest lit power so that a small
    lamp dimmed to 1 % still counts as lit (a 20 W lamp draws 1.8 W there). Lamps under about
    12 W would fall below driver standby (0.5 W) and need ``metered=False``.
    """
    lowest_lit_w = lamp.expected_power_w(max(1, lamp.min_dim_level_pct))
    return min(thresholds.dark_power_w, 0.5 * lowest_lit_w)


def is_lit(reading: Reading, lamp: LampType, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> bool:
    """Whether the lamp gives light: measured power tells the truth when the driver meters it."""
    if lamp.metered:
        return reading.power_w > dark_limit_w(lamp, thresholds)
    return reading.lamp_on


@dataclass(frozen=True, slots=True)
class LampHistory:
    """What the rules remember of one luminaire between observations.

    ``flips`` are the instants (oldest first) where the lamp was first seen in the other
    state (lit/dark), pruned to the cycling window; ``last_switch_on`` is the last dark to
    lit flip (for warm-up). The first state ever seen is not a flip.
    """

    lit: bool | None = None
    flips: tuple[datetime, ...] = ()
    last_switch_on: datetime | None = None


def remember(
    history: LampHistory,
    reading: Reading | None,
    lamp: LampType,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> LampHistory:
    """The history after ``reading`` (unchanged when the luminaire did not answer)."""
    if reading is None or DeviceFlag.NOT_ANSWERING in reading.flags:
        return history
    lit = is_lit(reading, lamp, thresholds)
    horizon = reading.at - timedelta(seconds=thresholds.cycling_window_s)
    flips = tuple(t for t in history.flips if t > horizon)
    last_on = history.last_switch_on
    if history.lit is not None and lit != history.lit:
        flips = (*flips, reading.at)
        if lit:
            last_on = reading.at
    return LampHistory(lit=lit, flips=flips, last_switch_on=last_on)


# --- evaluation ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The verdict of one observation of one subject.

    Every fault type that applies to ``kind`` and is neither ``present`` nor ``unknown`` is
    absent: judged, and not holding.
    """

    kind: SubjectKind
    present: Mapping[FaultType, Evidence] = field(default_factory=dict)
    unknown: frozenset[FaultType] = frozenset()

    def __post_init__(self) -> None:
        allowed = applies_to(self.kind)
        stray = (set(self.present) | self.unknown) - allowed
        if stray:
            raise ValueError(f"fault types {sorted(stray)} do not apply to a {self.kind}")
        if set(self.present) & self.unknown:
            raise ValueError("a fault type cannot be both present and unknown")

    @property
    def absent(self) -> frozenset[FaultType]:
        """The fault types judged not to hold."""
        return applies_to(self.kind) - set(self.present) - self.unknown


class _Verdicts:
    """Builder: every luminaire fault starts unknown until a rule judges it."""

    def __init__(self) -> None:
        self.present: dict[FaultType, Evidence] = {}
        self.absent: set[FaultType] = set()

    def holds(self, fault: FaultType, evidence: Evidence) -> None:
        self.absent.discard(fault)
        self.present[fault] = evidence

    def clear(self, *faults: FaultType) -> None:
        for fault in faults:
            if fault not in self.present:
                self.absent.add(fault)

    def done(self) -> Evaluation:
        unknown = LUMINAIRE_FAULTS - set(self.present) - self.absent
        return Evaluation(SubjectKind.LUMINAIRE, dict(self.present), frozenset(unknown))


def evaluate_luminaire(
    reading: Reading | None,
    *,
    at: datetime,
    target: Level | None,
    acked: Level | None,
    settle_until: datetime | None,
    lamp: LampType,
    history: LampHistory,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Evaluation:
    """Judge one luminaire observation.

    ``reading`` is None when the gateway answered but this luminaire was missing from its
    answer. ``at`` is the observation instant (normally ``reading.at``). ``target`` is the
    level the controller wants now (None: unknown), ``acked`` the level the gateway last
    acknowledged (None: never), ``settle_until`` the end of the last command's fade (None:
    no command in flight). ``history`` must already include this reading (see
    :func:`remember`).
    """
    v = _Verdicts()
    if reading is None or DeviceFlag.NOT_ANSWERING in reading.flags:
        v.holds(
            FaultType.CONTROL_GEAR_COMM_FAILURE,
            Evidence(Quantity.FLAG, flag=DeviceFlag.NOT_ANSWERING),
        )
        return v.done()
    v.clear(FaultType.CONTROL_GEAR_COMM_FAILURE)

    # Flags the driver raises itself are trusted whatever the lamp does.
    if DeviceFlag.DRIVER_FAILURE in reading.flags:
        v.holds(
            FaultType.CONTROL_GEAR_FAILURE, Evidence(Quantity.FLAG, flag=DeviceFlag.DRIVER_FAILURE)
        )
    else:
        v.clear(FaultType.CONTROL_GEAR_FAILURE)
    if DeviceFlag.OVER_TEMPERATURE in reading.flags:
        v.holds(
            FaultType.CONTROL_GEAR_THERMAL_DERATING,
            Evidence(
                Quantity.TEMPERATURE_C,
                measured=reading.temperature_c,
                flag=DeviceFlag.OVER_TEMPERATURE,
            ),
        )
    elif reading.temperature_c >= thresholds.over_temperature_c:
        v.holds(
            FaultType.CONTROL_GEAR_THERMAL_DERATING,
            Evidence(
                Quantity.TEMPERATURE_C,
                measured=reading.temperature_c,
                high=thresholds.over_temperature_c,
            ),
        )
    else:
        v.clear(FaultType.CONTROL_GEAR_THERMAL_DERATING)

    no_mains = DeviceFlag.SUPPLY_FAULT in reading.flags or (
        lamp.metered and reading.voltage_v < thresholds.supply_loss_v
    )
    if no_mains:
        # Without mains every electrical quantity and the lamp state are explained by it.
        v.holds(
            FaultType.SUPPLY_LOSS,
            Evidence(
                Quantity.VOLTAGE_V,
                measured=reading.voltage_v,
                low=thresholds.supply_loss_v,
                flag=DeviceFlag.SUPPLY_FAULT if DeviceFlag.SUPPLY_FAULT in reading.flags else None,
            ),
        )
        return v.done()
    v.clear(FaultType.SUPPLY_LOSS)

    if lamp.metered:
        _judge_voltage(v, reading, lamp, thresholds)

    lit = is_lit(reading, lamp, thresholds)
    settling = settle_until is not None and at < settle_until + timedelta(
        seconds=thresholds.settle_grace_s
    )
    warming = history.last_switch_on is not None and at < history.last_switch_on + timedelta(
        seconds=thresholds.warmup_s
    )
    wants_on = None if target is None else target > 0

    # cyclingFailure: only meaningful while the lamp should be on.
    if wants_on:
        recent = [
            t for t in history.flips if at - t < timedelta(seconds=thresholds.cycling_window_s)
        ]
        if len(recent) >= thresholds.cycling_min_flips:
            v.holds(
                FaultType.CYCLING_FAILURE,
                Evidence(
                    Quantity.FLIPS,
                    measured=float(len(recent)),
                    high=float(thresholds.cycling_min_flips),
                    window_s=thresholds.cycling_window_s,
                ),
            )
        else:
            v.clear(FaultType.CYCLING_FAILURE)
    cycling = FaultType.CYCLING_FAILURE in v.present

    # lampFailure: the driver says so, or it drives a level > 0 and the lamp stays dark.
    if DeviceFlag.LAMP_FAILURE in reading.flags:
        v.holds(FaultType.LAMP_FAILURE, Evidence(Quantity.FLAG, flag=DeviceFlag.LAMP_FAILURE))
    elif lit:
        v.clear(FaultType.LAMP_FAILURE)
    elif reading.level_pct > 0 and not settling and not cycling:
        v.holds(
            FaultType.LAMP_FAILURE,
            Evidence(
                Quantity.POWER_W,
                measured=reading.power_w,
                expected=lamp.expected_power_w(reading.level_pct),
                high=dark_limit_w(lamp, thresholds) if lamp.metered else None,
            ),
        )

    # Day burner / lamp out at night: judged against the target once any fade has settled.
    if wants_on is not None and not settling:
        if not wants_on:
            if lit:
                v.holds(
                    FaultType.LAMP_UNEXPECTED_ON,
                    Evidence(
                        Quantity.POWER_W,
                        measured=reading.power_w,
                        expected=0.0,
                        high=dark_limit_w(lamp, thresholds) if lamp.metered else None,
                    ),
                )
            else:
                v.clear(FaultType.LAMP_UNEXPECTED_ON)
        elif lit:
            v.clear(FaultType.LAMP_UNEXPECTED_OFF)
        elif reading.level_pct == 0 and not cycling:
            v.holds(
                FaultType.LAMP_UNEXPECTED_OFF,
                Evidence(Quantity.LEVEL_PCT, measured=0.0, expected=float(target or 0)),
            )
        elif reading.level_pct > 0:
            v.clear(FaultType.LAMP_UNEXPECTED_OFF)  # it is a lampFailure instead

    in_effect = acked if acked is not None else target
    if lamp.metered and lit and not settling and not warming and not cycling and in_effect:
        _judge_power(v, reading, int(in_effect), lamp, thresholds)
    return v.done()


def _judge_voltage(v: _Verdicts, reading: Reading, lamp: LampType, thresholds: Thresholds) -> None:
    low_v, high_v = thresholds.voltage_limits_v(lamp.nominal_voltage_v)
    if reading.voltage_v > high_v:
        v.holds(
            FaultType.SUPPLY_VOLTAGE_TOO_HIGH,
            Evidence(
                Quantity.VOLTAGE_V,
                measured=reading.voltage_v,
                expected=lamp.nominal_voltage_v,
                high=high_v,
            ),
        )
    else:
        v.clear(FaultType.SUPPLY_VOLTAGE_TOO_HIGH)
    if reading.voltage_v < low_v:
        v.holds(
            FaultType.SUPPLY_VOLTAGE_TOO_LOW,
            Evidence(
                Quantity.VOLTAGE_V,
                measured=reading.voltage_v,
                expected=lamp.nominal_voltage_v,
                low=low_v,
            ),
        )
    else:
        v.clear(FaultType.SUPPLY_VOLTAGE_TOO_LOW)


def _judge_power(
    v: _Verdicts, reading: Reading, level_pct: int, lamp: LampType, thresholds: Thresholds
) -> None:
    """Power and PF of a lit, settled, warmed-up lamp at the level in effect."""
    if level_pct < lamp.min_dim_level_pct:
        return
    expected = lamp.expected_power_w(level_pct)
    low_w, high_w = lamp.power_band_w(level_pct)
    if reading.power_w > high_w:
        v.holds(
            FaultType.LAMP_POWER_TOO_HIGH,
            Evidence(Quantity.POWER_W, measured=reading.power_w, expected=expected, high=high_w),
        )
    else:
        v.clear(FaultType.LAMP_POWER_TOO_HIGH)
    if reading.power_w < low_w:
        v.holds(
            FaultType.LAMP_POWER_TOO_LOW,
            Evidence(Quantity.POWER_W, measured=reading.power_w, expected=expected, low=low_w),
        )
    else:
        v.clear(FaultType.LAMP_POWER_TOO_LOW)
    if level_pct >= thresholds.pf_check_min_level_pct and math.isfinite(reading.power_factor):
        minimum = thresholds.pf_min_at(level_pct)
        if reading.power_factor < minimum:
            v.holds(
                FaultType.POWER_FACTOR_TOO_LOW,
                Evidence(Quantity.POWER_FACTOR, measured=reading.power_factor, low=minimum),
            )
        else:
            v.clear(FaultType.POWER_FACTOR_TOO_LOW)


# --- gateways ---------------------------------------------------------------------------


def is_silent(last_heard: datetime | None, at: datetime, timeout_s: float) -> bool:
    """Whether a gateway last heard at ``last_heard`` is silent at ``at`` (never heard: yes).

    Silent means strictly more than ``timeout_s`` seconds without any message or answer.
    """
    if last_heard is None:
        return True
    return (at - last_heard).total_seconds() > timeout_s


def evaluate_gateway(
    *, answering: bool, mains_present: bool | None, silence_s: float | None = None
) -> Evaluation:
    """Judge one gateway observation.

    ``answering``: it answered this poll / is not silent / its MQTT availability is
    ``online``. ``mains_present``: what it reports about its own supply (None: it does not
    report it). An offline gateway says nothing about its mains, so supplyLoss is unknown.
    ``silence_s`` (seconds without an answer) only goes into the evidence.
    """
    present: dict[FaultType, Evidence] = {}
    unknown: set[FaultType] = set()
    if not answering:
        present[FaultType.GATEWAY_OFFLINE] = Evidence(Quantity.SILENCE_S, measured=silence_s)
        unknown.add(FaultType.SUPPLY_LOSS)
    elif mains_present is None:
        unknown.add(FaultType.SUPPLY_LOSS)
    elif not mains_present:
        present[FaultType.SUPPLY_LOSS] = Evidence(Quantity.MAINS, measured=0.0, expected=1.0)
    return Evaluation(SubjectKind.GATEWAY, present, frozenset(unknown))
