"""Every PATCH with ``null`` for a field: a 422 naming the field when the field may not be empty.

A field that may not be null is one its create model refuses as null (with every other
field valid); those are found from the models, so a field added later is covered too. The
fields that may be null (a description, a calendar reference) are either accepted or refused
with a 422, never a 500.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from controller.inventory.schemas import (
    GatewayCreate,
    GatewayUpdate,
    GroupCreate,
    GroupUpdate,
    LampTypeCreate,
    LampTypeUpdate,
    LuminaireCreate,
    LuminaireUpdate,
)
from controller.scheduling.schemas import (
    CalendarCreate,
    CalendarUpdate,
    ProgramCreate,
    ProgramUpdate,
)
from tests.api.conftest import LAMP, MODBUS_GW, Api, luminaire

PROGRAM = {"name": "p", "steps": [{"anchor": "sunset", "level": 100}], "default_level": 0}
MQTT_GW = {"name": "gw-mqtt", "protocol": "mqtt", "mqtt_id": "gw-mqtt"}


def refuses_null(create: type[BaseModel], valid: dict[str, Any], field: str) -> bool:
    """Whether ``create`` refuses ``valid`` with ``field`` set to null, for that field."""
    try:
        create.model_validate({**valid, field: None})
    except ValidationError as exc:
        return any(e["loc"][:1] == (field,) for e in exc.errors())
    return False


async def _created(api: Api) -> dict[str, tuple[str, type[BaseModel], type[BaseModel], dict]]:
    """One entity of each kind: its path, create and update models, and a valid create body."""
    modbus = await api.ok("POST", "/gateways", json=MODBUS_GW)
    mqtt = await api.ok("POST", "/gateways", json=MQTT_GW)
    lamp = await api.ok("POST", "/lamp-types", json=LAMP)
    lum_body = luminaire(1, modbus["id"], lamp["id"])
    lum = await api.ok("POST", "/luminaires", json=lum_body)
    group_body = {"name": "g", "members": [lum["id"]]}
    group = await api.ok("POST", "/groups", json=group_body)
    program = await api.ok("POST", "/programs", json=PROGRAM)
    cal_body = {
        "name": "c",
        "rules": [{"kind": "weekdays", "days": ["sat"], "program_id": program["id"]}],
        "default_program_id": program["id"],
    }
    calendar = await api.ok("POST", "/calendars", json=cal_body)
    return {
        "modbus gateway": (f"/gateways/{modbus['id']}", GatewayCreate, GatewayUpdate, MODBUS_GW),
        "mqtt gateway": (f"/gateways/{mqtt['id']}", GatewayCreate, GatewayUpdate, MQTT_GW),
        "lamp type": (f"/lamp-types/{lamp['id']}", LampTypeCreate, LampTypeUpdate, LAMP),
        "luminaire": (f"/luminaires/{lum['id']}", LuminaireCreate, LuminaireUpdate, lum_body),
        "group": (f"/groups/{group['id']}", GroupCreate, GroupUpdate, group_body),
        "program": (f"/programs/{program['id']}", ProgramCreate, ProgramUpdate, PROGRAM),
        "calendar": (f"/calendars/{calendar['id']}", CalendarCreate, CalendarUpdate, cal_body),
    }


async def test_every_patch_refuses_null_for_a_field_that_may_not_be_empty(api: Api) -> None:
    entities = await _created(api)
    refused: list[str] = []
    for what, (path, create, update, valid) in entities.items():
        for field in update.model_fields:
            response = await api.call("PATCH", path, json={field: None})
            label = f"PATCH {what} {field}: null -> {response.status_code} {response.text}"
            assert response.status_code in (200, 422), label
            if refuses_null(create, valid, field):
                assert response.status_code == 422, label
                body = response.json()
                assert body["error"] == "validation_error", label
                assert field in [f["field"] for f in body["fields"]], label
                refused.append(f"{what}.{field}")
    # the premise: the models do have fields that may not be null, on every endpoint
    assert {r.split(".")[0] for r in refused} == set(entities)
    for must in ("program.name", "program.default_level", "program.steps", "calendar.rules"):
        assert must in refused


@pytest.mark.parametrize(
    ("path_of", "body"),
    [
        ("program", {"name": None}),
        ("program", {"default_level": None}),
        ("calendar", {"rules": None}),
    ],
)
async def test_the_reported_nulls_are_422_not_500(
    api: Api, path_of: str, body: dict[str, Any]
) -> None:
    entities = await _created(api)
    path = entities[path_of][0]
    response = await api.call("PATCH", path, json=body, expect=422)
    assert [f["field"] for f in response.json()["fields"]] == list(body)
    # nothing changed
    assert (await api.ok("GET", path))[next(iter(body))] is not None
