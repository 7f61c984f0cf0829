"""``/metrics`` parses with the Prometheus client's parser and needs a key."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
from prometheus_client.parser import text_string_to_metric_families

from controller.access.schemas import Role
from controller.alerts.messages import SubjectInfo
from controller.config.settings import AlertSettings
from controller.faults.data import AlertContext, record_transitions
from controller.faults.rules import FaultType, Severity
from controller.faults.tracker import Subject, Transition, TransitionKind
from controller.loop.metrics import Histogram
from controller.store.db import Database
from tests.api.conftest import Api, luminaire


async def test_metrics_without_a_controller(
    api: Api, db: Database, base: dict[str, int], client: httpx.AsyncClient
) -> None:
    lum = await api.ok("POST", "/luminaires", json=luminaire(0, **base))
    now = datetime.now(UTC)
    async with db.sessions() as session:
        await record_transitions(
            session=session,
            transitions=[
                Transition(TransitionKind.OPENED, Subject.luminaire(lum["id"]),
                           FaultType.LAMP_FAILURE, Severity.CRITICAL, now, now, now, 3)
            ],
            subjects={Subject.luminaire(lum["id"]): SubjectInfo(name="x")},
            ctx=AlertContext(AlertSettings(mqtt=False), "streetlight", ZoneInfo("UTC")),
        )  # fmt: skip
    assert (await client.get("/metrics")).status_code == 401
    r = await client.get("/metrics", headers={"Authorization": f"Bearer {api.keys[Role.VIEWER]}"})
    assert r.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["streetlight_controller_running"].samples[0].value == 0
    faults = {s.labels["type"]: s.value for s in families["streetlight_open_faults"].samples}
    assert faults == {"lampFailure": 1.0}


def test_histogram_is_cumulative() -> None:
    h = Histogram(buckets=(0.1, 1.0))
    for v in (0.05, 0.5, 0.7, 3.0):
        h.observe(v)
    assert h.cumulative() == [("0.1", 1), ("1", 3), ("+Inf", 4)]
    assert h.count == 4
