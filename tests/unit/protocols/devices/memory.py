"""Helpers for the device-profile tests: a register memory that answers planned reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from protocols.devices.codec import ReadRequest


def answer(
    request: ReadRequest, memory: Mapping[tuple[int, int], int | bool]
) -> Sequence[int] | Sequence[bool]:
    """What a device holding ``memory`` ((function, address) -> word or bit) sends back.

    Unset registers read as 0, as the unused registers of the devices that allow reading
    across them do. Bits come back as booleans.
    """
    values = [memory.get((request.function, request.address + i), 0) for i in range(request.count)]
    if request.function in (1, 2):
        return [bool(v) for v in values]
    return [int(v) for v in values]
