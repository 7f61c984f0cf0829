"""What a light is doing, in one word for the map and the counts (pure).

The word comes from the *actual* level (what the luminaire reports), as in the state
summary API: ``on`` at 100 %, ``dimmed`` between, ``off`` at 0; ``offline`` when the
luminaire or its gateway does not answer; ``faulty`` when it answers but has an
unresolved fault of its own; ``unknown`` when no controller runs in this process.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from controller.loop.runtime import Controller, LuminaireState


class LightState(StrEnum):
    ON = "on"
    DIMMED = "dimmed"
    OFF = "off"
    OFFLINE = "offline"
    FAULTY = "faulty"
    UNKNOWN = "unknown"


def classify(state: LuminaireState | None, faulty: bool) -> LightState:
    if state is None:
        return LightState.UNKNOWN
    if not state.online or state.actual is None:
        return LightState.OFFLINE
    if faulty:
        return LightState.FAULTY
    if state.actual >= 100:
        return LightState.ON
    if state.actual > 0:
        return LightState.DIMMED
    return LightState.OFF


@dataclass(slots=True)
class Counts:
    """Luminaires per state word."""

    by_state: dict[LightState, int] = field(default_factory=dict)

    def add(self, state: LightState) -> None:
        self.by_state[state] = self.by_state.get(state, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    def get(self, state: str) -> int:
        return self.by_state.get(LightState(state), 0)


@dataclass(slots=True)
class Summary:
    total: Counts
    wards: dict[str, Counts]
    gateways_online: int
    gateways_offline: int


def states_of(controller: Controller, faulty: set[int]) -> dict[int, LightState]:
    """Every luminaire the controller knows, by id."""
    return {info.id: classify(state, info.id in faulty) for info, state in controller.all_states()}


def summarise(controller: Controller, faulty: set[int]) -> Summary:
    total = Counts()
    wards: dict[str, Counts] = {}
    for info, state in controller.all_states():
        word = classify(state, info.id in faulty)
        total.add(word)
        wards.setdefault(info.ward, Counts()).add(word)
    online = sum(1 for g in controller.gateways.values() if g.online)
    return Summary(
        total=total,
        wards=dict(sorted(wards.items())),
        gateways_online=online,
        gateways_offline=len(controller.gateways) - online,
    )


def count(states: Iterable[LightState]) -> Counts:
    out = Counts()
    for s in states:
        out.add(s)
    return out
