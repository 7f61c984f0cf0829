"""What a light is doing, in one word for the map and the counts (pure).

The word is the state summary API's (:func:`controller.core.light_state.light_state`:
``on``, ``dimmed``, ``off`` from the reported level, ``offline``), plus two the dashboard
adds: ``faulty`` when the luminaire answers but has an unresolved fault of its own, and
``unknown`` when no controller runs in this process.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from controller.core.light_state import LightState, light_state
from controller.loop.runtime import Controller, LuminaireState


class StateWord(StrEnum):
    """The dashboard's words: the core's four, ``faulty`` and ``unknown``."""

    ON = "on"
    DIMMED = "dimmed"
    OFF = "off"
    OFFLINE = "offline"
    FAULTY = "faulty"
    UNKNOWN = "unknown"


def classify(state: LuminaireState | None, faulty: bool) -> StateWord:
    if state is None:
        return StateWord.UNKNOWN
    word = light_state(online=state.online, actual=state.actual)
    if faulty and word is not LightState.OFFLINE:
        return StateWord.FAULTY
    return StateWord(word.value)


@dataclass(slots=True)
class Counts:
    """Luminaires per state word."""

    by_state: dict[StateWord, int] = field(default_factory=dict)

    def add(self, state: StateWord) -> None:
        self.by_state[state] = self.by_state.get(state, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    def get(self, state: str) -> int:
        return self.by_state.get(StateWord(state), 0)


@dataclass(slots=True)
class Summary:
    total: Counts
    wards: dict[str, Counts]
    gateways_online: int
    gateways_offline: int


def states_of(controller: Controller, faulty: set[int]) -> dict[int, StateWord]:
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


def count(states: Iterable[StateWord]) -> Counts:
    out = Counts()
    for s in states:
        out.add(s)
    return out
