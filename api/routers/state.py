"""What every light is doing now: target, commanded, actual, telemetry, online."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import ControllerDep, IdPath, PrincipalDep
from api.errors import ErrorBody
from controller.core.errors import NotFound
from controller.core.light_state import LightState, light_state

router = APIRouter(
    tags=["state"],
    responses={
        503: {
            "model": ErrorBody,
            "description": "No controller runs in this process (`gateway_unavailable`)",
        }
    },
)


class TargetPublic(BaseModel):
    level: int
    source: str
    detail: str


class TelemetryPublic(BaseModel):
    at: datetime
    lamp_on: bool
    level_pct: int
    power_w: float
    voltage_v: float
    current_ma: int
    power_factor: float
    energy_wh: int
    operating_hours: int
    switch_on_count: int
    temperature_c: float
    flags: list[str]


class LuminaireStatePublic(BaseModel):
    luminaire_id: int
    target: TargetPublic | None
    commanded: int | None
    commanded_at: datetime | None
    actual: int | None
    online: bool
    gateway_online: bool | None
    rejected: str | None
    telemetry: TelemetryPublic | None


@router.get("/luminaires/{luminaire_id}/state", summary="Target (with source), commanded, actual")
async def luminaire_state(
    luminaire_id: IdPath, controller: ControllerDep, _: PrincipalDep
) -> LuminaireStatePublic:
    state = controller.luminaire_state(luminaire_id)
    if state is None:
        raise NotFound("luminaire", luminaire_id)
    r = state.reading
    return LuminaireStatePublic(
        luminaire_id=luminaire_id,
        target=None
        if state.target is None
        else TargetPublic(
            level=state.target.level,
            source=state.target.source.value,
            detail=state.target.detail,
        ),
        commanded=state.commanded,
        commanded_at=state.commanded_at,
        actual=state.actual,
        online=state.online,
        gateway_online=state.gateway_online,
        rejected=state.rejected,
        telemetry=None
        if r is None
        else TelemetryPublic(
            at=r.at,
            lamp_on=r.lamp_on,
            level_pct=r.level_pct,
            power_w=r.power_w,
            voltage_v=r.voltage_v,
            current_ma=r.current_ma,
            power_factor=r.power_factor,
            energy_wh=r.energy_wh,
            operating_hours=r.operating_hours,
            switch_on_count=r.switch_on_count,
            temperature_c=r.temperature_c,
            flags=sorted(f.value for f in r.flags),
        ),
    )


class Counts(BaseModel):
    total: int = 0
    on: int = 0
    dimmed: int = 0
    off: int = 0
    offline: int = 0

    def add(self, state: LightState) -> None:
        self.total += 1
        setattr(self, state.value, getattr(self, state.value) + 1)


class Summary(BaseModel):
    at: datetime
    total: Counts
    wards: dict[str, Counts]
    gateways_online: int
    gateways_offline: int


@router.get(
    "/state/summary",
    summary="Counts on / dimmed / off / offline, in all and per ward (from reported levels)",
)
async def summary(controller: ControllerDep, _: PrincipalDep) -> Summary:
    total = Counts()
    wards: dict[str, Counts] = {}
    for info, state in controller.all_states():
        ward = wards.setdefault(info.ward, Counts())
        for counts in (total, ward):
            counts.add(light_state(online=state.online, actual=state.actual))
    online = sum(1 for g in controller.gateways.values() if g.online)
    return Summary(
        at=controller.clock.now(),
        total=total,
        wards=dict(sorted(wards.items())),
        gateways_online=online,
        gateways_offline=len(controller.gateways) - online,
    )
