"""Dotted JSON paths for mapping profiles: ``ENERGY.Total``, ``lights[0].brightness``, ``$``.

``$`` is the whole document (a plain-text payload such as Tasmota's ``ON``).
A path that does not lead anywhere raises ``ProtocolViolation`` naming where it stopped.
"""

from __future__ import annotations

import re
from typing import Any, Final

from controller.core.errors import ProtocolViolation

_STEP: Final = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


class JsonPath:
    """A parsed path; equal paths compare equal."""

    __slots__ = ("source", "steps")

    def __init__(self, source: str) -> None:
        self.source = source
        steps: list[str | int] = []
        if source != "$":
            position = 0
            while position < len(source):
                match = _STEP.match(source, position)
                if match is None or (position == 0 and source.startswith(".")):
                    raise ValueError(f"bad JSON path {source!r} at position {position}")
                steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
                position = match.end()
            if not steps:
                raise ValueError("empty JSON path")
        self.steps: tuple[str | int, ...] = tuple(steps)

    def __repr__(self) -> str:
        return f"JsonPath({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonPath) and other.steps == self.steps

    def __hash__(self) -> int:
        return hash(self.steps)

    def get(self, doc: Any) -> Any:
        """The value at this path in ``doc``."""
        value = doc
        walked = "$"
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(value, list) or step >= len(value):
                    raise ProtocolViolation(f"{self.source}: no item [{step}] in {walked}")
                value = value[step]
                walked += f"[{step}]"
            else:
                if not isinstance(value, dict) or step not in value:
                    raise ProtocolViolation(f"{self.source}: no {step!r} in {walked}")
                value = value[step]
                walked += f".{step}"
        return value

    def has(self, doc: Any) -> bool:
        try:
            self.get(doc)
        except ProtocolViolation:
            return False
        return True
