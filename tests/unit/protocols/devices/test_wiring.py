"""Cabinet I/O wiring: the E1214's channels mapped to contactors, door, selector, breaker."""

from __future__ import annotations

import pytest

from controller.core.errors import ConfigError
from protocols.devices.codec import decode, key, plan_reads
from protocols.devices.profile import load_builtin_profile
from protocols.devices.wiring import cabinet_signals, contactor_writes, parse_wiring
from tests.unit.protocols.devices.memory import answer

E1214 = load_builtin_profile("moxa_iologik_e1214")
HEAD = "profile: moxa_iologik_e1214\nchannels:\n"

# A cabinet with two circuits: A all night, B off for part of the night.
CABINET = """
profile: moxa_iologik_e1214
channels:
  K1: {point: relay_0, role: contactor, circuit: A}
  K2: {point: relay_1, role: contactor, circuit: B}
  K1-fb: {point: di_0, role: contactor_feedback, circuit: A}
  K2-fb: {point: di_1, role: contactor_feedback, circuit: B}
  S1: {point: di_2, role: door_open, inverted: true, description: "door switch, normally closed"}
  S2: {point: di_3, role: manual_mode, description: selector on MAN}
  Q1: {point: di_4, role: breaker_tripped}
"""


def test_signals_from_the_bits_of_one_poll() -> None:
    wiring = parse_wiring(CABINET, E1214)
    memory: dict[tuple[int, int], int | bool] = {
        (1, 0): True,  # K1 energised
        (1, 1): False,  # K2 off (part-night)
        (2, 0): True,  # K1 auxiliary contact closed
        (2, 1): True,  # K2 auxiliary contact closed although K2 is off: stuck contactor
        (2, 2): False,  # NC door switch open: the door is open
        (2, 3): False,  # selector on AUTO
        (2, 4): False,  # breaker in
    }
    plan = plan_reads(E1214)
    readings = decode(E1214, plan.reads, [answer(r, memory) for r in plan.reads])
    signals = cabinet_signals(wiring, readings)
    assert signals.contactors == {"A": True, "B": False}
    assert signals.feedback == {"A": True, "B": True}
    assert signals.door_open is True
    assert signals.manual_mode is False
    assert signals.breaker_tripped is False


def test_switching_circuits_writes_their_coils() -> None:
    wiring = parse_wiring(CABINET, E1214)
    writes = contactor_writes(wiring, E1214, {"A": True, "B": False})
    assert [(w.function, w.address, w.values) for w in writes] == [(15, 0, (True, False))]
    with pytest.raises(ConfigError, match="no contactor is wired for circuit 'C'"):
        contactor_writes(wiring, E1214, {"C": True})


def test_a_channel_that_was_not_read_is_an_error() -> None:
    wiring = parse_wiring(CABINET, E1214)
    with pytest.raises(ConfigError, match="channel K1"):
        cabinet_signals(wiring, {})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("profile: other\nchannels: {}", "profile: is 'other'"),
        (
            f"{HEAD}  X: {{point: relay_9, role: contactor, circuit: A}}",
            "channels.X.point: moxa_iologik_e1214 has no point 'relay_9'",
        ),
        (
            f"{HEAD}  X: {{point: di_0, role: contactor, circuit: A}}",
            "channels.X.role: a contactor needs a writable coil",
        ),
        (
            "profile: moxa_iologik_e1214\nchannels:\n  X: {point: relay_0, role: contactor}",
            "channels.X.circuit: role contactor needs a circuit",
        ),
        (
            f"{HEAD}  X: {{point: di_0, role: door_open, circuit: A}}",
            "channels.X.circuit: role door_open takes no circuit",
        ),
        (
            "profile: moxa_iologik_e1214\nchannels:\n"
            "  X: {point: relay_0, role: contactor, circuit: A}\n"
            "  Y: {point: relay_1, role: contactor, circuit: A}",
            "circuit 'A' already has contactor X",
        ),
        (
            "profile: moxa_iologik_e1214\nchannels:\n"
            "  X: {point: di_0, role: door_open}\n  Y: {point: di_0, role: breaker_tripped}",
            "channels.Y.point: 'di_0' is already channel X",
        ),
        (
            "profile: moxa_iologik_e1214\nchannels:\n"
            "  X: {point: di_0, role: contactor_feedback, circuit: A}",
            "no contactor drives 'A'",
        ),
        (
            "profile: moxa_iologik_e1214\nchannels:\n  X: {point: di_0, role: fan}",
            "channels.X.role",
        ),
    ],
)
def test_wiring_refused_naming_the_channel(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_wiring(text, E1214, source="cabinet-7.yaml")
    assert str(caught.value).startswith("cabinet-7.yaml: ")
    assert fragment in str(caught.value)


def test_key_of_unwired_relay_is_untouched() -> None:
    wiring = parse_wiring(CABINET, E1214)
    writes = contactor_writes(wiring, E1214, {"B": True})
    assert [w.keys for w in writes] == [(key("relay_1"),)]
