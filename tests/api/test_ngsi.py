"""NGSI-LD export (/ngsi-ld/v1): every entity validated against the FIWARE JSON Schemas.

The schemas (and common-schema.json, which they reference by URL) are read from the shared
reference folder beside the repository (``../shared/reference/fiware-streetlighting``, as CI
lays it out) and resolved locally: no network. Missing in CI is a failure, elsewhere a skip.

The schemas describe the key-value form of an entity; a normalized entity is reduced to it
here (Property -> value, DateTime -> its @value, Relationship -> object), independently of
the implementation's own ``options=keyValues``, which is validated as served as well.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from sqlalchemy import Table, insert

from api.app import create_app
from controller.access.schemas import Role
from controller.config.settings import Settings
from controller.core.clock import ManualClock
from controller.core.values import Address, DeviceFlag, Level, Reading
from controller.loop.reconcile import Tracked
from controller.loop.runtime import Controller, GatewayState
from controller.store.db import Database
from controller.store.tables import ReadingRow, StateChange
from tests.api.conftest import Api, luminaire
from tests.conftest import require_service

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference" / "fiware-streetlighting"
COMMON_URL = "https://smart-data-models.github.io/data-models/common-schema.json"
SDM_CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Streetlighting/master/"
    "context.jsonld"
)
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
TYPES = ["Streetlight", "StreetlightGroup", "StreetlightModel", "StreetlightControlCabinet"]
NOW = datetime(2026, 6, 21, 13, 30, tzinfo=UTC)  # 20:30 in Đông Hà

_READING: Table = ReadingRow.__table__  # type: ignore[attr-defined]
_STATE: Table = StateChange.__table__  # type: ignore[attr-defined]


# --- schema validation ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validators() -> dict[str, Draft202012Validator]:
    if not REFERENCE.is_dir():
        require_service("the FIWARE reference schemas", f"not found at {REFERENCE}")
    common = json.loads((REFERENCE / "common-schema.json").read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry().with_resource(COMMON_URL, Resource.from_contents(common))
    out = {}
    for name in TYPES:
        schema = json.loads((REFERENCE / name / "schema.json").read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        out[name] = Draft202012Validator(
            schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
    return out


def reduce(entity: dict[str, Any]) -> dict[str, Any]:
    """Normalized NGSI-LD -> key-values, checking the normalized structure on the way."""
    out: dict[str, Any] = {}
    for name, attr in entity.items():
        if name in {"id", "type"}:
            out[name] = attr
            continue
        if name == "@context":
            continue
        assert isinstance(attr, dict), name
        kind = attr["type"]
        assert kind in {"Property", "Relationship", "GeoProperty"}, (name, kind)
        if "observedAt" in attr:
            assert datetime.fromisoformat(attr["observedAt"]).tzinfo is not None
        if kind == "Relationship":
            out[name] = attr["object"]
            continue
        value = attr["value"]
        if kind == "GeoProperty":
            assert value["type"] in {"Point", "MultiPoint"}
        if isinstance(value, dict) and "@type" in value:
            assert value["@type"] == "DateTime", name
            assert datetime.fromisoformat(value["@value"]).tzinfo is not None, name
            value = value["@value"]
        out[name] = value
    return out


def validate(
    validators: dict[str, Draft202012Validator], entity: dict[str, Any], *, normalized: bool
) -> None:
    """Raise if the entity does not fit its type's schema (normalized ones reduced first)."""
    flat = reduce(entity) if normalized else {k: v for k, v in entity.items() if k != "@context"}
    validators[flat["type"]].validate(flat)


def test_the_validator_can_fail(validators: dict[str, Draft202012Validator]) -> None:
    good = {
        "id": "urn:ngsi-ld:Streetlight:x:1",
        "type": "Streetlight",
        "status": "ok",
        "location": {"type": "Point", "coordinates": [107.1, 16.8]},
    }
    validators["Streetlight"].validate(good)
    for broken in (
        {**good, "status": "broken"},
        {k: v for k, v in good.items() if k != "status"},
        {**good, "illuminanceLevel": 1.5},
        {**good, "location": {"type": "Point", "coordinates": [107.1]}},
        {**good, "refStreetlightGroup": ["urn:a", "urn:b"]},
    ):
        with pytest.raises(ValidationError):
            validators["Streetlight"].validate(broken)
    with pytest.raises(ValidationError):  # a group needs a location
        validators["StreetlightGroup"].validate({"id": "urn:g", "type": "StreetlightGroup"})


# --- fixtures ----------------------------------------------------------------------------------


class Ngsi:
    """Requests to /ngsi-ld/v1 as a given role."""

    def __init__(self, client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
        self.client = client
        self.keys = keys

    async def get(
        self,
        path: str,
        *,
        role: Role | None = Role.VIEWER,
        expect: int = 200,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if role is not None:
            sent["Authorization"] = f"Bearer {self.keys[role]}"
        response = await self.client.get(f"/ngsi-ld/v1{path}", params=params, headers=sent)
        assert response.status_code == expect, f"{path}: {response.status_code} {response.text}"
        return response

    async def entities(self, entity_type: str, **params: Any) -> list[dict[str, Any]]:
        response = await self.get("/entities", type=entity_type, limit=1000, **params)
        body: list[dict[str, Any]] = response.json()
        return body


@pytest.fixture
async def ngsi(settings: Settings, db: Database, keys: dict[Role, str]) -> AsyncIterator[Ngsi]:
    app = create_app(settings, db, clock=ManualClock(NOW))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        yield Ngsi(c, keys)


@pytest.fixture
async def city(api: Api, base: dict[str, int], db: Database) -> dict[str, Any]:
    """L1, L2 (Lê Duẩn, Phường 1, Modbus), L3 (Hùng Vương, Đông Lễ, MQTT); three groups and an
    empty one; state history for the switching times and stored readings for the status."""
    lamp50 = await api.ok(
        "POST",
        "/lamp-types",
        json={"name": "LED 50 W", "rated_power_w": 50, "description": "Hẻm lantern"},
    )
    gw2 = await api.ok(
        "POST", "/gateways", json={"name": "gw-dl", "protocol": "mqtt", "mqtt_id": "gw-dl"}
    )
    l1 = await api.ok("POST", "/luminaires", json=luminaire(1, **base, installed_on="2024-06-01"))
    l2 = await api.ok("POST", "/luminaires", json=luminaire(2, base["gateway_id"], lamp50["id"]))
    l3 = await api.ok(
        "POST", "/luminaires",
        json=luminaire(3, gw2["id"], base["lamp_type_id"], name="ĐL 7/3", ward="Đông Lễ",
                       street="Hùng Vương", latitude=16.8201, longitude=107.0912),
    )  # fmt: skip
    event = await api.ok(
        "POST", "/groups",
        json={"name": "Lê Duẩn event", "members": [l1["id"], l3["id"]], "priority": 10,
              "description": "Night market"},
    )  # fmt: skip
    ward = await api.ok(
        "POST", "/groups", json={"name": "Phường 1", "kind": "ward", "selector": "Phường 1"}
    )
    single = await api.ok(
        "POST", "/groups", json={"name": "pole 1", "members": [l1["id"]], "priority": -5}
    )
    empty = await api.ok(
        "POST", "/groups", json={"name": "nowhere", "kind": "street", "selector": "Nowhere"}
    )

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text)

    states = [  # (luminaire, at, kind, level)
        (l1["id"], at("2026-06-20T11:30:00Z"), "actual", 100),  # first record: no switch
        (l1["id"], at("2026-06-20T22:30:00Z"), "actual", 0),  # off
        (l1["id"], at("2026-06-21T11:28:00Z"), "actual", 100),  # on
        (l1["id"], at("2026-06-21T15:00:00Z"), "actual", 50),  # dimmed: not a switch
        (l1["id"], at("2026-06-21T22:20:00Z"), "actual", 0),  # off
        (l1["id"], at("2026-06-21T23:00:00Z"), "target", 100),  # a target is not a switch
        (l3["id"], at("2026-06-21T10:00:00Z"), "actual", 0),
        (l3["id"], at("2026-06-21T11:29:00Z"), "actual", 70),  # on, never off since
    ]
    readings = [  # (luminaire, at, flags)
        (l1["id"], at("2026-06-21T12:00:00Z"), []),
        (l2["id"], at("2026-06-21T12:00:00Z"), []),
        (l2["id"], at("2026-06-21T13:00:00Z"), ["lampFailure"]),
    ]
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(_STATE),
            [{"luminaire_id": lid, "at": t, "kind": k, "level": lv, "source": "program"}
             for lid, t, k, lv in states],
        )  # fmt: skip
        await conn.execute(
            insert(_READING),
            [{"luminaire_id": lid, "at": t, "lamp_on": True, "level_pct": 100, "power_w": 99.0,
              "voltage_v": 229.0, "current_ma": 450, "power_factor": 0.96, "flags": flags}
             for lid, t, flags in readings],
        )  # fmt: skip
    return {
        "l1": l1, "l2": l2, "l3": l3, "lamp100": base["lamp_type_id"], "lamp50": lamp50["id"],
        "gw1": base["gateway_id"], "gw2": gw2["id"], "event": event["id"], "ward": ward["id"],
        "single": single["id"], "empty": empty["id"],
    }  # fmt: skip


def urn(entity_type: str, local: str | int) -> str:
    return f"urn:ngsi-ld:{entity_type}:dong-ha:{local}"


def by_id(entities: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in entities}


# --- tests -------------------------------------------------------------------------------------


async def test_every_entity_validates_without_live_state(
    ngsi: Ngsi, city: dict[str, Any], validators: dict[str, Draft202012Validator]
) -> None:
    exported = 0
    for entity_type in TYPES:
        for options in (None, "keyValues"):
            response = await ngsi.get("/entities", type=entity_type, options=options or "")
            assert response.headers["content-type"] == "application/ld+json"
            for entity in response.json():
                assert entity["@context"] == [SDM_CONTEXT, CORE_CONTEXT]
                assert entity["type"] == entity_type
                validate(validators, entity, normalized=options is None)
                exported += 1
    assert exported == 2 * (3 + 3 + 2 + 0)

    lights = by_id(await ngsi.entities("Streetlight"))
    l1 = lights[urn("Streetlight", "P1-LD-001")]
    assert l1["name"] == {"type": "Property", "value": "P1-LD-001"}
    assert l1["location"] == {
        "type": "GeoProperty",
        "value": {"type": "Point", "coordinates": [107.1003, city["l1"]["latitude"]]},
    }
    assert l1["address"]["value"] == {
        "streetAddress": "Lê Duẩn", "district": "Phường 1", "addressLocality": "Đông Hà",
        "addressCountry": "VN",
    }  # fmt: skip
    assert l1["status"] == {"type": "Property", "value": "ok", "observedAt": "2026-06-21T12:00:00Z"}
    assert l1["powerRating"] == {"type": "Property", "value": 100.0, "unitCode": "WTT"}
    assert l1["refStreetlightModel"] == {
        "type": "Relationship", "object": urn("StreetlightModel", city["lamp100"]),
    }  # fmt: skip
    # in three groups: the one of highest priority, as for calendars
    assert l1["refStreetlightGroup"]["object"] == urn("StreetlightGroup", city["event"])
    assert l1["dateServiceStarted"]["value"] == {
        "@type": "DateTime", "@value": "2024-05-31T17:00:00Z",  # 2024-06-01 00:00 local
    }  # fmt: skip
    assert l1["dateLastSwitchingOn"]["value"]["@value"] == "2026-06-21T11:28:00Z"
    assert l1["dateLastSwitchingOff"]["value"]["@value"] == "2026-06-21T22:20:00Z"
    for live in ("powerState", "illuminanceLevel", "powerConsumption", "voltage", "current"):
        assert live not in l1

    l2 = lights[urn("Streetlight", "P1-LD-002")]
    assert l2["status"] == {
        "type": "Property", "value": "defectiveLamp", "observedAt": "2026-06-21T13:00:00Z",
    }  # fmt: skip
    assert l2["refStreetlightGroup"]["object"] == urn("StreetlightGroup", city["ward"])
    assert "dateLastSwitchingOn" not in l2 and "dateServiceStarted" not in l2

    l3 = lights[urn("Streetlight", "%C4%90L%207%2F3")]  # "ĐL 7/3", percent-encoded
    assert l3["name"]["value"] == "ĐL 7/3"
    assert l3["status"] == {"type": "Property", "value": "ok"}  # nothing known: no observedAt
    assert l3["dateLastSwitchingOn"]["value"]["@value"] == "2026-06-21T11:29:00Z"
    assert "dateLastSwitchingOff" not in l3
    assert l3["address"]["value"]["district"] == "Đông Lễ"

    groups = by_id(await ngsi.entities("StreetlightGroup"))
    assert urn("StreetlightGroup", city["empty"]) not in groups  # no members, no location
    event = groups[urn("StreetlightGroup", city["event"])]
    assert event["refStreetlight"] == {
        "type": "Relationship",
        "object": [urn("Streetlight", "P1-LD-001"), urn("Streetlight", "%C4%90L%207%2F3")],
    }
    assert event["location"]["value"] == {
        "type": "MultiPoint",
        "coordinates": [[107.1003, city["l1"]["latitude"]], [107.0912, 16.8201]],
    }  # fmt: skip
    assert event["description"]["value"] == "Night market"
    ward = groups[urn("StreetlightGroup", city["ward"])]
    assert ward["areaServed"]["value"] == "Phường 1"
    assert "powerState" not in ward

    models = by_id(await ngsi.entities("StreetlightModel"))
    assert models[urn("StreetlightModel", city["lamp50"])] == {
        "id": urn("StreetlightModel", city["lamp50"]),
        "type": "StreetlightModel",
        "name": {"type": "Property", "value": "LED 50 W"},
        "powerConsumption": {"type": "Property", "value": 50.0, "unitCode": "WTT"},
        "description": {"type": "Property", "value": "Hẻm lantern"},
        "@context": [SDM_CONTEXT, CORE_CONTEXT],
    }
    assert await ngsi.entities("StreetlightControlCabinet") == []


async def test_key_values_match_the_normalized_form(ngsi: Ngsi, city: dict[str, Any]) -> None:
    for entity_type in TYPES:
        normalized = await ngsi.entities(entity_type)
        simple = await ngsi.entities(entity_type, options="keyValues")
        assert [reduce(e) for e in normalized] == [
            {k: v for k, v in e.items() if k != "@context"} for e in simple
        ]


@pytest.fixture
async def live_ngsi(
    settings: Settings, db: Database, keys: dict[Role, str], city: dict[str, Any]
) -> AsyncIterator[Ngsi]:
    """The API with a controller in the process (not running: its state is set by hand).

    Gateway 1 (Modbus) answers: L1 at 100 %, L2 at 50 % with a lamp failure flagged.
    Gateway 2 (MQTT, L3) is offline.
    """
    clock = ManualClock(NOW)
    controller = Controller(settings, db, clock)
    await controller.reload()
    assert controller.book is not None
    for gateway in controller.book.gateways.values():
        controller.gateways[gateway.id] = GatewayState(info=gateway, addresses={})
    await controller.reload()  # fills each gateway's addresses
    at = datetime(2026, 6, 21, 13, 29, 50, tzinfo=UTC)

    def reading(address: int, level: int, power: float, flags: frozenset[DeviceFlag]) -> Reading:
        return Reading(
            Address(address),
            at,
            True,
            level,
            power,
            228.5,
            455,
            0.97,
            1000,
            2000,
            700,
            41.0,
            flags,
        )

    gw1 = controller.gateways[city["gw1"]]
    gw1.online = True
    gw1.readings[Address(1)] = reading(1, 100, 98.6, frozenset())
    gw1.readings[Address(2)] = reading(2, 50, 24.1, frozenset({DeviceFlag.LAMP_FAILURE}))
    gw1.tracked[Address(1)] = Tracked(acked=Level(100), actual=Level(100), actual_at=at)
    gw1.tracked[Address(2)] = Tracked(acked=Level(50), actual=Level(50), actual_at=at)
    controller.gateways[city["gw2"]].online = False
    app = create_app(settings, db, controller=controller, clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        yield Ngsi(c, keys)


async def test_every_entity_validates_with_live_state(
    live_ngsi: Ngsi, city: dict[str, Any], validators: dict[str, Draft202012Validator]
) -> None:
    for entity_type in TYPES:
        for options in ("normalized", "keyValues"):
            for entity in await live_ngsi.entities(entity_type, options=options):
                validate(validators, entity, normalized=options == "normalized")

    lights = by_id(await live_ngsi.entities("Streetlight"))
    observed = "2026-06-21T13:29:50Z"
    l1 = lights[urn("Streetlight", "P1-LD-001")]
    assert l1["powerState"] == {"type": "Property", "value": "on", "observedAt": observed}
    assert l1["illuminanceLevel"] == {"type": "Property", "value": 1.0, "observedAt": observed}
    assert l1["powerConsumption"] == {
        "type": "Property", "value": 98.6, "observedAt": observed, "unitCode": "WTT",
    }  # fmt: skip
    assert l1["voltage"]["value"] == 228.5
    assert l1["current"] == {
        "type": "Property", "value": 0.455, "observedAt": observed, "unitCode": "AMP",
    }  # fmt: skip
    assert l1["powerFactor"]["value"] == 0.97
    assert l1["status"] == {"type": "Property", "value": "ok", "observedAt": observed}
    l2 = lights[urn("Streetlight", "P1-LD-002")]
    assert (l2["powerState"]["value"], l2["illuminanceLevel"]["value"]) == ("low", 0.5)
    assert l2["status"]["value"] == "defectiveLamp"
    l3 = lights[urn("Streetlight", "%C4%90L%207%2F3")]  # behind an offline gateway
    for live in ("powerState", "illuminanceLevel", "powerConsumption"):
        assert live not in l3

    groups = by_id(await live_ngsi.entities("StreetlightGroup"))
    single = groups[urn("StreetlightGroup", city["single"])]
    assert single["powerState"] == {"type": "Property", "value": "on", "observedAt": observed}
    assert single["illuminanceLevel"]["value"] == 1.0
    assert "powerState" not in groups[urn("StreetlightGroup", city["ward"])]  # 100 % and 50 %
    assert "powerState" not in groups[urn("StreetlightGroup", city["event"])]  # L3 unknown


async def test_entities_by_id(
    ngsi: Ngsi, city: dict[str, Any], validators: dict[str, Draft202012Validator]
) -> None:
    for entity_type in TYPES[:3]:
        for entity in await ngsi.entities(entity_type):
            response = await ngsi.get(f"/entities/{quote(entity['id'], safe=':')}")
            assert response.headers["content-type"] == "application/ld+json"
            assert response.json() == entity
            validate(validators, response.json(), normalized=True)
    simple = await ngsi.get(
        f"/entities/{urn('StreetlightModel', city['lamp100'])}", options="keyValues"
    )
    assert simple.json() == {
        "id": urn("StreetlightModel", city["lamp100"]), "type": "StreetlightModel",
        "name": "LED 100 W", "powerConsumption": 100.0, "@context": [SDM_CONTEXT, CORE_CONTEXT],
    }  # fmt: skip
    plain = await ngsi.get(
        f"/entities/{urn('Streetlight', 'P1-LD-001')}", headers={"Accept": "application/json"}
    )
    assert plain.headers["content-type"] == "application/json"
    assert "@context" not in plain.json()
    assert plain.headers["link"] == (
        f'<{SDM_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    )


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/entities/urn:ngsi-ld:Streetlight:dong-ha:NOPE", 404, "ResourceNotFound"),
        ("/entities/urn:ngsi-ld:Streetlight:hue:P1-LD-001", 404, "ResourceNotFound"),
        ("/entities/urn:ngsi-ld:StreetlightControlCabinet:dong-ha:1", 404, "ResourceNotFound"),
        ("/entities/urn:ngsi-ld:StreetlightGroup:dong-ha:abc", 404, "ResourceNotFound"),
        ("/entities/urn:ngsi-ld:StreetlightModel:dong-ha:99999999999", 404, "ResourceNotFound"),
        ("/entities?type=Streetlight&offset=99999999999", 400, "BadRequestData"),
        ("/entities/not a uri", 400, "BadRequestData"),
        ("/entities?type=Luminaire", 400, "BadRequestData"),
        ("/entities", 400, "BadRequestData"),
        ("/entities?type=Streetlight&limit=5000", 400, "BadRequestData"),
        ("/entities?type=Streetlight&limit=-1", 400, "BadRequestData"),
        ("/entities?type=Streetlight&options=compact", 400, "BadRequestData"),
    ],
)
async def test_errors_are_problem_details(
    ngsi: Ngsi, city: dict[str, Any], path: str, status: int, kind: str
) -> None:
    response = await ngsi.get(path, expect=status)
    body = response.json()
    assert body["type"] == f"https://uri.etsi.org/ngsi-ld/errors/{kind}"
    assert body["title"] and body["detail"]


async def test_authentication_and_content_negotiation(ngsi: Ngsi, city: dict[str, Any]) -> None:
    response = await ngsi.get("/entities", role=None, expect=401, type="Streetlight")
    assert response.json()["title"] == "Unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert set(response.json()) == {"type", "title", "detail"}
    for role in Role:
        await ngsi.get("/entities", role=role, type="Streetlight")
    refused = await ngsi.get(
        "/entities", expect=406, type="Streetlight", headers={"Accept": "text/html"}
    )
    assert refused.json()["title"] == "Not Acceptable"


async def test_pagination_and_count(ngsi: Ngsi, city: dict[str, Any]) -> None:
    names = []
    for offset in (0, 2):
        response = await ngsi.get(
            "/entities", type="Streetlight", limit=2, offset=offset, count="true"
        )
        assert response.headers["ngsild-results-count"] == "3"
        names += [e["name"]["value"] for e in response.json()]
    assert names == ["P1-LD-001", "P1-LD-002", "ĐL 7/3"]  # by database id
    only_count = await ngsi.get("/entities", type="StreetlightGroup", limit=0, count="true")
    assert (only_count.json(), only_count.headers["ngsild-results-count"]) == ([], "3")
    full = await ngsi.get("/entities", type="Streetlight")
    assert "ngsild-results-count" not in full.headers
    iri = await ngsi.get(
        "/entities", type="https://smartdatamodels.org/dataModel.Streetlighting/StreetlightModel"
    )
    assert len(iri.json()) == 2
