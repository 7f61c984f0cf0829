"""The names of faults and how urgent they are: value types every layer may use.

The settings validate against them and the API filters by them; the rules that detect them
are in :mod:`controller.faults.rules`.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """How urgent a fault is for the crews (routing: MQTT topic level, webhook payload)."""

    WARNING = "warning"
    CRITICAL = "critical"


class FaultType(StrEnum):
    """Every fault the controller detects. Values are TALQ attribute names where one exists."""

    LAMP_FAILURE = "lampFailure"
    """Should be lit, produces no light: device flag, or driving a level > 0 at standby power."""
    CONTROL_GEAR_FAILURE = "controlGearFailure"
    """The driver reports a failure (DALI/D4i flag)."""
    CONTROL_GEAR_COMM_FAILURE = "controlGearCommFailure"
    """The luminaire does not answer behind an online gateway.
    TALQ's nearest attribute is ``CommunicationFunction.communicationFailure``."""
    LAMP_UNEXPECTED_ON = "lampUnexpectedOn"
    """Day burner: drawing lit power while the target is off."""
    LAMP_UNEXPECTED_OFF = "lampUnexpectedOff"
    """Lamp out at night: target on, but the driver sits at level 0 and the lamp is dark.
    Not a TALQ name (TALQ folds it into lampFailure); named as the mirror of lampUnexpectedOn."""
    LAMP_POWER_TOO_HIGH = "lampPowerTooHigh"
    """Measured power above expected power for the level + tolerance."""
    LAMP_POWER_TOO_LOW = "lampPowerTooLow"
    """Measured power below expected power for the level - tolerance (lamp lit)."""
    SUPPLY_VOLTAGE_TOO_HIGH = "supplyVoltageTooHigh"
    """Supply voltage above nominal + ``voltage_high_pct``."""
    SUPPLY_VOLTAGE_TOO_LOW = "supplyVoltageTooLow"
    """Supply voltage below nominal - ``voltage_low_pct``."""
    POWER_FACTOR_TOO_LOW = "powerFactorTooLow"
    """Power factor below the level-aware minimum (only judged at levels >= 50 %)."""
    CYCLING_FAILURE = "cyclingFailure"
    """The lamp keeps switching on and off while it should be on."""
    CONTROL_GEAR_THERMAL_DERATING = "controlGearThermalDerating"
    """The driver is too hot and derates its output (D4i flag or temperature threshold)."""
    SUPPLY_LOSS = "supplyLoss"
    """Mains lost: at a gateway (``mains_present`` false) or at one luminaire (flag / 0 V)."""
    GATEWAY_OFFLINE = "gatewayOffline"
    """The gateway does not answer (timeout, MQTT Last Will, telemetry silence).
    Not a TALQ name; the nearest is ``CommunicationFunction.communicationFailure``."""
