"""Detection rules: one observation of one luminaire or gateway -> present / absent / unknown."""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.values import DeviceFlag, Level
from controller.faults.rules import (
    DEFAULT_THRESHOLDS,
    EXPLAINED_BY_GATEWAY,
    FAULTS,
    GATEWAY_FAULTS,
    LUMINAIRE_FAULTS,
    Evaluation,
    FaultType,
    LampHistory,
    LampType,
    PowerCurve,
    Quantity,
    Severity,
    SubjectKind,
    Thresholds,
    dark_limit_w,
    evaluate_gateway,
    evaluate_luminaire,
    is_silent,
    remember,
)
from tests.unit.faults.builders import LAMP, T0, judge, reading, secs

F = FaultType
TH = DEFAULT_THRESHOLDS
up = math.nextafter


def state(ev: Evaluation, fault: FaultType) -> str:
    if fault in ev.present:
        return "present"
    if fault in ev.unknown:
        return "unknown"
    assert fault in ev.absent
    return "absent"


# --- catalogue ----------------------------------------------------------------------------


def test_catalogue_names_and_default_severities() -> None:
    assert {str(f) for f in LUMINAIRE_FAULTS} >= {
        "lampFailure", "controlGearFailure", "controlGearCommFailure", "lampUnexpectedOn",
        "lampUnexpectedOff", "lampPowerTooHigh", "lampPowerTooLow", "supplyVoltageTooHigh",
        "supplyVoltageTooLow", "powerFactorTooLow", "cyclingFailure",
        "controlGearThermalDerating", "supplyLoss",
    }  # fmt: skip
    assert set(GATEWAY_FAULTS) == {F.GATEWAY_OFFLINE, F.SUPPLY_LOSS}
    assert FAULTS[F.LAMP_FAILURE].severity is Severity.CRITICAL
    assert FAULTS[F.LAMP_UNEXPECTED_OFF].severity is Severity.CRITICAL
    assert FAULTS[F.GATEWAY_OFFLINE].severity is Severity.CRITICAL
    assert FAULTS[F.SUPPLY_LOSS].severity is Severity.CRITICAL
    assert FAULTS[F.POWER_FACTOR_TOO_LOW].severity is Severity.WARNING
    assert FAULTS[F.LAMP_UNEXPECTED_ON].severity is Severity.WARNING


def test_talq_names_are_the_attribute_names() -> None:
    for fault, spec in FAULTS.items():
        if spec.talq is not None:
            assert spec.talq.rsplit(".", 1)[1] == str(fault)


def test_explained_faults_are_luminaire_faults() -> None:
    assert EXPLAINED_BY_GATEWAY <= LUMINAIRE_FAULTS
    assert F.LAMP_POWER_TOO_HIGH not in EXPLAINED_BY_GATEWAY
    assert F.LAMP_UNEXPECTED_ON not in EXPLAINED_BY_GATEWAY


def test_evaluation_refuses_inconsistent_verdicts() -> None:
    with pytest.raises(ValueError, match="do not apply"):
        Evaluation(SubjectKind.GATEWAY, unknown=frozenset({F.LAMP_FAILURE}))
    with pytest.raises(ValueError, match="both"):
        Evaluation(
            SubjectKind.GATEWAY,
            {F.SUPPLY_LOSS: evaluate_gateway(answering=True, mains_present=False).present[
                F.SUPPLY_LOSS
            ]},
            frozenset({F.SUPPLY_LOSS}),
        )  # fmt: skip


# --- lamp type and curve ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "expected_w"),
    [(0, 0.0), (1, 8.92), (50, 54.0), (70, 72.4), (100, 100.0)],
)
def test_expected_power_follows_the_lamp_curve(level: int, expected_w: float) -> None:
    assert LAMP.expected_power_w(level) == pytest.approx(expected_w)


def test_power_band_is_the_tolerance_around_expected() -> None:
    lamp = LampType(rated_power_w=150.0, power_tolerance_pct=10.0)
    low, high = lamp.power_band_w(100)
    assert (low, high) == pytest.approx((135.0, 165.0))


def test_alternative_curve_interpolates_and_holds_at_the_ends() -> None:
    curve = PowerCurve(points=((10.0, 0.2), (50.0, 0.5), (100.0, 1.0)))
    assert curve.fraction(5) == 0.2
    assert curve.fraction(30) == pytest.approx(0.35)
    assert curve.fraction(100) == 1.0
    assert LampType(curve=curve).expected_power_w(75) == pytest.approx(75.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"floor": 1.0},
        {"floor": -0.1},
        {"points": ((50.0, 0.5), (10.0, 0.2))},
        {"points": ((1.0, 0.0),)},
    ],
)
def test_bad_curves_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"floor|curve"):
        PowerCurve(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rated_power_w": 0.0},
        {"power_tolerance_pct": 0.0},
        {"power_tolerance_pct": 100.0},
        {"min_dim_level_pct": 101},
        {"nominal_voltage_v": 0.0},
    ],
)
def test_bad_lamp_types_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        LampType(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"cycling_min_flips": 1}, {"cycling_window_s": 0.0}, {"voltage_low_pct": 0.0}],
)
def test_bad_thresholds_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Thresholds(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("rated_w", "limit_w"), [(100.0, 2.0), (20.0, 0.892), (400.0, 2.0)])
def test_dark_limit_stays_below_the_lowest_lit_power(rated_w: float, limit_w: float) -> None:
    lamp = LampType(rated_power_w=rated_w)
    assert dark_limit_w(lamp) == pytest.approx(limit_w)
    assert dark_limit_w(lamp) < lamp.expected_power_w(1)


# --- power --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "power", "high", "low"),
    [
        (100, 100.0, "absent", "absent"),
        (100, 115.0, "absent", "absent"),  # exactly at +15 %: healthy
        (100, up(115.0, math.inf), "present", "absent"),
        (100, 85.0, "absent", "absent"),  # exactly at -15 %: healthy
        (100, up(85.0, 0.0), "absent", "present"),
        (100, 130.0, "present", "absent"),  # the fake's power_high fault
        (70, 72.4 * 0.7, "absent", "present"),  # the fake's power_low fault
        (50, 100.0, "present", "absent"),  # stuck at full while dimmed to 50 %
    ],
)
def test_power_against_the_tolerance_band(level: int, power: float, high: str, low: str) -> None:
    ev = judge(reading(level=level, power_w=power), target=level)
    assert (state(ev, F.LAMP_POWER_TOO_HIGH), state(ev, F.LAMP_POWER_TOO_LOW)) == (high, low)


def test_power_band_edges_use_the_lamp_tolerance() -> None:
    lamp = LampType(rated_power_w=100.0, power_tolerance_pct=5.0)
    ev = judge(reading(level=100, power_w=110.0), lamp=lamp)
    assert F.LAMP_POWER_TOO_HIGH in ev.present  # 10 % over: fine for 15 %, not for 5 %
    assert F.LAMP_POWER_TOO_HIGH in judge(reading(level=100, power_w=110.0)).absent


def test_power_evidence_carries_measured_expected_and_limit() -> None:
    ev = judge(reading(level=100, power_w=130.0)).present[F.LAMP_POWER_TOO_HIGH]
    assert ev.quantity is Quantity.POWER_W
    assert (ev.measured, ev.expected, ev.high) == pytest.approx((130.0, 100.0, 115.0))


def test_power_is_judged_at_the_acknowledged_level() -> None:
    # the target moved to 50 %, the gateway still has 100 % in effect: 100 W is right
    ev = judge(reading(level=100, power_w=100.0), target=50, acked=100)
    assert F.LAMP_POWER_TOO_HIGH in ev.absent


@pytest.mark.parametrize(
    ("settle_offset_s", "expected"),
    [
        (30.0, "unknown"),  # a fade in progress
        (0.0, "unknown"),  # fade just ended
        (-(TH.settle_grace_s - 1), "unknown"),  # within the grace after the fade
        (-TH.settle_grace_s, "present"),  # grace over: judged
    ],
)
def test_power_waits_for_the_fade_and_its_grace(settle_offset_s: float, expected: str) -> None:
    r = reading(level=100, power_w=130.0)
    ev = judge(r, settle_until=T0 + secs(settle_offset_s))
    assert state(ev, F.LAMP_POWER_TOO_HIGH) == expected


@pytest.mark.parametrize(
    ("since_switch_on_s", "expected"),
    [(0.0, "unknown"), (TH.warmup_s - 1, "unknown"), (TH.warmup_s, "present")],
)
def test_power_waits_for_warm_up_after_a_switch_on(since_switch_on_s: float, expected: str) -> None:
    history = LampHistory(lit=True, flips=(), last_switch_on=T0 - secs(since_switch_on_s))
    ev = judge(reading(level=100, power_w=130.0), history=history)
    assert state(ev, F.LAMP_POWER_TOO_HIGH) == expected


def test_power_below_the_minimum_dim_level_is_not_judged() -> None:
    lamp = LampType(min_dim_level_pct=10)
    ev = judge(reading(level=5, power_w=30.0), target=5, lamp=lamp)
    assert {F.LAMP_POWER_TOO_HIGH, F.LAMP_POWER_TOO_LOW} <= ev.unknown
    assert (
        F.LAMP_POWER_TOO_HIGH
        in judge(reading(level=10, power_w=30.0), target=10, lamp=lamp).present
    )


def test_power_of_a_dark_lamp_is_unknown_not_absent() -> None:
    # an open lampPowerTooHigh must not clear every morning when the lamp goes off
    ev = judge(reading(level=0), target=0)
    assert {F.LAMP_POWER_TOO_HIGH, F.LAMP_POWER_TOO_LOW, F.POWER_FACTOR_TOO_LOW} <= ev.unknown


# --- power factor -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "pf", "expected"),
    [
        (100, 0.95, "absent"),
        (100, 0.85, "absent"),  # exactly the minimum
        (100, 0.849, "present"),
        (50, 0.775, "absent"),  # the simulated driver dimmed to 50 %
        (50, 0.675, "absent"),  # the level-aware minimum at 50 %
        (50, 0.67, "present"),
        (49, 0.10, "unknown"),  # below 50 % the PF is not judged
    ],
)
def test_power_factor_is_level_aware(level: int, pf: float, expected: str) -> None:
    ev = judge(reading(level=level, pf=pf), target=level)
    assert state(ev, F.POWER_FACTOR_TOO_LOW) == expected


@given(st.integers(TH.pf_check_min_level_pct, 100))
def test_the_simulated_driver_pf_always_passes(level: int) -> None:
    pf = 0.60 + 0.35 * level / 100
    ev = judge(reading(level=level, pf=round(pf, 3)), target=level)
    assert F.POWER_FACTOR_TOO_LOW in ev.absent


# --- voltage ------------------------------------------------------------------------------


def _voltage_cases() -> list[tuple[float, str, str]]:
    low, high = TH.voltage_limits_v(220.0)
    return [
        (220.0, "absent", "absent"),
        (high, "absent", "absent"),  # exactly at +10 %
        (up(high, math.inf), "present", "absent"),
        (low, "absent", "absent"),  # exactly at -15 %
        (up(low, 0.0), "absent", "present"),
        (185.0, "absent", "present"),  # the fake's voltage_low
        (250.0, "present", "absent"),  # the fake's voltage_high
    ]


@pytest.mark.parametrize(("volts", "high", "low"), _voltage_cases())
def test_supply_voltage_limits(volts: float, high: str, low: str) -> None:
    for level in (100, 0):  # judged lit or dark
        ev = judge(reading(level=level, voltage_v=volts), target=level)
        got = (state(ev, F.SUPPLY_VOLTAGE_TOO_HIGH), state(ev, F.SUPPLY_VOLTAGE_TOO_LOW))
        assert got == (high, low)


def test_voltage_limits_follow_the_lamp_nominal() -> None:
    lamp = LampType(nominal_voltage_v=230.0)
    ev = judge(reading(voltage_v=245.0), lamp=lamp)
    assert F.SUPPLY_VOLTAGE_TOO_HIGH in ev.absent  # 253 V is the limit at 230 V
    assert F.SUPPLY_VOLTAGE_TOO_HIGH in judge(reading(voltage_v=245.0)).present


# --- lamp state: failure, day burner, out at night ----------------------------------------


@pytest.mark.parametrize(
    ("level_pct", "power_w", "target", "flags", "failure", "out", "day"),
    [
        # driving 100 %, dark: the lamp has failed
        (100, 0.5, 100, (), "present", "absent", "unknown"),
        # the driver says so even at level 0 (daytime)
        (0, 0.5, 0, (DeviceFlag.LAMP_FAILURE,), "present", "unknown", "absent"),
        # driver at 0 while the target is on: the command did not take
        (0, 0.5, 70, (), "unknown", "present", "unknown"),
        # lit as wanted
        (70, 72.4, 70, (), "absent", "absent", "unknown"),
        # day burner
        (100, 100.0, 0, (), "absent", "unknown", "present"),
        # off by day as wanted
        (0, 0.5, 0, (), "unknown", "unknown", "absent"),
    ],
)
def test_lamp_state_rules(
    level_pct: int,
    power_w: float,
    target: int,
    flags: tuple[DeviceFlag, ...],
    failure: str,
    out: str,
    day: str,
) -> None:
    ev = judge(reading(level=level_pct, power_w=power_w, flags=flags), target=target)
    got = (
        state(ev, F.LAMP_FAILURE),
        state(ev, F.LAMP_UNEXPECTED_OFF),
        state(ev, F.LAMP_UNEXPECTED_ON),
    )
    assert got == (failure, out, day)


def test_a_luminaire_just_switched_off_is_not_a_day_burner() -> None:
    r = reading(level=100, power_w=100.0)
    # target went to 0 with a 30 s fade ending 20 s from now: still burning is fine
    assert F.LAMP_UNEXPECTED_ON in judge(r, target=0, settle_until=T0 + secs(20)).unknown
    assert F.LAMP_UNEXPECTED_ON in judge(r, target=0, settle_until=T0 - secs(10)).present


def test_a_luminaire_just_switched_on_is_not_out() -> None:
    r = reading(level=0, power_w=0.5)
    assert F.LAMP_UNEXPECTED_OFF in judge(r, target=100, settle_until=T0 + secs(5)).unknown
    assert F.LAMP_UNEXPECTED_OFF in judge(r, target=100, settle_until=T0 - secs(60)).present


def test_without_a_target_the_schedule_rules_cannot_judge() -> None:
    ev = judge(reading(level=100), target=None)
    assert {F.LAMP_UNEXPECTED_ON, F.LAMP_UNEXPECTED_OFF, F.CYCLING_FAILURE} <= ev.unknown
    assert F.LAMP_POWER_TOO_HIGH in ev.unknown  # no level in effect either


def test_lit_is_measured_power_not_the_reported_flag() -> None:
    # the driver claims lamp_on but draws standby power: measured power tells the truth
    ev = judge(reading(level=100, power_w=0.5, lamp_on=True))
    assert F.LAMP_FAILURE in ev.present


def test_unmetered_lamp_uses_lamp_on_and_skips_electrical_rules() -> None:
    lamp = LampType(metered=False)
    dark = judge(reading(level=100, power_w=0.0, lamp_on=False, voltage_v=0.0), lamp=lamp)
    assert F.LAMP_FAILURE in dark.present
    assert F.SUPPLY_LOSS in dark.absent  # 0 V means nothing without metering
    lit = judge(reading(level=100, power_w=0.0, lamp_on=True, voltage_v=0.0), lamp=lamp)
    assert F.LAMP_FAILURE in lit.absent
    assert {F.LAMP_POWER_TOO_LOW, F.SUPPLY_VOLTAGE_TOO_LOW} <= lit.unknown


# --- flags, communication, supply -----------------------------------------------------------


@pytest.mark.parametrize(
    "r", [None, reading(level=0, power_w=0.0, voltage_v=0.0, flags=[DeviceFlag.NOT_ANSWERING])]
)
def test_not_answering_knows_nothing_else(r: object) -> None:
    ev = judge(r, target=100)  # type: ignore[arg-type]
    assert set(ev.present) == {F.CONTROL_GEAR_COMM_FAILURE}
    assert ev.unknown == LUMINAIRE_FAULTS - {F.CONTROL_GEAR_COMM_FAILURE}


def test_driver_and_thermal_flags() -> None:
    ev = judge(
        reading(flags=[DeviceFlag.DRIVER_FAILURE, DeviceFlag.OVER_TEMPERATURE], temperature_c=92.0)
    )
    assert {F.CONTROL_GEAR_FAILURE, F.CONTROL_GEAR_THERMAL_DERATING} <= set(ev.present)
    assert ev.present[F.CONTROL_GEAR_THERMAL_DERATING].flag is DeviceFlag.OVER_TEMPERATURE
    assert F.CONTROL_GEAR_COMM_FAILURE in ev.absent


@pytest.mark.parametrize(("temperature_c", "expected"), [(84.9, "absent"), (85.0, "present")])
def test_thermal_threshold_without_the_flag(temperature_c: float, expected: str) -> None:
    ev = judge(reading(temperature_c=temperature_c))
    assert state(ev, F.CONTROL_GEAR_THERMAL_DERATING) == expected


@pytest.mark.parametrize(
    ("voltage_v", "flags"),
    [(0.0, [DeviceFlag.SUPPLY_FAULT]), (0.0, []), (220.0, [DeviceFlag.SUPPLY_FAULT])],
)
def test_supply_loss_explains_the_rest(voltage_v: float, flags: list[DeviceFlag]) -> None:
    ev = judge(reading(level=100, power_w=0.0, voltage_v=voltage_v, flags=flags), target=100)
    assert set(ev.present) == {F.SUPPLY_LOSS}
    assert ev.absent == {
        F.CONTROL_GEAR_COMM_FAILURE,
        F.CONTROL_GEAR_FAILURE,
        F.CONTROL_GEAR_THERMAL_DERATING,
    }


# --- cycling and history --------------------------------------------------------------------


def _flips(n: int, every_s: float = 30.0) -> tuple[datetime, ...]:
    return tuple(T0 - secs(every_s * i) for i in reversed(range(n)))


@pytest.mark.parametrize(
    ("flips", "target", "expected"),
    [
        (_flips(6), 100, "present"),
        (_flips(5), 100, "absent"),
        # the oldest of 6 flips exactly one window ago no longer counts
        (_flips(6, TH.cycling_window_s / 5), 100, "absent"),
        (_flips(6, TH.cycling_window_s / 5 - 1), 100, "present"),
        (_flips(10), 0, "unknown"),  # only judged while the lamp should be on
    ],
)
def test_cycling_counts_flips_in_the_window(
    flips: tuple[datetime, ...], target: int, expected: str
) -> None:
    history = LampHistory(lit=True, flips=flips, last_switch_on=T0 - secs(3600))
    ev = judge(
        reading(level=target, power_w=100.0 if target else 0.5), target=target, history=history
    )
    assert state(ev, F.CYCLING_FAILURE) == expected


def test_cycling_makes_dark_phases_unknown() -> None:
    history = LampHistory(lit=False, flips=_flips(8), last_switch_on=T0 - secs(30))
    ev = judge(reading(level=100, power_w=0.5), history=history)
    assert F.CYCLING_FAILURE in ev.present
    assert F.LAMP_FAILURE in ev.unknown  # the dark phase of a cycling lamp is not a failure
    assert F.LAMP_UNEXPECTED_OFF in ev.absent  # the driver is at 100 %: the command took


def test_remember_records_flips_and_switch_ons() -> None:
    h = LampHistory()
    h = remember(h, reading(level=100, at=T0), LAMP)
    assert h == LampHistory(lit=True)  # the first state seen is not a flip
    h = remember(h, reading(level=100, power_w=0.5, at=T0 + secs(10)), LAMP)
    assert h.flips == (T0 + secs(10),) and h.last_switch_on is None
    h = remember(h, reading(level=100, at=T0 + secs(20)), LAMP)
    assert h.flips == (T0 + secs(10), T0 + secs(20)) and h.last_switch_on == T0 + secs(20)
    h = remember(h, None, LAMP)
    assert h.lit is True and len(h.flips) == 2
    later = T0 + secs(20 + TH.cycling_window_s)
    h = remember(h, reading(level=100, at=later), LAMP)
    assert h.flips == ()  # both flips fell out of the window
    assert h.last_switch_on == T0 + secs(20)


def test_remember_ignores_a_luminaire_that_does_not_answer() -> None:
    h = LampHistory(lit=True)
    silent = reading(level=0, power_w=0.0, flags=[DeviceFlag.NOT_ANSWERING])
    assert remember(h, silent, LAMP) == h


# --- properties ------------------------------------------------------------------------------


@given(
    level=st.integers(0, 100),
    power=st.floats(0, 500, allow_nan=False),
    voltage=st.floats(0, 300, allow_nan=False),
    pf=st.floats(0, 1),
    target=st.none() | st.integers(0, 100),
    flags=st.frozensets(st.sampled_from(DeviceFlag)),
)
def test_exclusive_verdicts_for_any_reading(
    level: int,
    power: float,
    voltage: float,
    pf: float,
    target: int | None,
    flags: frozenset[DeviceFlag],
) -> None:
    ev = judge(
        reading(level=level, power_w=power, voltage_v=voltage, pf=pf, flags=flags), target=target
    )
    present = set(ev.present)
    assert present | ev.unknown | ev.absent == LUMINAIRE_FAULTS
    for pair in [
        {F.LAMP_POWER_TOO_HIGH, F.LAMP_POWER_TOO_LOW},
        {F.SUPPLY_VOLTAGE_TOO_HIGH, F.SUPPLY_VOLTAGE_TOO_LOW},
        {F.LAMP_UNEXPECTED_ON, F.LAMP_UNEXPECTED_OFF},
        {F.LAMP_FAILURE, F.LAMP_UNEXPECTED_OFF},
        {F.LAMP_UNEXPECTED_ON, F.LAMP_POWER_TOO_LOW},
    ]:
        assert not pair <= present


@given(rated=st.floats(20, 400), level=st.integers(1, 100), trim=st.floats(0.99, 1.01))
def test_a_healthy_lamp_at_any_level_raises_nothing(rated: float, level: int, trim: float) -> None:
    lamp = LampType(rated_power_w=rated)
    r = reading(
        level=level, power_w=lamp.expected_power_w(level) * trim, pf=0.60 + 0.35 * level / 100
    )
    ev = evaluate_luminaire(
        r, at=T0, target=Level(level), acked=Level(level), settle_until=None, lamp=lamp,
        history=LampHistory(lit=True),
    )  # fmt: skip
    assert dict(ev.present) == {}


# --- gateways --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answering", "mains", "present", "unknown"),
    [
        (True, True, set(), set()),
        (True, False, {F.SUPPLY_LOSS}, set()),
        (True, None, set(), {F.SUPPLY_LOSS}),
        (False, True, {F.GATEWAY_OFFLINE}, {F.SUPPLY_LOSS}),
        (False, None, {F.GATEWAY_OFFLINE}, {F.SUPPLY_LOSS}),
    ],
)
def test_gateway_rules(
    answering: bool, mains: bool | None, present: set[FaultType], unknown: set[FaultType]
) -> None:
    ev = evaluate_gateway(answering=answering, mains_present=mains, silence_s=42.0)
    assert (set(ev.present), set(ev.unknown)) == (present, unknown)
    if F.GATEWAY_OFFLINE in ev.present:
        assert ev.present[F.GATEWAY_OFFLINE].measured == 42.0


@pytest.mark.parametrize(
    ("last_heard", "silent"),
    [(None, True), (T0 - secs(30), False), (T0 - secs(30.001), True), (T0, False)],
)
def test_silence_is_strictly_longer_than_the_timeout(
    last_heard: datetime | None, silent: bool
) -> None:
    assert is_silent(last_heard, T0, 30.0) is silent
