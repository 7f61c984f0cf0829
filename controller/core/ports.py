"""The one small interface every gateway driver implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from controller.core.values import Address, CommandResult, CommandSource, GatewayReading, Level


class Gateway(Protocol):
    """A connection to one gateway, opened as an async context manager.

    ``apply`` sends one batched command for many luminaires and returns which
    addresses accepted it; ``read`` polls (Modbus) or returns the latest
    reported state (MQTT). Both raise :class:`controller.core.errors.GatewayUnavailable`
    when the gateway cannot be reached in time.
    """

    async def apply(
        self,
        levels: Mapping[Address, Level],
        *,
        source: CommandSource = CommandSource.PROGRAM,
        fade_s: float = 0.0,
    ) -> CommandResult: ...

    async def read(self) -> GatewayReading: ...
