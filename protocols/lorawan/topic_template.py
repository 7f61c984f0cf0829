"""MQTT topic templates with ``{name}`` placeholders: fill one in, make its wildcard, parse a topic.

Each placeholder stands for exactly one topic level (no ``/``, ``+``, ``#``).
``{name...}`` at the end of a template (a *tail*) matches one or more levels, for
kinds like The Things Stack's ``down/ack``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

_PLACEHOLDER: Final = re.compile(r"\{([a-z_]+)(\.\.\.)?\}")


def check_level(value: str, name: str) -> str:
    """``value`` if it can be one topic level, else ``ValueError`` naming ``name``."""
    if not value or any(ch in "/+#" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(
            f"{name} must be one topic level without / + # or control characters: {value!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    """A topic such as ``application/{application_id}/device/{dev_eui}/event/{event}``."""

    template: str
    names: tuple[str, ...] = field(init=False)
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names: list[str] = []
        pattern = ""
        position = 0
        for match in _PLACEHOLDER.finditer(self.template):
            literal = self.template[position : match.start()]
            if any(ch in "+#{}" for ch in literal):
                raise ValueError(f"topic template {self.template!r}: bad literal {literal!r}")
            pattern += re.escape(literal)
            name, tail = match.group(1), bool(match.group(2))
            if name in names:
                raise ValueError(f"topic template {self.template!r}: {{{name}}} appears twice")
            if tail and match.end() != len(self.template):
                raise ValueError(f"topic template {self.template!r}: {{{name}...}} must end it")
            names.append(name)
            pattern += f"(?P<{name}>[^/+#]+(?:/[^/+#]+)*)" if tail else f"(?P<{name}>[^/+#]+)"
            position = match.end()
        literal = self.template[position:]
        if any(ch in "+#{}" for ch in literal):
            raise ValueError(f"topic template {self.template!r}: bad literal {literal!r}")
        if not self.template or self.template.startswith("/"):
            raise ValueError(
                f"topic template must be non-empty and not start with /: {self.template!r}"
            )
        pattern += re.escape(literal)
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "_pattern", re.compile(pattern))

    def fill(self, **values: str) -> str:
        """The topic with every placeholder filled (a tail may span levels, the others not)."""
        missing = set(self.names) - set(values)
        extra = set(values) - set(self.names)
        if missing or extra:
            raise ValueError(
                f"topic template {self.template!r} needs {sorted(self.names)}, got {sorted(values)}"
            )
        topic = self.template
        for match in reversed(list(_PLACEHOLDER.finditer(self.template))):
            name, tail = match.group(1), bool(match.group(2))
            value = values[name]
            if tail:
                for level in value.split("/"):
                    check_level(level, name)
            else:
                check_level(value, name)
            topic = topic[: match.start()] + value + topic[match.end() :]
        return topic

    def wildcard(self, **fixed: str) -> str:
        """A subscription: placeholders in ``fixed`` filled, the others ``+`` (a tail ``#``)."""
        topic = self.template
        for match in reversed(list(_PLACEHOLDER.finditer(self.template))):
            name, tail = match.group(1), bool(match.group(2))
            wild = "#" if tail else "+"
            value = check_level(fixed[name], name) if name in fixed else wild
            topic = topic[: match.start()] + value + topic[match.end() :]
        return topic

    def parse(self, topic: str) -> dict[str, str] | None:
        """The placeholder values of ``topic``, or ``None`` if it does not match."""
        match = self._pattern.fullmatch(topic)
        return None if match is None else match.groupdict()
