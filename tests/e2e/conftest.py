"""End-to-end fixtures: the integration broker fixtures, shared."""

from tests.integration.conftest import (  # noqa: F401 - pytest fixtures re-exported
    _mqtt_broker_session,
    mqtt_broker,
    mqtt_prefix,
)
