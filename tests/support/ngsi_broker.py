"""A fake NGSI-LD context broker that validates every entity against the FIWARE schemas.

Why under ``tests/support`` and not ``controller/demo``: it needs ``jsonschema`` (a dev
dependency) and the reference schemas in ``../shared/reference/fiware-streetlighting``
beside the checkout, neither of which the wheel ships. The demo is pointed at it from a
checkout instead (docs/ioc.md, Push)::

    .venv/bin/python -m tests.support.ngsi_broker --port 1026 &
    STREETLIGHT_IOC__NGSI_LD_URL=http://127.0.0.1:1026 streetlight demo

What it does (the subset of NGSI-LD 1.x the publisher and an IOC use):

* ``POST /ngsi-ld/v1/entityOperations/upsert``: 201 (some created, body: their ids), 204 (all
  updated), 207 ``{success, errors}`` when some are refused, 400 when all are; an entity is
  refused when it does not fit its type's schema (the error names the schema path) or when the
  context is missing (``application/ld+json`` needs ``@context`` in each entity,
  ``application/json`` a ``Link`` header);
* ``POST /ngsi-ld/v1/entityOperations/delete`` (ids), ``GET /ngsi-ld/v1/entities/{id}``,
  ``GET /ngsi-ld/v1/entities?type=`` (``options=keyValues`` too);
* ``POST /ngsi-ld/v1/subscriptions`` (``entities[].type``, ``notification.endpoint.uri``,
  ``notification.format``): each change is POSTed there as ``{id, type: Notification,
  subscriptionId, notifiedAt, data}``;
* ``broker.outage = 503`` answers that to every request; ``broker.reject(ids)`` refuses those
  entities once (a 207 error) to test partial failures; ``requests`` records every call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from controller.demo.broker import free_port

REPO = Path(__file__).resolve().parents[2]
REFERENCE = Path(
    os.environ.get("STREETLIGHT_FIWARE_SCHEMAS")
    or REPO.parent / "shared" / "reference" / "fiware-streetlighting"
)
"""The schemas as CI lays them out beside the checkout; ``STREETLIGHT_FIWARE_SCHEMAS`` points
elsewhere (a worktree that is not beside ``shared/``)."""
COMMON_URL = "https://smart-data-models.github.io/data-models/common-schema.json"
SCHEMA_TYPES = (
    "Streetlight", "StreetlightGroup", "StreetlightModel", "StreetlightControlCabinet",
    "StreetlightFeeder",
)  # fmt: skip
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
Entity = dict[str, Any]


def load_validators(reference: Path = REFERENCE) -> dict[str, Draft202012Validator]:
    """One validator per FIWARE Streetlighting type, ``common-schema.json`` resolved locally."""
    common = json.loads((reference / "common-schema.json").read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry().with_resource(COMMON_URL, Resource.from_contents(common))
    out = {}
    for name in SCHEMA_TYPES:
        path = reference / name / "schema.json"
        if not path.is_file():
            continue
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        out[name] = Draft202012Validator(
            schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
    return out


def key_values(entity: Entity) -> Entity:
    """Normalized -> key-values (Property -> value, DateTime -> @value, Relationship -> object);
    :class:`ValueError` for an attribute that is not a Property/Relationship/GeoProperty."""
    out: Entity = {}
    for name, attr in entity.items():
        if name in {"id", "type"}:
            out[name] = attr
            continue
        if name == "@context":
            continue
        if not isinstance(attr, dict) or attr.get("type") not in {
            "Property", "Relationship", "GeoProperty",
        }:  # fmt: skip
            raise ValueError(f"{name}: not a normalized NGSI-LD attribute")
        if attr["type"] == "Relationship":
            out[name] = attr["object"]
            continue
        value = attr.get("value")
        if isinstance(value, dict) and "@value" in value:
            value = value["@value"]
        out[name] = value
    return out


@dataclass
class Recorded:
    method: str
    path: str
    status: int
    ids: list[str]
    headers: dict[str, str]


@dataclass
class Subscription:
    id: str
    types: set[str]
    uri: str
    format: str


@dataclass
class FakeNgsiBroker:
    validators: dict[str, Draft202012Validator]
    entities: dict[str, Entity] = field(default_factory=dict)
    """Stored entities, normalized, without ``@context``."""
    requests: list[Recorded] = field(default_factory=list)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    notifications_sent: int = 0
    outage: int | None = None
    """When set, every request is answered with this status (e.g. 503)."""
    rejected: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on every change of :attr:`entities`."""

    def reject(self, ids: set[str]) -> None:
        """Refuse these entities in the next upsert that carries them (a 207 error each)."""
        self.rejected |= ids

    def upserts(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/upsert")]

    # -- validation ------------------------------------------------------------------------

    def problem(self, entity: Any, *, ld: bool) -> str | None:
        """Why this entity is refused, or None."""
        if not isinstance(entity, dict) or not isinstance(entity.get("id"), str):
            return "not an entity with an id"
        if ld and "@context" not in entity:
            return "application/ld+json without @context"
        if not ld and "@context" in entity:
            return "@context in an application/json body"
        validator = self.validators.get(str(entity.get("type")))
        if validator is None:
            return f"no FIWARE schema for type {entity.get('type')!r}"
        try:
            flat = key_values(entity)
        except ValueError as exc:
            return str(exc)
        errors = sorted(validator.iter_errors(flat), key=lambda e: list(e.absolute_path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.absolute_path) or "(entity)"
            return f"schema: {where}: {e.message}"
        return None

    # -- the app ---------------------------------------------------------------------------

    def app(self) -> FastAPI:
        app = FastAPI()
        broker = self

        @app.middleware("http")
        async def outage(request: Request, call_next: Any) -> Response:
            if broker.outage is not None:
                broker.requests.append(
                    Recorded(request.method, request.url.path, broker.outage, [],
                             dict(request.headers))
                )  # fmt: skip
                return JSONResponse(
                    {"type": f"{ERRORS}InternalError", "title": "outage"},
                    status_code=broker.outage,
                )
            response: Response = await call_next(request)
            return response

        @app.post("/ngsi-ld/v1/entityOperations/upsert")
        async def upsert(request: Request) -> Response:
            ctype = request.headers.get("content-type", "").split(";")[0].strip()
            ld = ctype == "application/ld+json"
            if not ld and "json-ld#context" not in request.headers.get("link", ""):
                return self._record(request, [], _bad("application/json needs a Link header"))
            body = json.loads(await request.body())
            if not isinstance(body, list) or len(body) > 100:
                return self._record(request, [], _bad("a list of at most 100 entities"))
            ids = [e.get("id") if isinstance(e, dict) else None for e in body]
            created, ok, errors = [], [], []
            changed: list[Entity] = []
            for entity in body:
                eid = entity.get("id") if isinstance(entity, dict) else None
                why = self.problem(entity, ld=ld)
                if why is None and eid in self.rejected:
                    self.rejected.discard(eid)
                    why = "rejected by the test (transient)"
                if why is not None:
                    errors.append(
                        {
                            "entityId": eid,
                            "error": {
                                "type": f"{ERRORS}BadRequestData",
                                "title": why,
                                "status": 400,
                            },
                        }
                    )
                    continue  # fmt: skip
                stored = {k: v for k, v in entity.items() if k != "@context"}
                if eid not in self.entities:
                    created.append(eid)
                if self.entities.get(eid) != stored:
                    changed.append(stored)
                self.entities[eid] = stored
                ok.append(eid)
            if changed:
                self.changed.set()
                await self._notify(changed)
            if errors and not ok:
                return self._record(
                    request, ids, JSONResponse({"success": [], "errors": errors}, status_code=400)
                )
            if errors:
                return self._record(
                    request, ids, JSONResponse({"success": ok, "errors": errors}, status_code=207)
                )
            if created:
                return self._record(request, ids, JSONResponse(created, status_code=201))
            return self._record(request, ids, Response(status_code=204))

        @app.post("/ngsi-ld/v1/entityOperations/delete")
        async def delete(request: Request) -> Response:
            ids = json.loads(await request.body())
            missing = [i for i in ids if i not in self.entities]
            for i in ids:
                self.entities.pop(i, None)
            self.changed.set()
            if missing:
                errors = [{"entityId": i, "error": {"type": f"{ERRORS}ResourceNotFound",
                                                    "status": 404}} for i in missing]  # fmt: skip
                ok = [i for i in ids if i not in missing]
                return self._record(
                    request, ids, JSONResponse({"success": ok, "errors": errors}, status_code=207)
                )
            return self._record(request, ids, Response(status_code=204))

        @app.get("/ngsi-ld/v1/entities/{entity_id}")
        async def get_entity(entity_id: str, options: str = "") -> Response:
            entity = self.entities.get(entity_id)
            if entity is None:
                return JSONResponse(
                    {"type": f"{ERRORS}ResourceNotFound", "title": entity_id}, status_code=404
                )
            return JSONResponse(key_values(entity) if options == "keyValues" else entity)

        @app.get("/ngsi-ld/v1/entities")
        async def query(type: str = "", options: str = "") -> Response:
            found = [e for e in self.entities.values() if not type or e["type"] == type]
            found.sort(key=lambda e: str(e["id"]))
            return JSONResponse([key_values(e) if options == "keyValues" else e for e in found])

        @app.post("/ngsi-ld/v1/subscriptions")
        async def subscribe(request: Request) -> Response:
            body = json.loads(await request.body())
            try:
                uri = body["notification"]["endpoint"]["uri"]
                types = {str(e["type"]) for e in body.get("entities", [])}
            except (KeyError, TypeError):
                return _bad("notification.endpoint.uri and entities[].type are required")
            sid = body.get("id") or f"urn:ngsi-ld:Subscription:{uuid.uuid4().hex}"
            fmt = body["notification"].get("format", "normalized")
            self.subscriptions[sid] = Subscription(sid, types, uri, fmt)
            return Response(
                status_code=201, headers={"Location": f"/ngsi-ld/v1/subscriptions/{sid}"}
            )

        return app

    def _record(self, request: Request, ids: list[Any], response: Response) -> Response:
        self.requests.append(
            Recorded(request.method, request.url.path, response.status_code,
                     [str(i) for i in ids], dict(request.headers))
        )  # fmt: skip
        return response

    async def _notify(self, changed: list[Entity]) -> None:
        for sub in list(self.subscriptions.values()):
            data = [e for e in changed if not sub.types or e["type"] in sub.types]
            if not data:
                continue
            body = {
                "id": f"urn:ngsi-ld:Notification:{uuid.uuid4().hex}",
                "type": "Notification",
                "subscriptionId": sub.id,
                "notifiedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "data": [key_values(e) if sub.format == "keyValues" else e for e in data],
            }
            with suppress(httpx.HTTPError):
                async with httpx.AsyncClient(timeout=5) as client:
                    await client.post(sub.uri, json=body)
                self.notifications_sent += 1


def _bad(title: str) -> JSONResponse:
    return JSONResponse({"type": f"{ERRORS}BadRequestData", "title": title}, status_code=400)


@asynccontextmanager
async def serving(
    broker: FakeNgsiBroker, port: int | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """The broker on a real socket (uvicorn) until the block ends; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(broker.app(), host=host, port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name=f"fake-ngsi-broker:{port}")
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    await task
                    raise RuntimeError(f"the fake NGSI-LD broker did not start on {port}")
                await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1026)
    args = parser.parse_args()

    async def serve() -> None:
        broker = FakeNgsiBroker(load_validators())
        async with serving(broker, args.port, args.host) as url:
            print(f"fake NGSI-LD broker on {url}", flush=True)
            await asyncio.Event().wait()

    with suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
