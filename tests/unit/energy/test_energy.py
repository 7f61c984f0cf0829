"""Energy math: counter wrap and reset, power integration, baseline and CO2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.energy.accounting import (
    COUNTER_MODULUS,
    MAX_GAP_S,
    Sample,
    baseline_wh,
    co2_kg,
    counter_delta,
    energy_between,
)

T0 = datetime(2026, 6, 21, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (1000, 1010, (10, "counter")),
        (1000, 1000, (0, "counter")),
        (COUNTER_MODULUS - 5, 7, (12, "counter_wrap")),
        (COUNTER_MODULUS - 1, 0, (1, "counter_wrap")),
        (123_456, 42, (42, "counter_reset")),  # driver replaced: counts from zero again
        (5_000_000, 0, (0, "counter_reset")),
    ],
)
def test_counter_delta(previous: int, current: int, expected: tuple[int, str]) -> None:
    assert counter_delta(previous, current) == expected


@given(st.integers(0, COUNTER_MODULUS - 1), st.integers(0, 10_000))
def test_counter_delta_recovers_any_small_increment_across_the_wrap(start: int, used: int) -> None:
    end = (start + used) % COUNTER_MODULUS
    assert counter_delta(start, end)[0] == used


def test_counter_preferred_over_power() -> None:
    a = Sample(T0, 100, 100.0)
    b = Sample(T0 + timedelta(hours=1), 180, 100.0)
    assert energy_between(a, b).energy_wh == 80
    assert energy_between(a, b).method == "counter"


def test_power_integration_is_the_trapezoid() -> None:
    a = Sample(T0, None, 100.0)
    b = Sample(T0 + timedelta(minutes=30), None, 50.0)
    delta = energy_between(a, b)
    assert delta.method == "power"
    assert delta.energy_wh == pytest.approx(37.5)
    gap = Sample(T0 + timedelta(seconds=MAX_GAP_S + 1), None, 100.0)
    assert energy_between(a, gap).energy_wh == 0.0
    assert energy_between(b, a).energy_wh == 0.0  # backwards in time


def test_baseline_and_co2() -> None:
    assert baseline_wh(100.0, 12 * 3600) == pytest.approx(1200.0)
    assert co2_kg(1_000_000.0, 0.6592) == pytest.approx(659.2)  # 1 MWh at Vietnam's 2023 factor
