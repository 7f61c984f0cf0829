"""The fake luminaire model: physics (power curve, exact energy) and every fault's effect."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.values import Address, DeviceFlag
from fake_luminaires.model import (
    CYCLE_PERIOD_S,
    OVER_TEMPERATURE_C,
    STANDBY_W,
    FakeGateway,
    FakeLuminaire,
    GatewayFault,
    LuminaireFault,
    lit_power_w,
)

T0 = datetime(2025, 3, 1, 11, 0, tzinfo=UTC)  # 18:00 in Đông Hà
A0 = Address(0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def lamp(seed: int = 0, rated: float = 100.0) -> FakeLuminaire:
    return FakeLuminaire(A0, start=T0, seed=seed, rated_power_w=rated)


# -- power, standby, derived values -------------------------------------------------------


def test_off_lamp_draws_standby_only() -> None:
    r = lamp().reading(at(10))
    assert not r.lamp_on
    assert r.level_pct == 0
    assert r.power_w == pytest.approx(STANDBY_W, rel=0.02)
    assert r.flags == frozenset()


@pytest.mark.parametrize(
    ("level", "expected_w"),
    [(100, 100.0), (50, 54.0), (10, 17.2), (1, 8.92)],
)
def test_power_follows_the_led_driver_curve(level: int, expected_w: float) -> None:
    lum = lamp(rated=100.0)
    lum.command(level, at(0))
    r = lum.reading(at(1))
    assert r.lamp_on
    assert r.level_pct == level
    assert r.power_w == pytest.approx(expected_w, rel=0.011)  # +-1 % unit spread
    assert r.power_w == pytest.approx(lit_power_w(100.0, level) * lum.trim, abs=0.001)


def test_units_differ_by_at_most_one_percent_and_deterministically() -> None:
    trims = [FakeLuminaire(Address(i), start=T0, seed=7).trim for i in range(200)]
    assert all(0.99 <= t <= 1.01 for t in trims)
    assert len(set(trims)) > 150
    assert trims == [FakeLuminaire(Address(i), start=T0, seed=7).trim for i in range(200)]
    assert trims != [FakeLuminaire(Address(i), start=T0, seed=8).trim for i in range(200)]


def test_voltage_current_power_factor_are_consistent() -> None:
    lum = lamp()
    lum.command(100, at(0))
    full = lum.reading(at(5))
    assert 217.8 <= full.voltage_v <= 222.2
    assert full.power_factor == pytest.approx(0.95)
    assert full.current_ma == pytest.approx(
        full.power_w / (full.voltage_v * full.power_factor) * 1000, abs=1
    )
    lum.command(30, at(10))
    dimmed = lum.reading(at(15))
    assert dimmed.power_factor < full.power_factor
    assert dimmed.temperature_c < full.temperature_c


def test_linear_fade() -> None:
    lum = lamp()
    lum.command(100, at(0), fade_s=100)
    assert [lum.reading(at(s)).level_pct for s in (0, 25, 50, 100, 200)] == [0, 25, 50, 100, 100]
    lum.command(0, at(200), fade_s=10)
    assert lum.reading(at(205)).level_pct == 50
    r = lum.reading(at(210))
    assert (r.level_pct, r.lamp_on) == (0, False)


def test_refuses_levels_outside_0_100() -> None:
    lum = lamp()
    for bad in (-1, 101):
        with pytest.raises(ValueError, match=r"0\.\.100"):
            lum.command(bad, at(0))


def test_time_never_goes_backwards() -> None:
    lum = lamp()
    lum.command(100, at(0))
    later = lum.reading(at(3600))
    earlier = lum.reading(at(60))
    assert earlier.energy_wh == later.energy_wh
    assert earlier.at == later.at


# -- energy --------------------------------------------------------------------------------


def analytic_wh(
    rated: float, trim: float, steps: Sequence[tuple[float, float, int, float]]
) -> float:
    """Closed-form energy of (start_s, end_s, level, fade_s) steps whose fades end in the step."""

    def lit(level: float) -> float:
        return lit_power_w(rated, level) * trim

    total_ws = 0.0
    previous = 0
    for start, end, target, fade in steps:
        assert fade <= end - start
        # Power is linear in the level during a ramp; a ramp from or to 0 is lit on the open
        # interval, so its end at level 0 draws the floor power lit(0).
        total_ws += 0.5 * (lit(previous) + lit(target)) * fade
        steady_w = lit(target) if target > 0 else STANDBY_W * trim
        total_ws += steady_w * (end - start - fade)
        previous = target
    return total_ws / 3600.0


@pytest.mark.parametrize("poll_s", [None, 97.0])
def test_energy_over_a_night_with_fades_matches_the_closed_form(poll_s: float | None) -> None:
    lum = lamp(seed=3, rated=120.0)
    night = [  # 18:00 on with a 10 min fade, dims with fades, off at 05:50
        (0, 4 * 3600, 100, 600),
        (4 * 3600, 6 * 3600, 70, 300),
        (6 * 3600, 10.5 * 3600, 50, 300),
        (10.5 * 3600, 11.8 * 3600, 70, 120),
        (11.8 * 3600, 12.0 * 3600, 0, 60),
    ]
    start_wh = lum.energy_wh_exact
    for start, _end, level, fade in night:
        lum.command(level, at(start), fade_s=fade)
        for k in range(1, 20 if poll_s else 0):  # poll in between, as a controller would
            lum.reading(at(start + k * (poll_s or 0)))
    lum.reading(at(12 * 3600))
    expected = analytic_wh(120.0, lum.trim, night)
    assert lum.energy_wh_exact - start_wh == pytest.approx(expected, rel=0.001)
    assert 700 < expected < 1300  # ~0.9 kWh: a 120 W lantern dimmed for a night


@settings(max_examples=50, deadline=None)
@given(
    polls=st.lists(st.floats(min_value=0.1, max_value=900), min_size=1, max_size=30),
    level=st.integers(min_value=1, max_value=100),
    fade=st.floats(min_value=0, max_value=600),
)
def test_energy_does_not_depend_on_how_often_it_is_read(
    polls: list[float], level: int, fade: float
) -> None:
    read_often, read_once = lamp(), lamp()
    read_often.command(level, at(0), fade_s=fade)
    read_once.command(level, at(0), fade_s=fade)
    t = 0.0
    for dt in polls:
        t += dt
        read_often.reading(at(t))
    read_once.reading(at(t))
    assert read_often.energy_wh_exact == pytest.approx(read_once.energy_wh_exact, rel=1e-9)


def test_counters_operating_hours_and_switch_ons() -> None:
    lum = lamp()
    before = lum.reading(at(0))
    lum.command(100, at(0))
    lum.command(0, at(1800))
    lum.command(60, at(3600))
    r = lum.reading(at(3600 + 5400))
    assert r.switch_on_count == before.switch_on_count + 2
    assert r.operating_hours == before.operating_hours + 2  # 0.5 h + 1.5 h lit
    assert r.energy_wh > before.energy_wh


# -- faults ----------------------------------------------------------------------------------


def lit_gateway() -> FakeGateway:
    gw = FakeGateway("gw-1", 4, start=T0, seed=1)
    assert gw.command({Address(i): 100 for i in range(4)}, at(0)) == {}
    return gw


def test_lamp_failure_draws_nothing_while_commanded_on() -> None:
    gw = lit_gateway()
    gw.inject(LuminaireFault.LAMP_FAILURE, A0)
    r = gw.snapshot(at(10)).luminaires[A0]
    assert DeviceFlag.LAMP_FAILURE in r.flags
    assert not r.lamp_on
    assert r.power_w < 1.0
    gw.clear(LuminaireFault.LAMP_FAILURE, A0)
    assert gw.snapshot(at(20)).luminaires[A0].power_w > 90


def test_driver_failure_raises_its_flag() -> None:
    gw = lit_gateway()
    gw.inject(LuminaireFault.DRIVER_FAILURE, A0)
    assert DeviceFlag.DRIVER_FAILURE in gw.snapshot(at(10)).luminaires[A0].flags


def test_not_answering_is_listed_with_stale_counters_and_refuses_commands() -> None:
    gw = lit_gateway()
    last = gw.snapshot(at(60)).luminaires[A0]
    gw.inject(LuminaireFault.NOT_ANSWERING, A0)
    r = gw.snapshot(at(3600)).luminaires[A0]
    assert r.flags == frozenset({DeviceFlag.NOT_ANSWERING})
    assert (r.power_w, r.voltage_v, r.level_pct) == (0.0, 0.0, 0)
    assert r.energy_wh == last.energy_wh  # stale, never a counter reset
    assert gw.command({A0: 10, Address(1): 10}, at(3600)) == {A0: "not answering"}


def test_stuck_on_burns_by_day() -> None:
    gw = lit_gateway()
    gw.inject(LuminaireFault.STUCK_ON, A0)
    gw.command({A0: 0}, at(10))
    r = gw.snapshot(at(20)).luminaires[A0]
    assert r.lamp_on
    assert r.power_w > 90


@pytest.mark.parametrize(("fault", "factor"), [("power_high", 1.3), ("power_low", 0.7)])
def test_power_high_and_low(fault: str, factor: float) -> None:
    gw = lit_gateway()
    normal = gw.snapshot(at(10)).luminaires[A0].power_w
    gw.inject(LuminaireFault(fault), A0)
    assert gw.snapshot(at(20)).luminaires[A0].power_w == pytest.approx(normal * factor, rel=1e-3)


@pytest.mark.parametrize(("fault", "volts"), [("voltage_low", 185.0), ("voltage_high", 250.0)])
def test_supply_voltage_faults(fault: str, volts: float) -> None:
    gw = lit_gateway()
    gw.inject(LuminaireFault(fault), A0)
    r = gw.snapshot(at(20)).luminaires[A0]
    assert r.voltage_v == pytest.approx(volts, rel=0.011)
    assert gw.snapshot(at(20)).luminaires[Address(1)].voltage_v == pytest.approx(220, rel=0.011)


def test_cycling_flips_the_lamp_while_commanded_on() -> None:
    gw = lit_gateway()
    start = gw.snapshot(at(0)).luminaires[A0].switch_on_count
    gw.inject(LuminaireFault.CYCLING, A0)
    states = [gw.snapshot(at(s)).luminaires[A0].lamp_on for s in (10, 40, 70, 100)]
    assert states == [True, False, True, False]
    r = gw.snapshot(at(20 * CYCLE_PERIOD_S)).luminaires[A0]
    assert r.switch_on_count - start == 10


def test_over_temperature() -> None:
    gw = lit_gateway()
    gw.inject(LuminaireFault.OVER_TEMPERATURE, A0)
    r = gw.snapshot(at(10)).luminaires[A0]
    assert DeviceFlag.OVER_TEMPERATURE in r.flags
    assert r.temperature_c == pytest.approx(OVER_TEMPERATURE_C, abs=0.6)


def test_mains_loss_darkens_every_luminaire() -> None:
    gw = lit_gateway()
    gw.inject(GatewayFault.MAINS_LOSS)
    snap = gw.snapshot(at(10))
    assert not snap.mains_present
    for r in snap.luminaires.values():
        assert (r.power_w, r.voltage_v, r.lamp_on) == (0.0, 0.0, False)
        assert DeviceFlag.SUPPLY_FAULT in r.flags
    energy = snap.luminaires[A0].energy_wh
    assert gw.snapshot(at(7200)).luminaires[A0].energy_wh == energy
    gw.clear(GatewayFault.MAINS_LOSS)
    back = gw.snapshot(at(7300))
    assert back.mains_present
    assert back.luminaires[A0].lamp_on


def test_gateway_offline_and_disconnect_stop_answering() -> None:
    gw = lit_gateway()
    assert gw.answering
    for fault in (GatewayFault.OFFLINE, GatewayFault.DISCONNECT):
        gw.inject(fault)
        assert not gw.answering
        assert gw.command({A0: 5}, at(10)) == {A0: "gateway offline"}
        gw.clear(fault)
        assert gw.answering


def test_gateway_rejects_unknown_and_out_of_range() -> None:
    gw = FakeGateway("gw", 2, start=T0)
    rejected = gw.command({Address(0): 101, Address(1): 50, Address(7): 10}, at(0))
    assert rejected == {Address(0): "level out of range", Address(7): "unknown address"}
    assert gw.luminaires[Address(1)].commanded_level == 50


def test_luminaire_fault_needs_a_known_address() -> None:
    gw = FakeGateway("gw", 2, start=T0)
    with pytest.raises(ValueError, match="needs an address"):
        gw.inject(LuminaireFault.LAMP_FAILURE)
    with pytest.raises(ValueError, match="no luminaire"):
        gw.inject(LuminaireFault.LAMP_FAILURE, Address(9))


def test_snapshot_uptime_and_determinism() -> None:
    a = FakeGateway("gw", 3, start=T0, seed=5)
    b = FakeGateway("gw", 3, start=T0, seed=5)
    for gw in (a, b):
        gw.command({Address(1): 60}, at(5), fade_s=3)
    assert a.snapshot(at(100)) == b.snapshot(at(100))
    assert a.snapshot(at(200)).uptime_s == 200
