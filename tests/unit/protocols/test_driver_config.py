"""The drivers' own configuration agrees with the controller's settings.

protocols/ does not import the controller's settings (.importlinter); the settings satisfy
the drivers' small protocols structurally (mypy checks the call sites), and a driver made
without them gets the same defaults.
"""

from __future__ import annotations

from controller.config.settings import ModbusSettings
from protocols.modbus import ModbusConfig


def test_modbus_defaults_are_the_settings_defaults() -> None:
    settings, config = ModbusSettings(), ModbusConfig()
    assert (config.timeout_s, config.retries, config.reconnect_max_s) == (
        settings.timeout_s,
        settings.retries,
        settings.reconnect_max_s,
    )
