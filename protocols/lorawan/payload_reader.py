"""A cursor over an uplink's bytes that names what is missing when a payload is short."""

from __future__ import annotations

from controller.core.errors import ProtocolViolation


class PayloadReader:
    """Reads little-endian integers off ``payload``; a short read raises ``ProtocolViolation``.

    ``codec`` prefixes every message so a log line says whose payload was wrong.
    """

    def __init__(self, codec: str, payload: bytes) -> None:
        self.codec = codec
        self.payload = payload
        self.offset = 0

    @property
    def remaining(self) -> int:
        return len(self.payload) - self.offset

    def take(self, size: int, what: str) -> bytes:
        if self.remaining < size:
            raise ProtocolViolation(
                f"{self.codec}: {what} at byte {self.offset} needs {size} bytes, "
                f"{self.remaining} left (payload {self.payload.hex()})"
            )
        chunk = self.payload[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "little", signed=False)

    def sint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "little", signed=True)
