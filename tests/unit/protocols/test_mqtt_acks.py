"""Ack matching of the MQTT link (protocols.mqtt_acks), without a broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.errors import CommandRejected, ProtocolViolation
from controller.core.values import Address, CommandResult, CommandSource, Level
from protocols.mqtt_acks import (
    AckMatcher,
    Answered,
    AnsweredLate,
    Mismatched,
    Refused,
    Unmatched,
)
from protocols.mqtt_codec import Ack, Command

AT = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)


def command(command_id: str, *addresses: int) -> Command:
    levels = {Address(a): Level(50) for a in addresses}
    return Command(command_id, CommandSource.PROGRAM, 0.0, levels, AT)


def ack(command_id: str, *accepted: int, rejected: dict[int, str] | None = None) -> Ack:
    return Ack(
        command_id,
        AT,
        accepted=frozenset(Address(a) for a in accepted),
        rejected={Address(a): why for a, why in (rejected or {}).items()},
    )


def test_an_ack_answers_its_command_once() -> None:
    acks = AckMatcher()
    sent = acks.expect("gw-1", command("c1", 0, 1, 2))
    outcome = acks.on_ack("gw-1", ack("c1", 0, 2, rejected={1: "lamp failure"}))
    assert outcome == Answered(
        sent,
        CommandResult("c1", frozenset({Address(0), Address(2)}), {Address(1): "lamp failure"}),
    )
    assert acks.waiting == 0
    assert acks.on_ack("gw-1", ack("c1", 0, 1, 2)) == Unmatched("c1")  # a duplicate


def test_an_ack_for_no_command_is_unmatched() -> None:
    acks = AckMatcher()
    acks.expect("gw-1", command("c1", 0))
    assert acks.on_ack("gw-1", ack("other", 0)) == Unmatched("other")
    assert acks.waiting == 1


def test_an_error_ack_refuses_the_whole_command() -> None:
    acks = AckMatcher()
    sent = acks.expect("gw-1", command("c1", 0))
    outcome = acks.on_ack("gw-1", Ack("c1", AT, error="levels do not decode"))
    assert isinstance(outcome, Refused)
    assert outcome.sent == sent
    assert isinstance(outcome.error, CommandRejected)
    assert "gw-1 refused command c1: levels do not decode" in str(outcome.error)
    assert acks.waiting == 0


def test_an_ack_that_does_not_cover_the_command_fails_it() -> None:
    acks = AckMatcher()
    acks.expect("gw-1", command("c1", 0, 1))
    outcome = acks.on_ack("gw-1", ack("c1", 0, 99))
    assert isinstance(outcome, Mismatched)
    assert "unknown address(es) [99], missing [1]" in str(outcome.error)
    assert acks.waiting == 0


def test_an_ack_from_another_gateway_is_a_violation_and_the_command_waits_on() -> None:
    acks = AckMatcher()
    sent = acks.expect("gw-1", command("c1", 0))
    with pytest.raises(ProtocolViolation, match="ack for command c1 of gateway gw-1"):
        acks.on_ack("gw-2", ack("c1", 0))
    assert acks.on_ack("gw-1", ack("c1", 0)) == Answered(sent, ack("c1", 0).result())


def test_a_late_ack_says_what_the_gateway_applied_after_all() -> None:
    acks = AckMatcher()
    sent = acks.expect("gw-1", command("c1", 0, 1))
    acks.timed_out("c1")
    assert (acks.waiting, acks.late) == (0, 1)
    outcome = acks.on_ack("gw-1", ack("c1", 0, rejected={1: "no lamp"}))
    assert outcome == AnsweredLate(sent, ack("c1", 0, rejected={1: "no lamp"}).result())
    assert acks.late == 0
    assert acks.on_ack("gw-1", ack("c1", 0, rejected={1: "no lamp"})) == Unmatched("c1")


@pytest.mark.parametrize(
    "late_ack",
    [
        pytest.param(("gw-2", ack("c1", 0, 1)), id="from another gateway"),
        pytest.param(("gw-1", Ack("c1", AT, error="busy")), id="an error"),
        pytest.param(("gw-1", ack("c1", 0)), id="not covering the command"),
    ],
)
def test_a_late_ack_that_does_not_answer_is_unmatched_and_forgotten(
    late_ack: tuple[str, Ack],
) -> None:
    acks = AckMatcher()
    acks.expect("gw-1", command("c1", 0, 1))
    acks.timed_out("c1")
    gateway_id, answer = late_ack
    assert acks.on_ack(gateway_id, answer) == Unmatched("c1")
    assert acks.on_ack("gw-1", ack("c1", 0, 1)) == Unmatched("c1")  # forgotten, not kept


def test_only_the_newest_timed_out_commands_are_kept() -> None:
    acks = AckMatcher(late_kept=2)
    for i in range(3):
        acks.expect("gw-1", command(f"c{i}", 0))
        acks.timed_out(f"c{i}")
    assert acks.late == 2
    assert acks.on_ack("gw-1", ack("c0", 0)) == Unmatched("c0")
    assert isinstance(acks.on_ack("gw-1", ack("c2", 0)), AnsweredLate)


def test_a_forgotten_or_dropped_command_is_not_answered_later() -> None:
    acks = AckMatcher()
    acks.expect("gw-1", command("cancelled", 0))
    acks.forget("cancelled")
    first = acks.expect("gw-1", command("c1", 0))
    second = acks.expect("gw-2", command("c2", 0))
    assert acks.drop_waiting() == [first, second]  # the connection was lost
    assert acks.waiting == 0
    for gateway_id, command_id in [("gw-1", "cancelled"), ("gw-1", "c1"), ("gw-2", "c2")]:
        assert acks.on_ack(gateway_id, ack(command_id, 0)) == Unmatched(command_id)


def test_a_command_id_waits_only_once() -> None:
    acks = AckMatcher()
    acks.expect("gw-1", command("c1", 0))
    with pytest.raises(ValueError, match="already waiting"):
        acks.expect("gw-1", command("c1", 1))


@given(
    commanded=st.frozensets(st.integers(0, 255), min_size=1, max_size=20),
    answered=st.frozensets(st.integers(0, 255), max_size=20),
)
def test_an_ack_answers_exactly_when_it_covers_the_command(
    commanded: frozenset[int], answered: frozenset[int]
) -> None:
    acks = AckMatcher()
    acks.expect("gw-1", command("c1", *commanded))
    outcome = acks.on_ack("gw-1", ack("c1", *answered))
    assert isinstance(outcome, Answered) == (commanded == answered)
    assert isinstance(outcome, Answered | Mismatched)
