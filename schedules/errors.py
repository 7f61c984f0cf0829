"""Errors the schedule core raises when it is handed inputs it cannot use.

Validation itself never raises: :func:`schedules.program.validate_program` and
:func:`schedules.calendar.validate_calendar` return every problem as a value. These errors
are for callers that skip validation and evaluate anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schedules.program import Problem


class ScheduleError(Exception):
    """Base of every error raised by :mod:`schedules`."""


class InvalidProgram(ScheduleError, ValueError):
    """A program with validation errors was resolved; ``problems`` lists them all."""

    def __init__(self, name: str, problems: Sequence[Problem]) -> None:
        self.name = name
        self.problems = tuple(problems)
        details = "; ".join(problem.message for problem in self.problems)
        super().__init__(f"program {name!r} is invalid: {details}")


class UnknownProgram(ScheduleError, LookupError):
    """A calendar refers to a program that is not in the mapping it was evaluated with."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"calendar refers to unknown program {ref!r}")
