"""API fuzzing with schemathesis against a running system, on SQLite and on PostgreSQL.

The system runs as ``streetlight demo`` runs it, in a thread of this process: the demo
seed (500 luminaires), a fake fleet of Modbus and MQTT gateways (real sockets, a real
mosquitto), the controller polling and commanding them, and the API served by uvicorn on a
loopback port. schemathesis reads ``/openapi.json`` from it and sends every operation's
generated cases over HTTP with an admin key; half the positive cases name records the
system holds, so updates, deletes, timelines and state run on real data, and the state
endpoints answer from the controller.

Every response must: not be a 5xx; have a status code the schema documents for the
operation; have the documented content type; and match the documented body schema. After
the fuzzing the controller must still be writing telemetry. Bounded: a fixed number of
examples per operation, derandomized (the same cases every run), so a failure reproduces;
about a minute per database on a loaded two-core machine.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from controller.access import auth
from controller.access.schemas import Role
from controller.config.settings import Settings, load_settings
from controller.core.clock import SystemClock
from controller.demo.seed import seed_demo
from controller.inventory.importer import ImportFormat, export_bundle, import_inventory
from controller.loop.runtime import Controller
from controller.store import migrate
from controller.store.db import Database, connect
from fake_luminaires.fleet import Fleet, specs_from_bundle
from tests.conftest import PG_ADMIN_DSN, _pg_dsn, require_service, run_blocking
from tests.integration.conftest import (  # noqa: F401 - the broker fixture, shared
    MqttBroker,
    _mqtt_broker_session,
    free_port,
)

EXAMPLES_PER_OPERATION = 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
HOST = "127.0.0.1"
ADMIN = auth.Principal(name="fuzz", role=Role.ADMIN)


class RunningSystem:
    """The demo's parts in a thread with its own event loop: start, wait ready, stop."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.port = free_port()
        self.key = ""
        self.server: uvicorn.Server | None = None
        self.controller: Controller | None = None
        self.failure: BaseException | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fuzz-system", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start() or stop()
            self.failure = exc
        finally:
            self.ready.set()

    async def _main(self) -> None:
        async with connect(self.database_url) as db:
            await migrate.prepare(db)
            async with db.sessions() as session:
                await seed_demo(session=session)
                self.key, _ = await auth.create_key(session=session, name="fuzz", role=Role.ADMIN)
                bundle = await export_bundle(session=session)
            specs = specs_from_bundle(bundle)
            async with Fleet(specs, clock=SystemClock(), mqtt=self.settings.mqtt) as fleet:
                await self._point_gateways_at(db, fleet)
                controller = self.controller = Controller(self.settings, db, SystemClock())
                app = create_app(self.settings, db, controller=controller)
                config = uvicorn.Config(
                    app, host=HOST, port=self.port, log_level="warning", lifespan="on"
                )
                self.server = uvicorn.Server(config)
                async with asyncio.TaskGroup() as tg:
                    loops = tg.create_task(controller.run(), name="controller")
                    await controller.wait_ready()
                    self.ready.set()
                    await self.server.serve()
                    loops.cancel()

    async def _point_gateways_at(self, db: Database, fleet: Fleet) -> None:
        """As the demo does: the fleet listens on free ports; the gateways follow them."""
        served = fleet.inventory()
        gateways_only = {
            "type": "FeatureCollection",
            "features": [],
            "gateways": served["gateways"],
        }
        async with db.sessions() as session:
            await import_inventory(
                session=session,
                data=json.dumps(gateways_only).encode(),
                fmt=ImportFormat.GEOJSON,
                actor=ADMIN,
            )

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(120):
            raise TimeoutError("the system did not start within 120 s")
        if self.failure is not None:
            raise RuntimeError("the system failed to start") from self.failure
        for _ in range(100):  # uvicorn binds its port after the controller is ready
            try:
                if httpx.get(f"{self.base_url}/api/v1/health", timeout=10).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("the API did not answer within 10 s")

    def telemetry_lands(self, within_s: float) -> bool:
        """Whether the controller writes a new batch of telemetry rows within ``within_s``."""
        assert self.controller is not None
        stats = self.controller.sink.stats
        written = stats.written
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if stats.written > written:
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(60)
        assert not self.thread.is_alive(), "the system did not stop within 60 s"
        if self.failure is not None:
            raise RuntimeError("the system failed while running") from self.failure


def _fresh_pg_database() -> Iterator[str]:
    name = f"streetlight_fuzz_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        run_blocking(lambda: run(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        require_service("PostgreSQL", f"{PG_ADMIN_DSN}: {exc}")
    try:
        yield _pg_dsn(name).replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        run_blocking(lambda: run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def running_system(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningSystem]:
    broker: MqttBroker = request.getfixturevalue("_mqtt_broker_session")
    data_dir = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    prefix = f"fuzz-{request.param}-{free_port()}"
    app_settings = load_settings(data_dir=data_dir, mqtt=broker.settings(prefix).model_dump())
    databases: Iterator[str]
    if request.param == "sqlite":
        databases = iter([f"sqlite+aiosqlite:///{Path(data_dir) / 'streetlight.db'}"])
    else:
        databases = _fresh_pg_database()
    system = RunningSystem(app_settings, next(databases))
    try:
        system.start()
        yield system
    finally:
        try:
            system.stop()
        finally:
            for _ in databases:  # drops the PostgreSQL database
                pass


def existing_ids(system: RunningSystem) -> dict[str, list[Any]]:
    """Ids of the running system's data, by the path parameter that takes them."""
    headers = {"Authorization": f"Bearer {system.key}"}

    def get(path: str) -> Any:
        response = httpx.get(f"{system.base_url}{path}", headers=headers, timeout=30)
        assert response.status_code == 200, f"{path}: {response.text}"
        return response.json()

    def items(path: str) -> list[int]:
        return [int(item["id"]) for item in get(f"/api/v1/{path}?limit=20")["items"]]

    groups = items("groups")
    override = httpx.post(
        f"{system.base_url}/api/v1/overrides",
        headers=headers,
        json={"targets": {"groups": groups[:1]}, "level": 50, "duration_min": 60, "reason": "fuzz"},
        timeout=30,
    )
    assert override.status_code == 201, override.text
    ids: dict[str, list[Any]] = {
        "luminaire_id": items("luminaires"),
        "gateway_id": items("gateways"),
        "group_id": groups,
        "lamp_type_id": items("lamp-types"),
        "program_id": items("programs"),
        "calendar_id": items("calendars"),
        "override_id": items("overrides"),
        "fault_id": items("faults"),
        "entity_id": [
            entity["id"]
            for kind in ("Streetlight", "StreetlightGroup", "StreetlightModel")
            for entity in get(f"/ngsi-ld/v1/entities?type={kind}&limit=5")
        ],
    }
    return {name: values for name, values in ids.items() if values}


@dataclass
class Tally:
    """Cases whose path named existing data, and how many of those were answered 2xx."""

    with_ids: int = 0
    resolved: int = 0


def fuzz_operation(
    operation: Any, mode: GenerationMode, key: str, ids: dict[str, list[Any]], tally: Tally
) -> str | None:
    """Run ``operation`` on generated cases; the first failure, reported, or None.

    Half the positive cases take their path ids from the data the system holds, so the
    operations are exercised on real records (updates, deletes, state, timelines), not only
    on 404s.
    """
    headers = {"Authorization": f"Bearer {key}"}

    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    def run(case: Case[Any], data: st.DataObject) -> None:
        known = [name for name in case.path_parameters or {} if name in ids]
        real = bool(known) and mode is GenerationMode.POSITIVE and data.draw(st.booleans())
        if real:
            for name in known:
                case.path_parameters[name] = data.draw(st.sampled_from(ids[name]), label=name)
        response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
        if real:
            tally.with_ids += 1
            tally.resolved += response.status_code < 300

    try:
        run()
    except Unsatisfiable:  # nothing to negate: an operation without parameters or body
        assert mode is GenerationMode.NEGATIVE, operation.label
    except (Exception, BaseExceptionGroup) as exc:  # a failed check
        notes = "\n".join(getattr(exc, "__notes__", []))
        return f"{operation.label} ({mode.value}): {type(exc).__name__}: {exc}\n{notes}"
    return None


def test_every_operation_answers_within_its_schema(running_system: RunningSystem) -> None:
    """schemathesis's pytest plugin (4.32.5) does not run on pytest 9 (it sets the removed
    ``Node._nodeid``), so each operation is driven here with its own Hypothesis strategy."""
    schema = schemathesis.openapi.from_url(f"{running_system.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20, "the schema lost its operations"
    # the premise: the controller runs and drives the seeded fleet
    headers = {"Authorization": f"Bearer {running_system.key}"}
    summary = httpx.get(f"{running_system.base_url}/api/v1/state/summary", headers=headers)
    assert summary.status_code == 200, summary.text
    assert summary.json()["total"]["total"] == 500
    ids = existing_ids(running_system)
    tally = Tally()
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := fuzz_operation(operation, mode, running_system.key, ids, tally)) is not None
    ]
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)
    # the premise: many cases reached real records, and many of those were served
    assert tally.with_ids > 50 and tally.resolved > 20, tally
    # and the system still works: telemetry keeps reaching the database
    assert running_system.telemetry_lands(within_s=30), "telemetry stopped landing"


# --- what the fuzzing found ---------------------------------------------------------------------
# Ids, offsets and id lists beyond the database's integers reached the database and failed
# there: 500 on SQLite beyond 64 bits (OverflowError), and on PostgreSQL from 2**31 on, whose id
# columns are INTEGER (asyncpg: "value out of int32 range"). Since 7ede792 the API bounds them
# to 32 bits at the edge; these keep it so, on both databases.


def _with(body: object, n: int) -> object:
    """``body`` with every ``"{n}"`` string replaced by the integer ``n``."""
    if body == "{n}":
        return n
    if isinstance(body, dict):
        return {k: _with(v, n) for k, v in body.items()}
    if isinstance(body, list):
        return [_with(v, n) for v in body]
    return body


OVERFLOWING: list[tuple[str, str, object]] = [
    (method, path.format(n=n), None if body is None else _with(body, n))
    for n in (2**31, 2**63)
    for method, path, body in [
        ("GET", "/api/v1/lamp-types?offset={n}", None),
        ("GET", "/api/v1/groups?offset={n}", None),
        ("GET", "/api/v1/luminaires?gateway_id={n}", None),
        ("GET", "/api/v1/luminaires/{n}", None),
        ("PATCH", "/api/v1/luminaires/{n}", {}),
        ("PATCH", "/api/v1/groups/{n}", {}),
        (
            "POST",
            "/api/v1/overrides",
            {
                "level": 0,
                "reason": "0",
                "targets": {"all": False, "groups": ["{n}"]},
                "duration_min": 1,
            },
        ),
        ("POST", "/api/v1/faults/{n}/ack", None),
        ("POST", "/api/v1/faults/{n}/resolve", None),
    ]
]


@pytest.mark.parametrize(
    ("method", "path", "body"), OVERFLOWING, ids=[f"{m} {p}" for m, p, _ in OVERFLOWING]
)
async def test_ids_beyond_the_databases_integers_are_refused_with_422(
    method: str,
    path: str,
    body: object,
    settings: Settings,
    db: Database,
    keys: dict[Role, str],
) -> None:
    app = create_app(settings, db)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {keys[Role.ADMIN]}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.request(method, path, headers=headers, json=body)
    assert response.status_code == 422, f"{response.status_code} {response.text}"
    assert response.json()["error"] == "validation_error"


@pytest.mark.parametrize("path", ["/api/v1/state/summary", "/api/v1/luminaires/1/state"])
async def test_without_a_controller_the_state_endpoints_answer_their_documented_503(
    path: str, settings: Settings, sqlite_db: Database, keys_sqlite: dict[Role, str]
) -> None:
    app = create_app(settings, sqlite_db)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {keys_sqlite[Role.VIEWER]}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(path, headers=headers)
        documented = (await client.get("/openapi.json")).json()
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "gateway_unavailable"
    template = path.replace("/1/", "/{luminaire_id}/")
    assert "503" in documented["paths"][template]["get"]["responses"]


@pytest.fixture
async def keys_sqlite(sqlite_db: Database) -> dict[Role, str]:
    async with sqlite_db.sessions() as session:
        key, _ = await auth.create_key(session=session, name="viewer", role=Role.VIEWER)
    return {Role.VIEWER: key}
