"""``GET /metrics``: Prometheus text format (any valid key; Prometheus sends it as a bearer)."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from api.deps import PrincipalDep, SessionDep
from api.errors import json_error_doc
from controller.core.light_state import light_state
from controller.faults import data as faults
from controller.loop.metrics import Exposition
from controller.loop.runtime import Controller

router = APIRouter(tags=["observability"])
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/metrics",
    summary="Prometheus metrics: lights by state and ward, faults, gateways, latencies, ingest",
    response_class=PlainTextResponse,
    responses={
        401: json_error_doc("No key, or an unknown or revoked key"),
        429: json_error_doc("Too many failed authentications from this address"),
    },
)
async def metrics(request: Request, session: SessionDep, _: PrincipalDep) -> PlainTextResponse:
    out = Exposition()
    by_type: Counter[str] = Counter()
    for c in await faults.open_fault_counts(session=session):
        by_type[c.fault_type] += c.count
    out.family(
        "streetlight_open_faults", "gauge", "Faults not resolved, by type",
        (({"type": t}, float(n)) for t, n in sorted(by_type.items())),
    )  # fmt: skip
    controller: Controller | None = getattr(request.app.state, "controller", None)
    running = controller is not None and controller.book is not None
    out.family(
        "streetlight_controller_running", "gauge", "1 when the controller runs here",
        [({}, 1.0 if running else 0.0)],
    )  # fmt: skip
    if controller is not None and controller.book is not None:
        by_state: Counter[tuple[str, str]] = Counter()
        for info, state in controller.all_states():
            by_state[(info.ward, light_state(online=state.online, actual=state.actual))] += 1
        out.family(
            "streetlight_luminaires", "gauge", "Luminaires by reported state and ward",
            (({"ward": w, "state": s}, float(n)) for (w, s), n in sorted(by_state.items())),
        )  # fmt: skip
        gws = list(controller.gateways.values())
        out.family(
            "streetlight_gateway_up", "gauge", "1 when the gateway answered its last poll",
            (({"gateway": g.info.name, "protocol": g.info.protocol}, 1.0 if g.online else 0.0)
             for g in gws),
        )  # fmt: skip
        out.family("streetlight_commands_total", "counter", "Commands sent, by gateway",
                   (({"gateway": g.info.name}, float(g.commands)) for g in gws))  # fmt: skip
        out.histogram("streetlight_command_round_trip_seconds",
                      "From sending a batched command to its acknowledgement",
                      [({}, controller.command_latency)])  # fmt: skip
        out.histogram("streetlight_reconcile_cycle_seconds",
                      "One gateway loop cycle: read, compare, command",
                      [({}, controller.cycle_duration)])  # fmt: skip
        sink = controller.sink.stats
        out.family(
            "streetlight_telemetry_received_total",
            "counter",
            "Readings and state records handed to the writer",
            [({}, float(sink.received))],
        )
        out.family(
            "streetlight_telemetry_written_total",
            "counter",
            "Rows written to the database",
            [({}, float(sink.written))],
        )
        out.family(
            "streetlight_telemetry_dropped_total",
            "counter",
            "Rows dropped because the buffer was full (0 in normal operation)",
            [({}, float(sink.dropped))],
        )
        out.family(
            "streetlight_telemetry_buffer_depth",
            "gauge",
            "Rows waiting for the database",
            [({}, float(controller.sink.depth))],
        )
        out.family(
            "streetlight_energy_wh_total",
            "counter",
            "Energy booked since the controller started, Wh",
            [({}, sink.energy_wh)],
        )
        out.family(
            "streetlight_alerts_delivered_total",
            "counter",
            "Alerts delivered",
            [({}, float(controller.dispatcher.delivered))],
        )
        out.family(
            "streetlight_alerts_given_up_total",
            "counter",
            "Alerts given up after the last attempt",
            [({}, float(controller.dispatcher.gave_up))],
        )
    return PlainTextResponse(out.text(), media_type=CONTENT_TYPE)
