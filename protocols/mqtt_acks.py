"""Ack matching of the MQTT link, without I/O: a plain class fed with events.

The link tells an :class:`AckMatcher` what it sent (:meth:`~AckMatcher.expect`), what
came back (:meth:`~AckMatcher.on_ack`) and when it stopped waiting
(:meth:`~AckMatcher.timed_out`, :meth:`~AckMatcher.forget`,
:meth:`~AckMatcher.drop_waiting`); ``on_ack`` answers what the ack means for the
command, and the link acts on it (wakes the caller, emits a ``LateAck``, counts).
So every rule about acks is a unit test without a broker (tests/unit/protocols).

The rules (docs/protocol/mqtt.md): an ack answers the command with its id, from the
gateway it was sent to, and covers exactly the commanded addresses; an ``error`` ack
refuses the whole command. A command whose ack did not come in time is kept (the
newest ``late_kept``) so that its late ack still tells what the gateway applied.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from controller.core.errors import CommandRejected, ProtocolViolation
from controller.core.values import Address, CommandResult
from protocols.mqtt_codec import Ack, Command

__all__ = [
    "LATE_ACKS_KEPT",
    "AckMatcher",
    "AckOutcome",
    "Answered",
    "AnsweredLate",
    "Mismatched",
    "Refused",
    "Sent",
    "Unmatched",
]

LATE_ACKS_KEPT: Final = 10_000
"""Timed-out commands whose late ack is still recognised (the oldest are forgotten)."""


@dataclass(frozen=True, slots=True)
class Sent:
    """A command sent to one gateway, waiting for (or past waiting for) its ack."""

    gateway_id: str
    command: Command
    addresses: frozenset[Address] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", frozenset(self.command.levels))

    @property
    def command_id(self) -> str:
        return self.command.command_id

    def answered_by(self, ack: Ack) -> bool:
        """The ack's per-address outcomes cover exactly the commanded addresses."""
        return ack.accepted | frozenset(ack.rejected) == self.addresses


@dataclass(frozen=True, slots=True)
class Answered:
    """The ack answers a waiting command."""

    sent: Sent
    result: CommandResult


@dataclass(frozen=True, slots=True)
class Refused:
    """The gateway refused the whole waiting command (an ``error`` ack)."""

    sent: Sent
    error: CommandRejected


@dataclass(frozen=True, slots=True)
class Mismatched:
    """The ack names the waiting command but not its addresses: the command fails."""

    sent: Sent
    error: ProtocolViolation


@dataclass(frozen=True, slots=True)
class AnsweredLate:
    """The ack answers a command that timed out: the gateway applied it after all."""

    sent: Sent
    result: CommandResult


@dataclass(frozen=True, slots=True)
class Unmatched:
    """The ack answers no command of ours (not sent, already answered, or too late)."""

    command_id: str


AckOutcome = Answered | Refused | Mismatched | AnsweredLate | Unmatched


class AckMatcher:
    """The commands of one link that wait for an ack, and those that timed out."""

    def __init__(self, *, late_kept: int = LATE_ACKS_KEPT) -> None:
        if late_kept < 0:
            raise ValueError("late_kept must be >= 0")
        self._late_kept = late_kept
        self._waiting: dict[str, Sent] = {}
        self._late: OrderedDict[str, Sent] = OrderedDict()

    @property
    def waiting(self) -> int:
        """Commands sent and not yet answered."""
        return len(self._waiting)

    @property
    def late(self) -> int:
        """Timed-out commands whose late ack would still be recognised."""
        return len(self._late)

    def expect(self, gateway_id: str, command: Command) -> Sent:
        """``command`` is being sent to ``gateway_id``: its ack is awaited from now on."""
        if command.command_id in self._waiting:
            raise ValueError(f"command {command.command_id} is already waiting")
        sent = self._waiting[command.command_id] = Sent(gateway_id, command)
        return sent

    def on_ack(self, gateway_id: str, ack: Ack) -> AckOutcome:
        """What ``ack``, received on ``gateway_id``'s ack topic, means.

        A waiting command that it answers, refuses or mismatches is no longer waiting.
        Raises :class:`ProtocolViolation` for an ack of a waiting command that came
        from another gateway (the command goes on waiting).
        """
        sent = self._waiting.get(ack.command_id)
        if sent is None:
            late = self._late.pop(ack.command_id, None)
            if (
                late is not None
                and late.gateway_id == gateway_id
                and ack.error is None
                and late.answered_by(ack)
            ):
                return AnsweredLate(late, ack.result())
            return Unmatched(ack.command_id)
        if sent.gateway_id != gateway_id:
            raise ProtocolViolation(
                f"ack for command {ack.command_id} of gateway {sent.gateway_id}"
            )
        del self._waiting[ack.command_id]
        if ack.error is not None:
            return Refused(
                sent,
                CommandRejected(
                    f"MQTT gateway {gateway_id} refused command {ack.command_id}: {ack.error}"
                ),
            )
        if not sent.answered_by(ack):
            answered = ack.accepted | frozenset(ack.rejected)
            unknown = sorted(answered - sent.addresses)
            missing = sorted(sent.addresses - answered)
            return Mismatched(
                sent,
                ProtocolViolation(
                    f"ack for command {ack.command_id} does not match it: "
                    f"unknown address(es) {unknown[:10]}, missing {missing[:10]}"
                ),
            )
        return Answered(sent, ack.result())

    def timed_out(self, command_id: str) -> None:
        """The ack of a waiting command did not come in time; a late one is recognised."""
        sent = self._waiting.pop(command_id, None)
        if sent is None:
            return
        self._late[command_id] = sent
        while len(self._late) > self._late_kept:
            self._late.popitem(last=False)

    def forget(self, command_id: str) -> None:
        """Nobody waits for this command's ack any more (it was not sent, or was cancelled)."""
        self._waiting.pop(command_id, None)

    def drop_waiting(self) -> list[Sent]:
        """Every waiting command, no longer waiting (the connection was lost)."""
        dropped = list(self._waiting.values())
        self._waiting.clear()
        return dropped
