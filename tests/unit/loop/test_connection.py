"""What reopens a running gateway: its connection, not its name or place."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.loop.runtime import connection_of
from controller.loop.targets import GatewayInfo

MODBUS = GatewayInfo(1, "gw-1", "modbus", "10.0.0.5", 502, (1, 2), None, "Phường 1", True)
MQTT = GatewayInfo(2, "gw-2", "mqtt", None, None, (), "gw-2", "Phường 1", True)


@pytest.mark.parametrize(
    ("info", "change"),
    [
        (MODBUS, {"host": "10.0.0.6"}),
        (MODBUS, {"port": 1502}),
        (MODBUS, {"unit_ids": (1,)}),
        (MODBUS, {"protocol": "mqtt", "mqtt_id": "gw-1"}),
        (MQTT, {"mqtt_id": "gw-2b"}),
        (MQTT, {"protocol": "modbus", "host": "10.0.0.7", "port": 502, "unit_ids": (1,)}),
    ],
)
def test_a_changed_connection_reopens(info: GatewayInfo, change: dict[str, object]) -> None:
    assert connection_of(replace(info, **change), 8) != connection_of(info, 8)  # type: ignore[arg-type]


@pytest.mark.parametrize("info", [MODBUS, MQTT])
def test_name_ward_and_position_do_not_reopen(info: GatewayInfo) -> None:
    moved = replace(info, name="renamed", ward="Phường 5", latitude=16.8, longitude=107.1)
    assert connection_of(moved, 8) == connection_of(info, 8)


def test_a_longer_address_span_reopens_modbus_only() -> None:
    assert connection_of(MODBUS, 9) != connection_of(MODBUS, 8)  # the poll span is opened with it
    assert connection_of(MQTT, 9) == connection_of(MQTT, 8)  # MQTT states carry any address
