"""The one on / dimmed / off / offline rule, as a table."""

from __future__ import annotations

import pytest

from controller.core.light_state import LightState, light_state

TABLE = [
    # online, actual, state
    (True, 100, LightState.ON),
    (True, 99, LightState.DIMMED),
    (True, 50, LightState.DIMMED),
    (True, 1, LightState.DIMMED),
    (True, 0, LightState.OFF),
    (True, None, LightState.OFFLINE),  # online, but no level reported yet
    (False, 100, LightState.OFFLINE),
    (False, 0, LightState.OFFLINE),
    (False, None, LightState.OFFLINE),
]


@pytest.mark.parametrize(("online", "actual", "expected"), TABLE)
def test_light_state(online: bool, actual: int | None, expected: LightState) -> None:
    assert light_state(online=online, actual=actual) is expected
