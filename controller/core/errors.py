"""Domain errors: one small hierarchy, grouped by cause.

Library exceptions are translated into these once, at the adapter boundary
(``raise GatewayUnavailable(...) from exc``). The API maps them to HTTP codes in
one exception handler.
"""

from __future__ import annotations


class LightingError(Exception):
    """Base of every error this system raises on purpose."""


class ConfigError(LightingError):
    """The settings are invalid; the process refuses to start."""


class NotFound(LightingError):
    """A referenced entity (luminaire, gateway, group, ...) does not exist."""

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class Conflict(LightingError):
    """The change would break a uniqueness rule (e.g. two luminaires at one gateway address)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidInput(LightingError):
    """Input failed a domain rule; ``errors`` names each offending field."""

    def __init__(self, message: str, errors: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.errors: list[FieldProblem] = errors or []


class FieldProblem:
    """One problem with one field of the input (``row`` is set for bulk imports)."""

    __slots__ = ("field", "message", "row")

    def __init__(self, field: str, message: str, row: int | None = None) -> None:
        self.field = field
        self.message = message
        self.row = row

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"field": self.field, "message": self.message}
        if self.row is not None:
            out["row"] = self.row
        return out

    def __repr__(self) -> str:
        return f"FieldProblem({self.field!r}, {self.message!r}, row={self.row!r})"


class NotAuthenticated(LightingError):
    """No API key, or a key that is unknown or revoked."""


class Forbidden(LightingError):
    """A valid key whose role does not allow the action."""


class GatewayUnavailable(LightingError):
    """The gateway did not answer in time or the connection is down."""


class CommandRejected(LightingError):
    """The gateway answered but refused the command (or part of it)."""


class ProtocolViolation(LightingError):
    """A device sent something that does not follow the protocol contract."""
