"""Codecs by name: a device profile (ChirpStack ``deviceProfileName`` or a tag) names one."""

from __future__ import annotations

from collections.abc import Callable

from protocols.lorawan.codec import Codec
from protocols.lorawan.dali_dapc import DaliDapcCodec
from protocols.lorawan.reference import ReferenceCodec
from protocols.lorawan.ws558 import Ws558Codec


class UnknownCodec(LookupError):
    """No codec is registered under that name."""


CodecFactory = Callable[[], Codec]


class CodecRegistry:
    """Codecs by name. A device profile (ChirpStack ``deviceProfileName`` or a tag) names one."""

    def __init__(self) -> None:
        self._factories: dict[str, CodecFactory] = {}

    def register(self, name: str, factory: CodecFactory) -> None:
        if not name or name != name.strip():
            raise ValueError(f"codec name must be non-empty without surrounding spaces: {name!r}")
        if name in self._factories:
            raise ValueError(f"codec {name!r} is already registered")
        self._factories[name] = factory

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._factories))

    def get(self, name: str) -> Codec:
        try:
            factory = self._factories[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise UnknownCodec(f"no codec named {name!r} (known: {known})") from None
        return factory()


def builtin_registry() -> CodecRegistry:
    """A registry with every shipped codec (a new one each call: no import-time singleton)."""
    registry = CodecRegistry()
    registry.register(Ws558Codec.NAME, Ws558Codec)
    registry.register(DaliDapcCodec.NAME, DaliDapcCodec)
    registry.register(ReferenceCodec.NAME, ReferenceCodec)
    return registry
